// Pacing GitLab API requests by the rate limit GitLab reports, so that gitops-bot slows down
// before GitLab answers 429 rather than after. GitLab's throttle (Rack::Attack; GitLab.com:
// 2,000 authenticated API requests a minute per user) counts in fixed windows and tells, on
// every answer, what is left: RateLimit-Remaining of the window ending at RateLimit-Reset.
//
// One Pacer per GitLab host and token in a thread (module state: `serve`'s job worker and
// its main thread each have their own, and each learns the budget from its own answers):
// eight promotions running at once in `serve` or a bench draw on one budget, and while it
// is short they queue for it one by one instead of all firing into a 429. Other processes
// and threads (many pipelines at once, each its own gitops-bot) have no shared state with
// us, but they spend the same server-side counter, and each sees it in the headers: as
// Remaining falls every one spreads its requests over what is left of the window, so
// together they slow down too. They can still overshoot (each counts on the whole
// remainder), and a 429 then is retry.ts's to wait out (Retry-After).
//
// GitLab has several throttles (RateLimit-Name: throttle_authenticated_api, the files API's
// throttle_authenticated_files_api, the deprecated API's, ...), each its own counter with
// its own window; a request counts against one of them, chosen by its path. So the budget is
// kept per throttle name, and each route (the path's shape: projects/:id/repository/files)
// is paced by the throttle that last answered it. A route not answered yet could fall under
// any of them: it is paced by the most constrained budget known (the one that would make it
// wait longest), so a new route never spends the last of a budget it might count against.
//
// Without RateLimit-* headers (a self-managed GitLab with the throttle off) nothing is paced.
import { createHash } from 'node:crypto';
import { log } from '../base/log.js';

/** What GitLab last said of the window, with our own requests since counted in. */
export interface Budget {
  /** requests left in the window: the last Remaining, less what we sent since */
  remaining: number;
  /** the window's limit: Observed + Remaining of an answer within it */
  limit: number;
  /** when the window ends, on our clock, ms */
  resetAt: number;
}

/** Below this many requests left, the rest is spread over the window; above it, no wait at all. */
export function reserve(limit: number): number {
  return Math.max(1, Math.ceil(limit / 10));
}

/**
 * How long to wait before the next request, ms. Nothing known, a window over, or more than
 * the reserve left: 0 (a normal run never waits). Nothing left: until the reset. Otherwise the
 * time left divided evenly among the requests left, counted from the last one sent.
 */
export function paceDelay(budget: Budget | null, now: number, lastSentAt: number): number {
  if (!budget || now >= budget.resetAt) return 0;
  if (budget.remaining > reserve(budget.limit)) return 0;
  if (budget.remaining <= 0) return budget.resetAt - now;
  const spacing = (budget.resetAt - now) / budget.remaining;
  return Math.max(0, Math.ceil(lastSentAt + spacing - now));
}

/** The window an answer describes, or null when it carries no (usable) RateLimit-* headers. */
export interface WindowSeen {
  remaining: number;
  limit: number;
  /** RateLimit-Reset: the window's end, unix seconds (it names the window) */
  reset: number;
  /** the window's end on our clock, ms */
  resetAt: number;
}

const int = (v: string | null) => (v !== null && /^\d+$/.test(v.trim()) ? Number(v) : null);

/**
 * Reads an answer's RateLimit-* headers. The time to the reset is taken against the answer's
 * Date (GitLab's clock), so a skewed local clock does not shorten a wait; Date has whole
 * seconds, which errs on the late side.
 */
export function windowSeen(h: Headers, now: number): WindowSeen | null {
  const remaining = int(h.get('ratelimit-remaining'));
  const reset = int(h.get('ratelimit-reset'));
  if (remaining === null || reset === null) return null;
  const observed = int(h.get('ratelimit-observed'));
  // RateLimit-Limit is per 60 s whatever the throttle's period; Observed + Remaining is the
  // window's own limit while it is not yet spent; spent, Observed may have gone past it
  const limit =
    observed !== null && remaining > 0
      ? observed + remaining
      : (int(h.get('ratelimit-limit')) ?? observed ?? remaining);
  const date = Date.parse(h.get('date') ?? '');
  const untilReset = Number.isNaN(date) ? reset * 1000 - now : reset * 1000 - date;
  return { remaining, limit, reset, resetAt: now + Math.max(0, untilReset) };
}

