// The REST API's front door (/api/v4): injected faults, authentication (private, bearer
// and job tokens), GitLab's RateLimit-* headers and 429, routing, and writing the answer
// in GitLab's shapes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RawBody } from './api-common.js';
import type { SandboxCore } from './core.js';
import type { FaultInjector, FaultKind } from './faults.js';
import {
  ApiError,
  type Ctx,
  Page,
  paginate,
  parseBody,
  type Router,
  readBody,
  sendJson,
  unauthorized,
} from './http.js';
import type { User } from './state.js';

const BODY_LIMIT = 64 * 1024 * 1024;

/**
 * GitLab's authenticated API throttle (Rack::Attack): `limit` requests per `periodS` per user
 * (per IP without a token), in fixed windows aligned to the epoch.
 */
export interface RateLimit {
  limit: number;
  /** throttle_authenticated_api_period_in_seconds (default 60, GitLab.com's) */
  periodS?: number;
}

/**
 * `--rate-limit`: `N/min`, or a bare `N` meaning per minute; requests per minute per user.
 * Throws a one-line error for anything else.
 */
export function parseRateLimit(text: string): number {
  const m = /^\s*(\d+)\s*(?:\/\s*min)?\s*$/.exec(text);
  const n = m ? Number(m[1]) : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new Error(
      `--rate-limit: '${text}' is not N/min (requests per minute per user, N > 0), e.g. 2000/min`,
    );
  return n;
}

/** What Rack::Attack knows of one request: its throttle, the window's count with it, the time. */
export interface ThrottleData {
  name: string;
  limit: number;
  periodS: number;
  /** requests in this window, this one included (a refused request counts too) */
  observed: number;
  /** unix time, s */
  nowS: number;
}

/**
 * GitLab's headers (Gitlab::RackAttack::RequestThrottleData): Name, Limit (per 60 s, rounded
 * up from the period's), Observed, Remaining and Reset (unix time) on every answer; a 429 adds
 * Retry-After (s) and RateLimit-ResetTime (HTTP date).
 */
export function throttleHeaders(t: ThrottleData, throttled: boolean): Record<string, string> {
  const retryAfter = t.periodS - (t.nowS % t.periodS);
  const reset = t.nowS + retryAfter;
  const common: Record<string, string> = {
    'RateLimit-Name': t.name,
    'RateLimit-Limit': String(Math.ceil((t.limit * 60) / t.periodS)),
    'RateLimit-Observed': String(t.observed),
    'RateLimit-Remaining': String(t.limit > t.observed ? t.limit - t.observed : 0),
    'RateLimit-Reset': String(reset),
  };
  if (!throttled) return common;
  return {
    ...common,
    'Retry-After': String(retryAfter),
    'RateLimit-ResetTime': new Date(reset * 1000).toUTCString(),
  };
}

export interface RestOptions {
  core: SandboxCore;
  router: Router;
  /**
   * GitLab's API throttle; without it the sandbox is a GitLab with the throttles off (the
   * self-managed default): no 429s and no RateLimit-* headers, so a client that paces itself
   * by them runs at full speed.
   */
  rateLimit?: RateLimit;
  /** told of each request the throttle refused (the sandbox counts them) */
  onThrottled?: () => void;
  /** the fault injector in force, if any */
  faults: () => FaultInjector | null;
}

export type RestHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  setUser: (u: string | null) => void,
) => Promise<void>;

