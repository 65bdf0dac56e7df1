// The retry policy for GitLab calls. Retried: 429 (after Retry-After or RateLimit-Reset),
// 500/502/503/504, connection resets and timeouts; with exponential backoff and full
// jitter, under a total time budget. A write that is not idempotent is repeated at once only
// when it certainly did not happen (429, connection refused), otherwise after its check
// found no trace of it: a 502 or a reset can come after GitLab committed the change.
//
// A 429 is GitLab's rate limit: a queue, not a failure. Its wait (Retry-After, up to a
// window: 60 s on GitLab.com) is honoured up to maxRateLimitWaitMs and is not held against
// the budget, so a burst that overshoots the limit waits its turn instead of failing. The
// pacer (gitlab/pacer.ts) keeps that rare by slowing down before GitLab says 429; the time a
// request waits in the pacer is queueing too, and is not held against the budget either
// (the transport reports it with `queued`): after a pacer wait of a window, a 502 is still
// retried.
import { AsyncLocalStorage } from 'node:async_hooks';
import { GitbeakerRequestError, GitbeakerTimeoutError } from '@gitbeaker/requester-utils';

export interface RetryPolicy {
  /** attempts in all, the first included */
  attempts: number;
  /** no retry starts after this much time since the first attempt, ms */
  budgetMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /**
   * the longest a 429's Retry-After is waited, ms, outside budgetMs (GitLab's rate limit);
   * unset: a 429's wait is held against the budget like any other
   */
  maxRateLimitWaitMs?: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 6,
  budgetMs: 60_000,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  maxRateLimitWaitMs: 5 * 60_000,
};

/** How a call may be repeated. */
export type Repeat<T> =
  /** reads, and writes that are idempotent (PUT of the same values) */
  | 'safe'
  /** a write and its check: the check returns what the write would have, when it happened */
  | { check: () => Promise<T | undefined> };

export interface Failure {
  status: number;
  retryable: boolean;
  /** the request never reached GitLab's application (or GitLab refused it before acting) */
  notApplied: boolean;
  /** what the server asked us to wait, ms */
  waitMs: number | null;
  reason: string;
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

export function classify(e: unknown, now = Date.now()): Failure {
  if (e instanceof GitbeakerTimeoutError)
    return { status: 0, retryable: true, notApplied: false, waitMs: null, reason: 'timeout' };
  if (e instanceof GitbeakerRequestError) {
    const response = (e.cause as { response?: Response } | undefined)?.response;
    const status = response?.status ?? 0;
    if (status === 429) {
      return {
        status,
        retryable: true,
        notApplied: true,
        waitMs: serverWait(response!.headers, now),
        reason: '429',
      };
    }
    if ([500, 502, 503, 504].includes(status))
      return { status, retryable: true, notApplied: false, waitMs: null, reason: String(status) };
    return { status, retryable: false, notApplied: true, waitMs: null, reason: String(status) };
  }
  // undici: TypeError('fetch failed') with the socket error as its cause
  const cause = (e as { cause?: { code?: string } })?.cause;
  const code = cause?.code ?? (e as { code?: string })?.code;
  if (code && NETWORK_CODES.has(code))
    return { status: 0, retryable: true, notApplied: code === 'ECONNREFUSED', waitMs: null, reason: code };
  if (e instanceof TypeError && /fetch failed|terminated|other side closed/i.test(e.message))
    return { status: 0, retryable: true, notApplied: false, waitMs: null, reason: 'connection lost' };
  return { status: 0, retryable: false, notApplied: false, waitMs: null, reason: 'error' };
}

/** Retry-After (seconds or an HTTP date), else RateLimit-Reset (unix time), in ms. */
export function serverWait(h: Headers, now = Date.now()): number | null {
  const after = h.get('retry-after');
  if (after) {
    if (/^\d+$/.test(after.trim())) return Number(after) * 1000;
    const at = Date.parse(after);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = h.get('ratelimit-reset');
  if (reset && /^\d+$/.test(reset.trim())) return Math.max(0, Number(reset) * 1000 - now);
  return null;
}

export function backoff(attempt: number, p: RetryPolicy, random = Math.random): number {
  // full jitter: uniformly between half and all of the exponential step
  const step = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** attempt);
  return Math.round(step / 2 + (random() * step) / 2);
}

export interface RetryHooks {
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
  sleep?: (ms: number) => Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The queueing time of the withRetry call we run under: an AsyncLocalStorage, as the
 * pacer's wait happens deep inside gitbeaker's requester, between our `fn` and the HTTP
 * request, where no parameter of ours reaches.
 */
const queueing = new AsyncLocalStorage<{ ms: number }>();

/**
 * Tells the withRetry call this runs under (if any) that an attempt spent `ms` waiting its
 * turn (the pacer) rather than failing: it is not held against the budget.
 */
export function queued(ms: number): void {
  const q = queueing.getStore();
  if (q && ms > 0) q.ms += ms;
}

/**
 * Runs `fn` under the policy. Throws the last error when it cannot be retried, when the
 * attempts or the budget run out, or when the server asks for a wait beyond the budget.
 */
export async function withRetry<T>(
  fn: () => Promise<T>,
  repeat: Repeat<T>,
  policy: RetryPolicy,
  hooks: RetryHooks = {},
): Promise<T> {
  const started = Date.now();
  /** time spent waiting out 429s: queueing, not failing */
  let queuedMs = 0;
  /** time the attempts spent waiting in the pacer (reported by `queued`): queueing too */
  const paced = { ms: 0 };
  for (let attempt = 0; ; attempt++) {
    try {
      return await queueing.run(paced, fn);
    } catch (e) {
      const f = classify(e);
      if (!f.retryable || attempt + 1 >= policy.attempts) throw e;
      if (!f.notApplied && repeat !== 'safe') {
        // It may have happened: look before doing it again.
        // (the check's own calls retry under the same policy)
        const found = await repeat.check();
        if (found !== undefined) return found;
      }
      const delay = f.waitMs ?? backoff(attempt, policy);
      const queue = policy.maxRateLimitWaitMs;
      const rateLimited = queue !== undefined && f.status === 429 && f.waitMs !== null;
      if (rateLimited ? delay > queue : Date.now() - started - queuedMs - paced.ms + delay > policy.budgetMs)
        throw e;
      hooks.onRetry?.({ attempt: attempt + 1, delayMs: delay, reason: f.reason });
      await (hooks.sleep ?? sleep)(delay);
      if (rateLimited) queuedMs += delay;
    }
  }
}
