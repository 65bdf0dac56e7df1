// The sandbox's own endpoints, outside GitLab's API (/-/sandbox/...): health, the request
// log, injected fault counts, webhook deliveries and resends, and (with an admin token)
// new users and CI job tokens.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SandboxCore } from './core.js';
import type { Entities } from './entities.js';
import { ApiError, parseBody, readBody, sendJson, unauthorized } from './http.js';
import { addUser } from './seed.js';
import type { Webhooks } from './webhooks.js';

export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
  ms: number;
  user: string | null;
  at: string;
}

export interface AdminDeps {
  core: SandboxCore;
  entities: Entities;
  webhooks: Webhooks;
  requests: RequestLogEntry[];
  /** faults injected so far, by kind */
  faultCounts: () => Record<string, number>;
}

export type AdminHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;

export function sandboxAdmin({ core, entities, webhooks, requests, faultCounts }: AdminDeps): AdminHandler {
  const store = core.store;

  /** POST /-/sandbox/users: a user, with a token of its own choosing or a new one. */
  const createUser = (body: Record<string, unknown>) => {
    const username = String(body.username ?? '');
    if (!/^[a-zA-Z0-9_.-]+$/.test(username)) throw new ApiError(400, { error: 'username is invalid' });
    if (store.userByName(username)) throw new ApiError(409, { message: 'Username has already been taken' });
    const token = body.token === undefined ? undefined : String(body.token);
    if (token !== undefined && (!/^[A-Za-z0-9_-]{8,}$/.test(token) || store.userByToken(token)))
      throw new ApiError(400, { error: 'token must be 8 or more of A-Z a-z 0-9 _ - and unused' });
    const u = addUser(core, username, String(body.name ?? username), {
      isAdmin: body.admin === true,
      bot: body.bot === true,
      ...(token ? { token } : {}),
    });
    return { ...entities.currentUser(u), token: u.token };
  };

  /** POST /-/sandbox/job-tokens: a CI_JOB_TOKEN for a job of `project` run by `username`. */
  const createJobToken = (body: Record<string, unknown>) => {
    const u = store.userByName(String(body.username ?? ''));
    const p = store.project(String(body.project ?? ''));
    if (!u || !p) throw new ApiError(404, { message: '404 Not found' });
    const token = `glcbt-${randomBytes(12).toString('hex')}`;
    store.data.jobTokens.push({ token, userId: u.id, projectId: p.id });
    store.changed();
    return { token };
  };

  async function route(req: IncomingMessage, res: ServerResponse, path: string, method: string) {
    const isAdmin = () => {
      const token = (req.headers['private-token'] as string | undefined) ?? '';
      if (!store.userByToken(token)?.isAdmin) throw unauthorized();
    };
    if (path === '/health') return sendJson(res, 200, { status: 'ok' });
    if (path === '/faults' && method === 'GET') return sendJson(res, 200, { faults: faultCounts() });
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
      return sendJson(res, 201, createUser(body));
    }
    if (path === '/job-tokens' && method === 'POST') {
      isAdmin();
      return sendJson(res, 201, createJobToken(body));
    }
    return sendJson(res, 404, { error: '404 Not Found' });
  }

  return async (req, res, url) => {
    try {
      await route(req, res, url.pathname.slice('/-/sandbox'.length), req.method ?? 'GET');
    } catch (e) {
      if (e instanceof ApiError) return sendJson(res, e.status, e.body);
      throw e;
    }
  };
}