export function restApi({ core, router, rateLimit, onThrottled, faults }: RestOptions): RestHandler {
  const store = core.store;
  /** Rack::Attack's counters: per throttle key, the window's index and its count */
  const rate = new Map<string, { window: number; count: number }>();

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

  /** Counts the request against its throttle and sets the headers; false when it answered 429. */
  function throttle(res: ServerResponse, user: User | null, ip: string | undefined): boolean {
    if (!rateLimit) return true;
    const periodS = rateLimit.periodS ?? 60;
    const nowS = Math.floor(Date.now() / 1000);
    const window = Math.floor(nowS / periodS);
    const key = user ? `user:${user.id}` : `ip:${ip}`;
    let w = rate.get(key);
    if (!w || w.window !== window) {
      w = { window, count: 0 };
      rate.set(key, w);
    }
    w.count++;
    const name = user ? 'throttle_authenticated_api' : 'throttle_unauthenticated_api';
    const data = { name, limit: rateLimit.limit, periodS, observed: w.count, nowS };
    const throttled = w.count > rateLimit.limit;
    for (const [k, v] of Object.entries(throttleHeaders(data, throttled))) res.setHeader(k, v);
    if (!throttled) return true;
    onThrottled?.();
    // Gitlab::Throttle.rate_limiting_response_text: the admin's text, by default this
    res.writeHead(429, { 'Content-Type': 'text/plain' });
    res.end('Retry later\n');
    return false;
  }

  /** Authenticates, routes and runs one request; null when the rate limit answered it instead. */
  async function dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    setUser: (u: string | null) => void,
  ) {
    const method = req.method ?? 'GET';
    const segments = url.pathname.slice('/api/v4'.length).split('/').filter(Boolean);
    const { user, jobProject } = authenticate(req, url);
    setUser(user?.username ?? null);
    if (!throttle(res, user, req.socket.remoteAddress)) return null;
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
    return { ctx, result: await matched.route.handler(ctx) };
  }

  return async (req, res, url, setUser) => {
    const injector = faults();
    const method = req.method ?? 'GET';
    const segments = url.pathname.slice('/api/v4'.length).split('/').filter(Boolean);
    let fault = injector?.next(method, segments) ?? null;
    if (fault && (await injectFault(fault, injector!, req, res))) return;
    // drop-after-write: do the write, then close the connection instead of answering;
    // hold: do the write, then keep the answer back for slow_ms or until the client is gone
    const dropped = async () => {
      if (fault === 'hold') {
        await held(req, injector!.spec.slowMs);
        return req.socket.destroyed;
      }
      if (fault !== 'drop-after-write') return false;
      req.socket.destroy();
      return true;
    };
    try {
      const done = await dispatch(req, res, url, setUser);
      // after=: the request that starts the faults has been performed; its answer is faulted
      // (a request already faulted before it was performed cannot be that one: none is, before)
      if (!fault && done !== null && res.statusCode < 400 && injector) {
        fault = injector.succeeded(method, segments);
        if (fault && (await injectFault(fault, injector, req, res))) return;
      }
      if (done === null || (await dropped())) return;
      answer(done.ctx, done.result, core.baseUrl);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (res.headersSent || (await dropped())) return;
      for (const name of res.getHeaderNames()) {
        if (name.startsWith('x-') || name === 'link') res.removeHeader(name);
      }
      sendJson(res, e.status, e.body, e.headers);
    }
  };
}

/** Waits ms, or less if the client closes the connection first. */
function held(req: IncomingMessage, ms: number): Promise<void> {
  if (req.socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      req.socket.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    req.socket.once('close', done);
  });
}

/** Plays an injected fault; true when it has answered (or dropped) the request. */
async function injectFault(
  fault: FaultKind,
  injector: FaultInjector,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  const method = req.method ?? 'GET';
  const spec = injector.spec;
  if (fault === 'reset' || (fault === 'drop-after-write' && (method === 'GET' || method === 'HEAD'))) {
    req.socket.destroy();
    return true;
  }
  if (fault === '429') {
    res.setHeader('Retry-After', String(spec.retryAfterS));
    res.writeHead(429, { 'Content-Type': 'text/plain' });
    res.end('Retry later\n');
    return true;
  }
  if (fault === '500') {
    sendJson(res, 500, { message: '500 Internal Server Error' });
    return true;
  }
  if (fault === '502' || fault === '503') {
    // what the load balancer in front of GitLab answers: HTML, not JSON
    res.writeHead(Number(fault), { 'Content-Type': 'text/html' });
    res.end(
      `<html><body><h1>${fault === '502' ? '502 Bad Gateway' : '503 Service Unavailable'}</h1></body></html>\n`,
    );
    return true;
  }
  if (fault === 'slow') await new Promise((r) => setTimeout(r, spec.slowMs));
  return false;
}

/** A handler's result as GitLab sends it: raw, empty (204), a page with its headers, or JSON. */
function answer(ctx: Ctx, result: unknown, baseUrl: string): void {
  const res = ctx.res;
  if (result instanceof RawBody) {
    res.writeHead(res.statusCode || 200, {
      'Content-Type': result.contentType,
      'Content-Length': result.content.length,
    });
    res.end(ctx.method === 'HEAD' ? undefined : result.content);
    return;
  }
  if (result === undefined && res.statusCode === 204) {
    res.end();
    return;
  }
  const body = result instanceof Page ? paginate(ctx, result.items, baseUrl) : result;
  sendJson(res, res.statusCode || 200, body);
}
