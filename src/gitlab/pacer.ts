// Pacing GitLab API requests by the rate limit GitLab reports, so that gitops-bot slows down
// before GitLab answers 429 rather than after. GitLab's throttle (Rack::Attack; GitLab.com:
// 2,000 authenticated API requests a minute per user) counts in fixed windows and tells, on
// every answer, what is left: RateLimit-Remaining of the window ending at RateLimit-Reset.
//
// One Pacer per GitLab host and token in a process: eight promotions running at once in
// `serve` or a bench draw on one budget, and while it is short they queue for it one by one
// instead of all firing into a 429. Other processes (many pipelines at once, each its own
// gitops-bot) have no shared state with us, but they spend the same server-side counter, and
// each sees it in the headers: as Remaining falls every process spreads its requests over
// what is left of the window, so together they slow down too. They can still overshoot (each
// counts on the whole remainder), and a 429 then is retry.ts's to wait out (Retry-After).
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

/** The budget of one host and token: `send` before each request, `answered` after it. */
export class Pacer {
  private budget: Budget | null = null;
  /** RateLimit-Reset of the window `budget` is about */
  private window = 0;
  private inFlight = 0;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  /** requests waiting for their turn: they leave in order, one pacing decision each */
  private queue: Promise<void> = Promise.resolve();
  /** total time requests spent waiting, ms */
  waitedMs = 0;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly opts: PacerOptions) {
    this.now = opts.now ?? Date.now;
    this.sleep = opts.sleep ?? sleep;
  }

  /** Resolves when the next request may be sent; counts it as sent. */
  async send(): Promise<void> {
    const turn = this.queue;
    let done!: () => void;
    this.queue = new Promise<void>((r) => {
      done = r;
    });
    try {
      await turn;
      for (;;) {
        const wait = paceDelay(this.budget, this.now(), this.lastSentAt);
        if (wait <= 0) break;
        if (wait >= (this.opts.logAfterMs ?? 1000) && this.budget)
          log.warn(
            {
              host: this.opts.host,
              remaining: Math.max(0, this.budget.remaining),
              limit: this.budget.limit,
              waitMs: wait,
            },
            `GitLab rate limit: ${Math.max(0, this.budget.remaining)} of ${this.budget.limit} left, waiting ${Math.ceil(wait / 1000)} s`,
          );
        this.waitedMs += wait;
        await this.sleep(wait);
      }
      this.lastSentAt = this.now();
      this.inFlight++;
      if (this.budget) this.budget.remaining--;
    } finally {
      done();
    }
  }

  /** After each request sent: what its answer said of the window (null when it had no answer). */
  answered(headers: Headers | null): void {
    this.inFlight--;
    const seen = headers && windowSeen(headers, this.now());
    if (!seen || seen.reset < this.window) return; // an answer from a window already over
    // The other requests still in flight may or may not be in this count: assume not.
    const remaining = seen.remaining - this.inFlight;
    if (seen.reset > this.window || !this.budget) {
      this.window = seen.reset;
      this.budget = { remaining, limit: seen.limit, resetAt: seen.resetAt };
      return;
    }
    // the same window: answers arrive out of order; the lowest count left is the latest
    this.budget.remaining = Math.min(this.budget.remaining, remaining);
    this.budget.resetAt = Math.max(this.budget.resetAt, seen.resetAt);
    if (seen.remaining > 0) this.budget.limit = seen.limit;
  }
}

const pacers = new Map<string, Pacer>();

/**
 * The process's Pacer for a GitLab host and token. The token is kept only as a hash, in
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
