// Argo CD's API server, the part the bot and the tests use: sessions (JWT-shaped tokens),
// applications (list, get with ?refresh, sync) and /api/webhook for GitLab's Push Hook.
// Errors are grpc-gateway's `{"error","code","message"}` with the gRPC code's HTTP status.
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ArgocdController } from './controller.js';
import { RenderError } from './render.js';

// gRPC codes and the HTTP statuses grpc-gateway maps them to.
const GRPC = {
  InvalidArgument: [3, 400],
  NotFound: [5, 404],
  PermissionDenied: [7, 403],
  FailedPrecondition: [9, 400],
  Unauthenticated: [16, 401],
  Unknown: [2, 500],
} as const;

export class ArgoError extends Error {
  constructor(
    readonly grpc: keyof typeof GRPC,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, e: ArgoError): void {
  const [code, status] = GRPC[e.grpc];
  send(res, status, { error: e.message, code, message: e.message });
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** HS256 tokens like Argo CD's local-user sessions (iss argocd, sub the user). */
export class Sessions {
  private readonly key = randomBytes(32);

  issue(username: string): string {
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const payload = b64url(
      JSON.stringify({
        iss: 'argocd',
        sub: username,
        exp: now + 24 * 3600,
        nbf: now,
        iat: now,
        jti: randomUUID(),
      }),
    );
    return `${header}.${payload}.${this.sign(`${header}.${payload}`)}`;
  }

  private sign(data: string): string {
    return createHmac('sha256', this.key).update(data).digest('base64url');
  }

  /** The token's user, or null when it is not one of ours or has expired. */
  verify(token: string): string | null {
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    const want = Buffer.from(this.sign(`${parts[0]}.${parts[1]}`));
    const got = Buffer.from(parts[2]);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
    try {
      const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString()) as {
        sub?: string;
        exp?: number;
      };
      if (!claims.sub || (claims.exp ?? 0) * 1000 < Date.now()) return null;
      return claims.sub;
    } catch {
      return null;
    }
  }
}

/** Argo CD's token lookup: Authorization: Bearer, then the argocd.token cookie (3 dot parts each). */
export function tokenOf(req: IncomingMessage): string | null {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) {
    const t = auth.slice(7).trim();
    if (t.split('.').length === 3) return t;
  }
  for (const c of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = c.trim().split('=');
    if (k === 'argocd.token' && v.join('=').split('.').length === 3) return v.join('=');
  }
  return null;
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new ArgoError('InvalidArgument', 'request body too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function json(raw: Buffer): Record<string, unknown> {
  if (raw.length === 0) return {};
  try {
    const v = JSON.parse(raw.toString('utf8'));
    return typeof v === 'object' && v !== null ? v : {};
  } catch (e) {
    throw new ArgoError('InvalidArgument', `invalid character in request body: ${(e as Error).message}`);
  }
}

const sha512 = (s: string) => createHash('sha512').update(s).digest();

export function argocdApi(
  controller: ArgocdController,
  o: { users: Record<string, string>; gitlabWebhookSecret?: string },
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const sessions = new Sessions();
  const user = (req: IncomingMessage) => {
    const t = tokenOf(req);
    return t ? sessions.verify(t) : null;
  };
  const requireUser = (req: IncomingMessage) => {
    const u = user(req);
    if (!u) {
      throw new ArgoError(
        'Unauthenticated',
        tokenOf(req) ? 'invalid session: token signature is invalid' : 'no session information',
      );
    }
    return u;
  };
  // Argo CD answers "permission denied" for an app that does not exist, so that names
  // cannot be probed.
  const app = (name: string) => {
    const a = controller.getWithTree(name);
    if (!a) throw new ArgoError('PermissionDenied', 'permission denied');
    return a;
  };

  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://argocd');
    const method = req.method ?? 'GET';
    const path = url.pathname.replace(/\/+$/, '');
    try {
      if (path === '/api/webhook') return await webhook(req, res, method);
      if (path === '/api/v1/session' && method === 'POST') {
        const body = json(await readBody(req, 1 << 20));
        const username = String(body.username ?? '');
        const password = String(body.password ?? '');
        const want = o.users[username];
        const ok =
          want !== undefined && timingSafeEqual(sha512(password), sha512(want)) && password.length > 0;
        if (!ok) throw new ArgoError('Unauthenticated', 'Invalid username or password');
        return send(res, 200, { token: sessions.issue(username) });
      }
      if (path === '/api/v1/session' && method === 'DELETE') {
        requireUser(req);
        return send(res, 200, {});
      }
      if (path === '/api/v1/session/userinfo' && method === 'GET') {
        const u = user(req);
        return send(res, 200, u ? { loggedIn: true, username: u, iss: 'argocd' } : { loggedIn: false });
      }
      if (path === '/api/v1/applications' && method === 'GET') {
        requireUser(req);
        const names = url.searchParams.getAll('name');
        const projects = [...url.searchParams.getAll('projects'), ...url.searchParams.getAll('project')];
        const repo = url.searchParams.get('repo');
        const items = controller
          .names()
          .map((n) => controller.get(n)!)
          .filter((a) => names.length === 0 || names.includes(a.metadata.name))
          .filter((a) => projects.length === 0 || projects.includes(a.spec.project))
          .filter((a) => !repo || a.spec.source.repoURL === repo);
        const version = Math.max(0, ...items.map((a) => Number(a.metadata.resourceVersion)));
        return send(res, 200, { metadata: { resourceVersion: String(version) }, items });
      }
      const m = /^\/api\/v1\/applications\/([^/]+)(\/sync)?$/.exec(path);
      if (m) {
        const username = requireUser(req);
        const name = decodeURIComponent(m[1]);
        app(name);
        if (!m[2] && method === 'GET') {
          const refresh = url.searchParams.get('refresh');
          // absent: the stored app; `hard` drops the manifest cache; anything else: normal.
          if (refresh !== null) await controller.refresh(name, refresh === 'hard');
          return send(res, 200, app(name));
        }
        if (m[2] && method === 'POST') {
          const body = json(await readBody(req, 1 << 20));
          const revision = typeof body.revision === 'string' && body.revision ? body.revision : undefined;
          let started: boolean;
          try {
            started = await controller.sync(name, { username }, revision);
          } catch (e) {
            if (e instanceof RenderError) throw new ArgoError('Unknown', e.message);
            throw e;
          }
          if (!started) throw new ArgoError('FailedPrecondition', 'another operation is already in progress');
          return send(res, 200, app(name));
        }
      }
      send(res, 404, { error: 'Not Found', code: 5, message: 'Not Found' });
    } catch (e) {
      if (e instanceof ArgoError) return sendError(res, e);
      throw e;
    }
  };

