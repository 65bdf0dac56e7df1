// The sandbox's HTTP plumbing: a route table matched segment by segment (so that GitLab's
// URL-encoded ids such as `root%2Fhelloworld` and file paths stay one segment), GitLab's
// error shapes, request bodies in JSON or form encoding, and offset pagination.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { User } from './state.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof body === 'object' ? JSON.stringify(body) : String(body));
  }
}

// GitLab's own wording for the common cases.
export const unauthorized = () => new ApiError(401, { message: '401 Unauthorized' });
export const forbidden = (message = '403 Forbidden') => new ApiError(403, { message });
export const notFound = (what?: string) =>
  new ApiError(404, { message: what ? `404 ${what} Not Found` : '404 Not found' });
export const badRequest = (message: unknown) => new ApiError(400, { message });
export const conflict = (message: unknown) => new ApiError(409, { message });
/** Grape's validation error for missing required parameters. */
export const missing = (...names: string[]) =>
  new ApiError(400, { error: names.map((n) => `${n} is missing`).join(', ') });

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: Record<string, unknown>;
  user: User | null;
  /** set when authenticated with a CI job token: the calls it may make are limited */
  jobTokenProjectId: number | null;
}

export type Handler = (ctx: Ctx) => Promise<unknown> | unknown;

interface Route {
  method: string;
  segments: string[];
  handler: Handler;
  jobToken: boolean;
}

export class Router {
  private readonly routes: Route[] = [];

  /**
   * Registers `METHOD /path/:param`. A trailing `*name` segment captures the rest.
   * `jobToken` marks the few endpoints a CI_JOB_TOKEN may call.
   */
  on(method: string, path: string, handler: Handler, opts: { jobToken?: boolean } = {}): void {
    this.routes.push({
      method,
      segments: path.split('/').filter(Boolean),
      handler,
      jobToken: opts.jobToken ?? false,
    });
  }

  match(
    method: string,
    rawSegments: string[],
  ): { route: Route; params: Record<string, string> } | 'method' | null {
    // Literal segments beat parameters (`/members/all` over `/members/:uid`), whatever
    // the order routes were registered in.
    let best: { route: Route; params: Record<string, string>; literals: number } | null = null;
    let methodMismatch = false;
    for (const route of this.routes) {
      const params = matchSegments(route.segments, rawSegments);
      if (!params) continue;
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) {
        methodMismatch = true;
        continue;
      }
      const literals = route.segments.filter((s) => !s.startsWith(':') && !s.startsWith('*')).length;
      if (!best || literals > best.literals) best = { route, params, literals };
    }
    if (best) return { route: best.route, params: best.params };
    return methodMismatch ? 'method' : null;
  }
}

function matchSegments(pattern: string[], raw: string[]): Record<string, string> | null {
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p.startsWith('*')) {
      if (i >= raw.length) return null;
      params[p.slice(1)] = raw.slice(i).map(decodeSegment).join('/');
      return params;
    }
    if (i >= raw.length) return null;
    if (p.startsWith(':')) params[p.slice(1)] = decodeSegment(raw[i]);
    else if (p !== raw[i]) return null;
  }
  return pattern.length === raw.length ? params : null;
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ApiError(413, { message: '413 Request Entity Too Large' });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function parseBody(raw: Buffer, contentType: string | undefined): Record<string, unknown> {
  if (!raw.length) return {};
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded')
    return fromSearchParams(new URLSearchParams(raw.toString()));
  try {
    const parsed = JSON.parse(raw.toString('utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new ApiError(400, {
    error: 'The provided content-type is not supported or the body is invalid JSON',
  });
}

/** Query and form parameters: `a[]=1&a[]=2` and `a=1&a=2` become arrays, `b[c]=1` a nested object. */
export function fromSearchParams(sp: URLSearchParams): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of sp) {
    const arr = k.endsWith('[]');
    const nested = /^([^[]+)\[([^\]]+)\]$/.exec(k);
    if (arr) {
      const key = k.slice(0, -2);
      const prev = out[key];
      out[key] = Array.isArray(prev) ? [...prev, v] : [v];
    } else if (nested) {
      const obj = (out[nested[1]] ?? {}) as Record<string, unknown>;
      obj[nested[2]] = v;
      out[nested[1]] = obj;
    } else if (k in out) {
      const prev = out[k];
      out[k] = Array.isArray(prev) ? [...prev, v] : [prev, v];
    } else out[k] = v;
  }
  return out;
}

