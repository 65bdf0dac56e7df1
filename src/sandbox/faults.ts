// Fault injection: a seeded share of API requests turned into what a real GitLab (or the
// proxies in front of it) does on a bad day. `drop-after-write` is the hard one: the write
// happens, the client never hears back, and only a check can tell it took effect.
//
// SPEC: `rate=0.2,seed=7` or `rate=0.2,kinds=503,429,reset,drop-after-write,slow_ms=1500`.
// `only=PUT /projects/:id/merge_requests/:iid/merge` narrows the faults to one route (the
// others are neither faulted nor drawn for); `after=<route>` starts them once a request to
// that route has succeeded, its own answer the first one faulted. `hold` performs the
// request, then keeps the answer back for slow_ms (or until the client goes away): with
// after=, every answer from the write on is held, a window to kill the client in.
// The decisions come from a seeded generator, so one client's run is reproducible; with
// concurrent clients the order of requests, and so who gets which fault, can differ.

export const FAULT_KINDS = ['500', '502', '503', '429', 'slow', 'reset', 'drop-after-write', 'hold'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** the kinds drawn from when `kinds` is not given: all but `hold`, which is for aiming at one route */
export const DEFAULT_FAULT_KINDS: FaultKind[] = FAULT_KINDS.filter((k) => k !== 'hold');
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

export interface FaultSpec {
  rate: number;
  seed: number;
  kinds: FaultKind[];
  /** how long a slow answer waits before it is handled, ms */
  slowMs: number;
  /** Retry-After on a 429, seconds */
  retryAfterS: number;
  /** only requests to this route are faulted */
  only?: FaultRoute;
  /** no faults until a request to this route has succeeded (its answer the first faulted) */
  after?: FaultRoute;
}

/** `METHOD /path` below /api/v4; a `:name` segment matches any one segment */
export interface FaultRoute {
  method: string;
  segments: string[];
}

export class FaultSpecError extends Error {
  override name = 'FaultSpecError';
}

export function parseFaults(spec: string): FaultSpec {
  const out: FaultSpec = { rate: 0, seed: 1, kinds: [...DEFAULT_FAULT_KINDS], slowMs: 1000, retryAfterS: 1 };
  let key = '';
  for (const part of spec.split(',').map((p) => p.trim())) {
    if (!part) continue;
    const eq = part.indexOf('=');
    // `kinds=503,429` lists continue after commas
    if (eq < 0 && key === 'kinds') {
      out.kinds.push(kind(part));
      continue;
    }
    if (eq < 0) throw new FaultSpecError(`--faults: '${part}' is not key=value`);
    key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    const num = () => {
      const n = Number(value);
      if (value === '' || !Number.isFinite(n) || n < 0)
        throw new FaultSpecError(`--faults: ${key}=${value} is not a number >= 0`);
      return n;
    };
    if (key === 'rate') {
      out.rate = num();
      if (out.rate > 1) throw new FaultSpecError(`--faults: rate=${value} is over 1`);
    } else if (key === 'seed') out.seed = Math.floor(num());
    else if (key === 'slow_ms') out.slowMs = num();
    else if (key === 'retry_after') out.retryAfterS = Math.floor(num());
    else if (key === 'kinds') out.kinds = [kind(value)];
    else if (key === 'only') out.only = route(key, value);
    else if (key === 'after') out.after = route(key, value);
    else
      throw new FaultSpecError(
        `--faults: unknown key '${key}' (known: rate, seed, kinds, slow_ms, retry_after, only, after)`,
      );
  }
  return out;
}

function kind(k: string): FaultKind {
  if (!(FAULT_KINDS as readonly string[]).includes(k))
    throw new FaultSpecError(`--faults: unknown kind '${k}' (known: ${FAULT_KINDS.join(', ')})`);
  return k as FaultKind;
}

function route(key: string, value: string): FaultRoute {
  const m = /^([A-Za-z]+) +(\/\S*)$/.exec(value);
  if (!m || !METHODS.includes(m[1].toUpperCase()))
    throw new FaultSpecError(
      `--faults: ${key}=${value} is not 'METHOD /path' (e.g. ${key}=PUT /projects/:id/merge_requests/:iid/merge)`,
    );
  return { method: m[1].toUpperCase(), segments: m[2].split('/').filter(Boolean) };
}

/** Whether a request (its method, its path's segments below /api/v4) is to the route. */
export function routeMatches(r: FaultRoute, method: string, segments: string[]): boolean {
  if (r.method !== method || r.segments.length !== segments.length) return false;
  return r.segments.every((p, i) => p.startsWith(':') || p === segments[i]);
}

/** mulberry32: small, fast, and good enough to spread faults evenly; the same seed, the same numbers. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultInjector {
  readonly counts: Record<string, number> = {};
  private readonly random: () => number;

  /** whether faults are in force: from the start, or once the `after` route has succeeded */
  private armed: boolean;

  constructor(readonly spec: FaultSpec) {
    this.random = mulberry32(spec.seed);
    this.armed = !spec.after;
  }

  /**
   * After a request succeeded: when it is the one that starts the faults (`after`), the
   * fault for its answer (the first one drawn); otherwise null.
   */
  succeeded(method: string, segments: string[]): FaultKind | null {
    if (this.armed || !this.spec.after || !routeMatches(this.spec.after, method, segments)) return null;
    this.armed = true;
    return this.next(method, segments);
  }

  /** The fault for the next request, or null (always before `after`, or off the `only` route). */
  next(method: string, segments: string[]): FaultKind | null {
    if (!this.armed) return null;
    if (this.spec.only && !routeMatches(this.spec.only, method, segments)) return null;
    const hit = this.random() < this.spec.rate;
    const k = this.spec.kinds[Math.floor(this.random() * this.spec.kinds.length)];
    if (!hit || !k) return null;
    this.counts[k] = (this.counts[k] ?? 0) + 1;
    return k;
  }
}