  // util/webhook: a GitLab event refreshes the apps whose source is that repository and
  // tracks the pushed branch. Plain-text answers, 400 for anything it cannot use.
  async function webhook(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    const text = (status: number, body: string) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(body ? `${body}\n` : '');
    };
    if (method !== 'POST') return text(405, 'Method not allowed');
    const event = String(req.headers['x-gitlab-event'] ?? '');
    if (!event) return text(400, 'Unknown webhook event');
    let raw: Buffer;
    try {
      raw = await readBody(req, 50 << 20);
    } catch {
      return text(400, 'Webhook processing failed: payload too large');
    }
    const secret = o.gitlabWebhookSecret;
    if (secret) {
      const given = String(req.headers['x-gitlab-token'] ?? '');
      if (!timingSafeEqual(sha512(given), sha512(secret))) return text(400, 'Webhook processing failed');
    }
    if (!['Push Hook', 'Tag Push Hook', 'System Hook'].includes(event))
      return text(400, 'Webhook processing failed');
    let payload: { ref?: string; project?: { web_url?: string; default_branch?: string } };
    try {
      payload = JSON.parse(raw.toString('utf8'));
    } catch {
      return text(400, 'Webhook processing failed');
    }
    const ref = payload.ref ?? '';
    const branch = ref.replace(/^refs\/(heads|tags)\//, '');
    const webUrl = payload.project?.web_url ?? '';
    for (const name of controller.appsTracking(webUrl, branch, payload.project?.default_branch ?? '')) {
      // Argo CD queues the refresh and answers at once.
      void controller.refresh(name).catch(() => {});
    }
    text(200, '');
  }
}