export interface PacerOptions {
  /** for the log line: where, never the token */
  host: string;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** a wait at least this long is logged (once per wait) */
  logAfterMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One throttle's budget as we know it, and its queue. */
interface Throttle {
  budget: Budget | null;
  /** RateLimit-Reset of the window `budget` is about */
  window: number;
  lastSentAt: number;
  /** requests waiting for their turn: they leave in order, one pacing decision each */
  queue: Promise<void>;
}

const newThrottle = (): Throttle => ({
  budget: null,
  window: 0,
  lastSentAt: Number.NEGATIVE_INFINITY,
  queue: Promise.resolve(),
});

/**
 * A request's route for the pacer: the API path's first four segments, ids (the segment
 * after the top-level collection, numbers) as `:id`. GitLab picks a request's throttle by
 * its path (Gitlab::RackAttack::Request: files_api_path?, ...), and these shapes keep apart
 * the ones that differ: projects/:id/repository/files, projects/:id/repository/compare,
 * projects/:id/merge_requests/:id.
 */
export function routeOf(pathname: string): string {
  const segments = pathname
    .replace(/^.*?\/api\/v4\//, '') // GitLab under a path (relative_url_root) too
    .split('/')
    .filter(Boolean)
    .slice(0, 4);
  return segments.map((seg, i) => (i === 1 || /^\d+$/.test(seg) ? ':id' : seg)).join('/');
}

/**
 * The budgets of one host and token, per throttle: `send` before each request, `answered`
 * after it, both with the request's route.
 */
export class Pacer {
  /** by RateLimit-Name ('' for answers that name none) */
  private readonly throttles = new Map<string, Throttle>();
  /** route -> the throttle that last answered it */
  private readonly routes = new Map<string, string>();
  /** requests sent and not answered yet, whatever their throttle */
  private inFlight = 0;
  /** total time requests spent waiting, ms */
  waitedMs = 0;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly opts: PacerOptions) {
    this.now = opts.now ?? Date.now;
    this.sleep = opts.sleep ?? sleep;
  }

  /**
   * The throttle a request on `route` is paced by: the one that answered the route last;
   * for a route not answered yet, the one whose budget would make it wait longest now.
   */
  private throttleFor(route: string): Throttle {
    const known = this.routes.get(route);
    if (known !== undefined) return this.throttle(known);
    let worst: Throttle | null = null;
    let worstDelay = -1;
    const now = this.now();
    for (const t of this.throttles.values()) {
      const d = t.budget ? paceDelay(t.budget, now, t.lastSentAt) : 0;
      // among equals, the one with the least left
      if (
        d > worstDelay ||
        (d === worstDelay && (t.budget?.remaining ?? Infinity) < (worst?.budget?.remaining ?? Infinity))
      ) {
        worst = t;
        worstDelay = d;
      }
    }
    return worst ?? this.throttle('');
  }

  private throttle(name: string): Throttle {
    let t = this.throttles.get(name);
    if (!t) {
      t = newThrottle();
      this.throttles.set(name, t);
    }
    return t;
  }

  /**
   * Resolves when the next request on `route` may be sent; counts it as sent. Returns how
   * long it waited for its turn, ms: queueing, which retry.ts does not count as failing.
   */
  async send(route = ''): Promise<number> {
    const entered = this.now();
    const t = this.throttleFor(route);
    const turn = t.queue;
    let done!: () => void;
    t.queue = new Promise<void>((r) => {
      done = r;
    });
    try {
      await turn;
      for (;;) {
        const wait = paceDelay(t.budget, this.now(), t.lastSentAt);
        if (wait <= 0) break;
        if (wait >= (this.opts.logAfterMs ?? 1000) && t.budget)
          log.warn(
            {
              host: this.opts.host,
              remaining: Math.max(0, t.budget.remaining),
              limit: t.budget.limit,
              waitMs: wait,
            },
            `GitLab rate limit: ${Math.max(0, t.budget.remaining)} of ${t.budget.limit} left, waiting ${Math.ceil(wait / 1000)} s`,
          );
        this.waitedMs += wait;
        await this.sleep(wait);
      }
      t.lastSentAt = this.now();
      this.inFlight++;
      if (t.budget) t.budget.remaining--;
      return t.lastSentAt - entered;
    } finally {
      done();
    }
  }

  /**
   * After each request sent on `route`: what its answer said of its throttle's window (null
   * when it had no answer).
   */
  answered(headers: Headers | null, route = ''): void {
    this.inFlight--;
    const seen = headers && windowSeen(headers, this.now());
    if (!seen) return;
    const name = headers.get('ratelimit-name')?.trim() ?? '';
    this.routes.set(route, name);
    const known = this.throttles.has(name);
    const t = this.throttle(name);
    // first heard of: its requests so far went by another budget; spacing counts from now
    if (!known) t.lastSentAt = this.now();
    if (seen.reset < t.window) return; // an answer from a window of this throttle already over
    // The other requests still in flight may or may not be in this count: assume they are
    // not (those of other throttles too: we cannot tell which throttle counts them).
    const remaining = seen.remaining - this.inFlight;
    if (seen.reset > t.window || !t.budget) {
      t.window = seen.reset;
      t.budget = { remaining, limit: seen.limit, resetAt: seen.resetAt };
      return;
    }
    // the same window: answers arrive out of order; the lowest count left is the latest
    t.budget.remaining = Math.min(t.budget.remaining, remaining);
    t.budget.resetAt = Math.max(t.budget.resetAt, seen.resetAt);
    if (seen.remaining > 0) t.budget.limit = seen.limit;
  }
}

const pacers = new Map<string, Pacer>();

/**
 * The thread's Pacer for a GitLab host and token. The token is kept only as a hash, in
 * the key: GitLab counts per user, and a token is the nearest we can tell one from another.
 */
export function pacerFor(host: string, token: string): Pacer {
  const key = `${host}\n${createHash('sha256').update(token).digest('hex')}`;
  let p = pacers.get(key);
  if (!p) {
    p = new Pacer({ host });
    pacers.set(key, p);
  }
  return p;
}