/** All parameters of a request: query string merged under the body, as Grape does. */
export function param(ctx: Ctx, name: string): unknown {
  if (ctx.body[name] !== undefined) return ctx.body[name];
  const all = ctx.query.getAll(name);
  if (all.length > 1) return all;
  if (all.length === 1) return all[0];
  const arr = ctx.query.getAll(`${name}[]`);
  return arr.length ? arr : undefined;
}

export function str(ctx: Ctx, name: string): string | undefined {
  const v = param(ctx, name);
  if (v === undefined || v === null) return undefined;
  return String(v);
}

export function bool(ctx: Ctx, name: string): boolean | undefined {
  const v = param(ctx, name);
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (s === 'true' || s === '1' || s === 'yes') return true;
  if (s === 'false' || s === '0' || s === 'no') return false;
  throw new ApiError(400, { error: `${name} is invalid` });
}

export function int(ctx: Ctx, name: string): number | undefined {
  const v = param(ctx, name);
  if (v === undefined || v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ApiError(400, { error: `${name} is invalid` });
  return n;
}

/** Integer list from `ids[]=1&ids[]=2`, `ids=1,2` or a JSON array. */
export function intList(ctx: Ctx, name: string): number[] | undefined {
  const v = param(ctx, name);
  if (v === undefined || v === null) return undefined;
  const items = Array.isArray(v) ? v : String(v) === '' ? [] : String(v).split(',');
  const out: number[] = [];
  for (const item of items) {
    const n = Number(item);
    if (!Number.isInteger(n)) throw new ApiError(400, { error: `${name} is invalid` });
    if (n !== 0) out.push(n);
  }
  return out;
}

export function stringList(ctx: Ctx, name: string): string[] | undefined {
  const v = param(ctx, name);
  if (v === undefined || v === null) return undefined;
  const items = Array.isArray(v) ? v.map(String) : String(v).split(',');
  return items.map((s) => s.trim()).filter(Boolean);
}

/** Marks a handler result as a paginated list: the router adds GitLab's headers. */
export class Page {
  constructor(
    readonly items: unknown[],
    /** false for APIs that do not count (the Commits API omits x-total) */
    readonly counted = true,
    readonly hasMore?: boolean,
  ) {}
}

export function paginate(ctx: Ctx, all: unknown[], baseUrl: string): unknown[] {
  const { page, perPage } = pageParams(ctx);
  const total = all.length;
  const totalPages = Math.max(1, Math.ceil(total / perPage));
  const items = all.slice((page - 1) * perPage, page * perPage);
  setPageHeaders(ctx, baseUrl, page, perPage, page < totalPages, { total, totalPages });
  return items;
}

export function pageParams(ctx: Ctx): { page: number; perPage: number } {
  const page = Math.max(1, int(ctx, 'page') ?? 1);
  const perPage = Math.min(100, Math.max(1, int(ctx, 'per_page') ?? 20));
  return { page, perPage };
}

export function setPageHeaders(
  ctx: Ctx,
  baseUrl: string,
  page: number,
  perPage: number,
  hasNext: boolean,
  counts?: { total: number; totalPages: number },
): void {
  const url = new URL(ctx.req.url ?? '/', baseUrl);
  const link = (p: number, rel: string) => {
    url.searchParams.set('page', String(p));
    url.searchParams.set('per_page', String(perPage));
    return `<${url.toString()}>; rel="${rel}"`;
  };
  const links: string[] = [];
  if (page > 1) links.push(link(page - 1, 'prev'));
  if (hasNext) links.push(link(page + 1, 'next'));
  links.push(link(1, 'first'));
  if (counts) links.push(link(counts.totalPages, 'last'));
  const h = ctx.res;
  h.setHeader('Link', links.join(', '));
  h.setHeader('X-Page', String(page));
  h.setHeader('X-Per-Page', String(perPage));
  h.setHeader('X-Next-Page', hasNext ? String(page + 1) : '');
  h.setHeader('X-Prev-Page', page > 1 ? String(page - 1) : '');
  if (counts) {
    h.setHeader('X-Total', String(counts.total));
    h.setHeader('X-Total-Pages', String(counts.totalPages));
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** Listens on `host`:`port` (0: a free port) and answers the server's base URL (an IPv6 host in brackets). */
export async function listenUrl(server: Server, host: string, port = 0): Promise<string> {
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => ok());
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  const urlHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${urlHost}:${bound}`;
}
