// One HTTP attempt per gitbeaker request. gitbeaker's own handler retries 429 and 502 up
// to ten times within milliseconds and ignores Retry-After (GITLAB_API.md, section 10), and
// it never retries a reset or a 503. We plug in through its documented extension point
// (`requesterFn`) and own the retry policy in `retry.ts`, where writes can be checked
// before they are repeated. Every request waits for its turn in the pacer of its host and
// token first (pacer.ts): it slows down by GitLab's RateLimit-* headers before a 429; that
// wait is reported to the retry policy as queueing (retry.ts `queued`), not failure time.
import {
  createRequesterFn,
  GitbeakerRequestError,
  GitbeakerTimeoutError,
  type RequestOptions,
} from '@gitbeaker/requester-utils';
import { queued } from '../base/retry.js';
import { type Pacer, pacerFor, routeOf } from './pacer.js';

async function body(response: Response, asStream: boolean): Promise<unknown> {
  if (asStream) return response.body;
  if (response.status === 204) return null;
  const type = (response.headers.get('content-type') ?? '').split(';')[0].trim();
  if (type === 'application/json') return (await response.json()) || {};
  if (type.startsWith('text/')) return (await response.text()) || '';
  return response.blob();
}

async function failed(request: Request, response: Response): Promise<never> {
  const content = await response.text();
  let description = content;
  if (response.headers.get('content-type')?.includes('application/json')) {
    try {
      const json = JSON.parse(content);
      const m = json?.error || json?.message || '';
      description = typeof m === 'string' ? m : JSON.stringify(m);
    } catch {
      // a proxy's error page labelled JSON: keep the text
    }
  }
  throw new GitbeakerRequestError(description, { cause: { description, request, response } });
}

type AttemptOptions = RequestOptions & {
  agent?: unknown;
  prefixUrl?: string;
  searchParams?: string;
  /** gitbeaker's queryTimeout, ms (see countingRequesterFn) */
  queryTimeout?: number;
};

/** The token a request carries, whichever header gitbeaker put it in. */
function tokenOf(headers: unknown): string {
  const h = new Headers(headers as HeadersInit | undefined);
  return h.get('private-token') ?? h.get('authorization') ?? h.get('job-token') ?? '';
}

async function singleAttempt(
  endpoint: string,
  options: Record<string, unknown> | undefined,
  onSend: () => void,
) {
  const {
    agent,
    asStream,
    prefixUrl,
    searchParams,
    method,
    queryTimeout,
    signal,
    rateLimiters: _,
    ...rest
  } = (options ?? {}) as AttemptOptions;
  const base = prefixUrl?.endsWith('/') ? prefixUrl : `${prefixUrl}/`;
  const url = new URL(endpoint, base);
  url.search = searchParams || '';
  const pacer: Pacer = pacerFor(url.origin, tokenOf(rest.headers));
  const route = routeOf(url.pathname);
  // the wait for the rate limit is queueing, not failing: not held against the retry budget
  queued(await pacer.send(route));
  let seen: Headers | null = null;
  try {
    onSend();
    // gitbeaker's timeout signal started when the call was made: the time spent queueing for
    // the rate limit is not the request's, so it gets a timeout of its own from now
    const timeout = queryTimeout ? AbortSignal.timeout(queryTimeout) : signal;
    const request = new Request(url, { ...(rest as RequestInit), method, signal: timeout });
    const response = await fetch(request, agent ? ({ dispatcher: agent } as RequestInit) : undefined).catch(
      (e: Error) => {
        if (e.name === 'TimeoutError' || e.name === 'AbortError')
          throw new GitbeakerTimeoutError('Query timeout was reached');
        throw e;
      },
    );
    seen = response.headers;
    if (!response.ok) await failed(request, response);
    const headers = Object.fromEntries(response.headers.entries());
    return { body: await body(response, !!asStream), headers, status: response.status };
  } finally {
    pacer.answered(seen, route);
  }
}

/**
 * gitbeaker's requester over singleAttempt; `onRequest` is told of every HTTP request as it
 * is sent (each attempt of a retried call counts), so a client's request count is the
 * transport's, not a tally kept by hand.
 */
export function countingRequesterFn(onRequest: () => void) {
  return createRequesterFn(
    (service, options) =>
      Promise.resolve({ ...options, queryTimeout: (service as { queryTimeout?: number }).queryTimeout }),
    ((endpoint: string, options?: Record<string, unknown>) =>
      singleAttempt(endpoint, options, onRequest)) as never,
  );
}

export const requesterFn = countingRequesterFn(() => {});
