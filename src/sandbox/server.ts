// startSandbox(): the GitLab sandbox as a library. The CLI, the demo, the tests and the
// benchmarks all start it through here.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RawBody } from './api-common.js';
import { ROUTES } from './api-routes.js';
import { SandboxCore } from './core.js';
import { Entities } from './entities.js';
import { FaultInjector, type FaultSpec, parseFaults } from './faults.js';
import { handleGit, isGitRequest } from './git-http.js';
import {
  ApiError,
  type Ctx,
  Page,
  paginate,
  parseBody,
  Router,
  readBody,
  sendJson,
  unauthorized,
} from './http.js';
import { handleJwtAuth, type RegistryTokenOptions } from './registry-auth.js';
import { addUser, type SeedName, seed } from './seed.js';
import { Store, type User } from './state.js';
import { Webhooks } from './webhooks.js';

export interface SandboxOptions {
  host?: string;
  /** 0 picks a free port */
  port?: number;
  /** keep state here across restarts; without it a temporary folder is used and removed on close */
  dataDir?: string;
  seed?: SeedName;
  /** binding anything but loopback must be asked for explicitly */
  allowNonLoopback?: boolean;
  /** requests per minute per user before 429 (default: unlimited, headers only) */
  rateLimit?: number;
  /** inject faults into API answers (see faults.ts), e.g. `rate=0.2,seed=7` */
  faults?: string | FaultSpec;
  /** serve GitLab's registry token service at /jwt/auth, signing with this key */
  registryTokens?: RegistryTokenOptions;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
  ms: number;
  user: string | null;
  at: string;
}

export interface Sandbox {
  url: string;
  apiUrl: string;
  dataDir: string;
  users: Array<{ username: string; token: string; admin: boolean }>;
  core: SandboxCore;
  webhooks: Webhooks;
  requests: RequestLogEntry[];
  /** faults injected so far, by kind */
  faults(): Record<string, number>;
  /** change the fault injection while running (null: none) */
  setFaults(spec: string | FaultSpec | null): void;
  /** waits until every webhook delivery has finished */
  idle(): Promise<void>;
  /**
   * Waits until the sandbox and the given hook receivers are quiet together: deliveries
   * done, receivers idle, and no new delivery caused by their work.
   */
  settle(...receivers: Array<{ idle(): Promise<void> }>): Promise<void>;
  close(): Promise<void>;
}

const BODY_LIMIT = 64 * 1024 * 1024;
const RATE_WINDOW_S = 60;

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopback(host) && !opts.allowNonLoopback) {
    throw new Error(
      `refusing to bind ${host}: the sandbox binds loopback unless --host names another address`,
    );
  }
  const temporary = !opts.dataDir;
  const dataDir = opts.dataDir ? resolve(opts.dataDir) : await mkdtemp(join(tmpdir(), 'gitops-bot-sandbox-'));
  await mkdir(join(dataDir, 'repos'), { recursive: true });
  const store = await Store.load(join(dataDir, 'state.json'));
  const webhooks = new Webhooks(store);
  const core = new SandboxCore(store, dataDir, webhooks);
  const entities = new Entities(core);
  webhooks.presenters = {
    user: (u) => entities.user(u),
    hookProject: (p) => entities.hookProject(p),
    hookMergeRequest: (p, mr) => entities.hookMergeRequest(p, mr),
    hookCommit: (p, c) => entities.hookCommit(p, c),
  };
  if (store.data.users.length === 0) await seed(core, opts.seed ?? 'story');

  const router = new Router();
  for (const register of ROUTES) register(router, { core, entities });

  const requests: RequestLogEntry[] = [];
  const rate = new Map<string, { windowStart: number; count: number }>();
  let injector: FaultInjector | null = null;
  const setFaults = (spec: string | FaultSpec | null | undefined) => {
    injector = spec ? new FaultInjector(typeof spec === 'string' ? parseFaults(spec) : spec) : null;
  };
  setFaults(opts.faults);

  const server: Server = createServer((req, res) => {
    const started = performance.now();
    let who: string | null = null;
    res.on('finish', () => {
      // The sandbox's own endpoints are not what a client did to "GitLab": not logged.
      if ((req.url ?? '').startsWith('/-/sandbox/')) return;
      if (requests.length >= 200_000) requests.splice(0, 100_000);
      requests.push({
        method: req.method ?? 'GET',
        path: (req.url ?? '/').split('?')[0],
        status: res.statusCode,
        ms: Math.round((performance.now() - started) * 100) / 100,
        user: who,
        at: new Date().toISOString(),
      });
    });
    handle(req, res, (u) => {
      who = u;
    }).catch((e: Error) => {
      process.stderr.write(`sandbox: ${req.method} ${req.url}: ${e.stack ?? e.message}\n`);
      if (!res.headersSent) sendJson(res, 500, { message: '500 Internal Server Error' });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse, setUser: (u: string | null) => void) {
    const url = new URL(req.url ?? '/', core.baseUrl);
    if (url.pathname.startsWith('/api/v4/')) return api(req, res, url, setUser);
    if (url.pathname.startsWith('/-/sandbox/')) return admin(req, res, url);
    if (url.pathname === '/jwt/auth' && opts.registryTokens)
      return handleJwtAuth(core, opts.registryTokens, req, res, url, setUser);
    if (isGitRequest(url.pathname)) {
      await handleGit(core, req, res, url, setUser);
      return;
    }
    sendJson(res, 404, { error: '404 Not Found' });
  }

  function authenticate(req: IncomingMessage, url: URL): { user: User | null; jobProject: number | null } {
    const h = req.headers;
    const privateToken = (h['private-token'] as string | undefined) ?? url.searchParams.get('private_token');
    const bearer = h.authorization?.startsWith('Bearer ') ? h.authorization.slice(7) : undefined;
    const jobToken = (h['job-token'] as string | undefined) ?? url.searchParams.get('job_token');
    const token = privateToken ?? bearer;
    if (token !== undefined && token !== null) {
      const user = store.userByToken(token);
      if (!user) throw unauthorized();
      return { user, jobProject: null };
    }
    if (jobToken) {
      const job = store.data.jobTokens.find((t) => t.token === jobToken);
      const user = job && store.user(job.userId);
      if (!job || !user) throw unauthorized();
      return { user, jobProject: job.projectId };
    }
    return { user: null, jobProject: null };
  }

  function rateHeaders(res: ServerResponse, key: string): boolean {
    const now = Math.floor(Date.now() / 1000);
    let w = rate.get(key);
    if (!w || now - w.windowStart >= RATE_WINDOW_S) {
      w = { windowStart: now, count: 0 };
      rate.set(key, w);
    }
    w.count++;
    const limit = opts.rateLimit ?? 2000;
    const reset = w.windowStart + RATE_WINDOW_S;
    res.setHeader('RateLimit-Limit', String(limit));
    res.setHeader('RateLimit-Name', 'throttle_authenticated_api');
    res.setHeader('RateLimit-Observed', String(w.count));
    res.setHeader('RateLimit-Remaining', String(Math.max(0, limit - w.count)));
    res.setHeader('RateLimit-Reset', String(reset));
    if (opts.rateLimit !== undefined && w.count > opts.rateLimit) {
      res.setHeader('RateLimit-ResetTime', new Date(reset * 1000).toUTCString());
      res.setHeader('Retry-After', String(Math.max(1, reset - now)));
      res.writeHead(429, { 'Content-Type': 'text/plain' });
      res.end('Retry later\n');
      return false;
    }
    return true;
  }

  async function api(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    setUser: (u: string | null) => void,
  ) {
    const method = req.method ?? 'GET';
    const segments = url.pathname.slice('/api/v4'.length).split('/').filter(Boolean);
    const fault = injector?.next() ?? null;
    if (fault) {
      const spec = injector!.spec;
      if (fault === 'reset' || (fault === 'drop-after-write' && (method === 'GET' || method === 'HEAD'))) {
        req.socket.destroy();
        return;
      }
      if (fault === '429') {
        res.setHeader('Retry-After', String(spec.retryAfterS));
        res.writeHead(429, { 'Content-Type': 'text/plain' });
        res.end('Retry later\n');
        return;
      }
      if (fault === '500') return sendJson(res, 500, { message: '500 Internal Server Error' });
      if (fault === '502' || fault === '503') {
        // what the load balancer in front of GitLab answers: HTML, not JSON
        res.writeHead(Number(fault), { 'Content-Type': 'text/html' });
        res.end(
          `<html><body><h1>${fault === '502' ? '502 Bad Gateway' : '503 Service Unavailable'}</h1></body></html>\n`,
        );
        return;
      }
      if (fault === 'slow') await new Promise((r) => setTimeout(r, spec.slowMs));
    }
    // drop-after-write: do the write, then close the connection instead of answering
    const dropped = () => {
      if (fault !== 'drop-after-write') return false;
      req.socket.destroy();
      return true;
    };
    try {
      const { user, jobProject } = authenticate(req, url);
      setUser(user?.username ?? null);
      if (!rateHeaders(res, user ? `user:${user.id}` : `ip:${req.socket.remoteAddress}`)) return;
      const matched = router.match(method, segments);
      if (matched === null) throw new ApiError(404, { error: '404 Not Found' });
      if (matched === 'method') throw new ApiError(405, { error: '405 Not Allowed' });
      // CI_JOB_TOKEN reaches only the few endpoints GitLab allows it.
      if (jobProject !== null && !matched.route.jobToken) throw unauthorized();
      const raw = method === 'GET' || method === 'HEAD' ? Buffer.alloc(0) : await readBody(req, BODY_LIMIT);
      const ctx: Ctx = {
        req,
        res,
        method,
        params: matched.params,
        query: url.searchParams,
        body: parseBody(raw, req.headers['content-type']),
        user,
        jobTokenProjectId: jobProject,
      };
      const result = await matched.route.handler(ctx);
      if (dropped()) return;
      if (result instanceof RawBody) {
        res.writeHead(res.statusCode || 200, {
          'Content-Type': result.contentType,
          'Content-Length': result.content.length,
        });
        res.end(method === 'HEAD' ? undefined : result.content);
        return;
      }
      if (result === undefined && res.statusCode === 204) {
        res.end();
        return;
      }
      const body = result instanceof Page ? paginate(ctx, result.items, core.baseUrl) : result;
      sendJson(res, res.statusCode || 200, body);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (res.headersSent || dropped()) return;
      for (const name of res.getHeaderNames()) {
        if (name.startsWith('x-') || name === 'link') res.removeHeader(name);
      }
      sendJson(res, e.status, e.body, e.headers);
    }
  }

  async function admin(req: IncomingMessage, res: ServerResponse, url: URL) {
    const path = url.pathname.slice('/-/sandbox'.length);
    const method = req.method ?? 'GET';
    const isAdmin = () => {
      const token = (req.headers['private-token'] as string | undefined) ?? '';
      if (!store.userByToken(token)?.isAdmin) throw unauthorized();
    };
    try {
      if (path === '/health') return sendJson(res, 200, { status: 'ok' });
      if (path === '/faults' && method === 'GET')
        return sendJson(res, 200, { faults: injector?.counts ?? {} });
      if (path === '/requests' && method === 'GET') return sendJson(res, 200, { requests });
      if (path === '/requests' && method === 'DELETE') {
        requests.length = 0;
        return sendJson(res, 200, { requests: [] });
      }
      if (path === '/hooks/deliveries' && method === 'GET') {
        await webhooks.idle();
        return sendJson(res, 200, { deliveries: webhooks.deliveries });
      }
      const resend = /^\/hooks\/deliveries\/(\d+)\/resend$/.exec(path);
      if (resend && method === 'POST') {
        isAdmin();
        const d = webhooks.resend(Number(resend[1]));
        return d ? sendJson(res, 201, d) : sendJson(res, 404, { message: '404 Delivery Not Found' });
      }
      const body = parseBody(await readBody(req, 1024 * 1024), req.headers['content-type']);
      if (path === '/users' && method === 'POST') {
        isAdmin();
        const username = String(body.username ?? '');
        if (!/^[a-zA-Z0-9_.-]+$/.test(username)) throw new ApiError(400, { error: 'username is invalid' });
        if (store.userByName(username))
          throw new ApiError(409, { message: 'Username has already been taken' });
        const token = body.token === undefined ? undefined : String(body.token);
        if (token !== undefined && (!/^[A-Za-z0-9_-]{8,}$/.test(token) || store.userByToken(token)))
          throw new ApiError(400, { error: 'token must be 8 or more of A-Z a-z 0-9 _ - and unused' });
        const u = addUser(core, username, String(body.name ?? username), {
          isAdmin: body.admin === true,
          bot: body.bot === true,
          ...(token ? { token } : {}),
        });
        return sendJson(res, 201, { ...entities.currentUser(u), token: u.token });
      }
      if (path === '/job-tokens' && method === 'POST') {
        // A CI_JOB_TOKEN for a job of `project` run by `username`.
        isAdmin();
        const u = store.userByName(String(body.username ?? ''));
        const p = store.project(String(body.project ?? ''));
        if (!u || !p) throw new ApiError(404, { message: '404 Not found' });
        const token = `glcbt-${randomBytes(12).toString('hex')}`;
        store.data.jobTokens.push({ token, userId: u.id, projectId: p.id });
        store.changed();
        return sendJson(res, 201, { token });
      }
      return sendJson(res, 404, { error: '404 Not Found' });
    } catch (e) {
      if (e instanceof ApiError) return sendJson(res, e.status, e.body);
      throw e;
    }
  }

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, host, () => ok());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const urlHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  core.baseUrl = `http://${urlHost}:${port}`;
  webhooks.baseUrl = core.baseUrl;

  let closed = false;
  return {
    url: core.baseUrl,
    apiUrl: `${core.baseUrl}/api/v4`,
    dataDir,
    users: store.data.users.map((u) => ({ username: u.username, token: u.token, admin: u.isAdmin })),
    core,
    webhooks,
    requests,
    faults: () => ({ ...(injector?.counts ?? {}) }),
    setFaults,
    idle: () => webhooks.idle(),
    async settle(...receivers) {
      for (let quiet = 0; quiet < 2; ) {
        const before = webhooks.deliveries.length;
        await webhooks.idle();
        for (const r of receivers) await r.idle();
        await new Promise((r) => setTimeout(r, 30));
        quiet = webhooks.deliveries.length === before ? quiet + 1 : 0;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
      await webhooks.idle();
      await store.flush();
      core.close();
      if (temporary) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
