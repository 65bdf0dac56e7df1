// One HTTP attempt per gitbeaker request. gitbeaker's own handler retries 429 and 502 up
// to ten times within milliseconds and ignores Retry-After (GITLAB_API.md, section 10), and
// it never retries a reset or a 503. We plug in through its documented extension point
// (`requesterFn`) and own the retry policy in `retry.ts`, where writes can be checked
// before they are repeated.
import {
  createRequesterFn,
  GitbeakerRequestError,
  GitbeakerTimeoutError,
  type RequestOptions,
} from '@gitbeaker/requester-utils';

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

async function singleAttempt(endpoint: string, options?: Record<string, unknown>) {
  const {
    agent,
    asStream,
    prefixUrl,
    searchParams,
    method,
    rateLimiters: _,
    ...rest
  } = (options ?? {}) as RequestOptions & { agent?: unknown; prefixUrl?: string; searchParams?: string };
  const base = prefixUrl?.endsWith('/') ? prefixUrl : `${prefixUrl}/`;
  const url = new URL(endpoint, base);
  url.search = searchParams || '';
  const request = new Request(url, { ...(rest as RequestInit), method });
  const response = await fetch(request, agent ? ({ dispatcher: agent } as RequestInit) : undefined).catch(
    (e: Error) => {
      if (e.name === 'TimeoutError' || e.name === 'AbortError')
        throw new GitbeakerTimeoutError('Query timeout was reached');
      throw e;
    },
  );
  if (!response.ok) await failed(request, response);
  const headers = Object.fromEntries(response.headers.entries());
  return { body: await body(response, !!asStream), headers, status: response.status };
}

/**
 * gitbeaker's requester over singleAttempt; `onRequest` is told of every HTTP request as it
 * is sent (each attempt of a retried call counts), so a client's request count is the
 * transport's, not a tally kept by hand.
 */
export function countingRequesterFn(onRequest: () => void) {
  return createRequesterFn((_, options) => Promise.resolve(options), ((
    endpoint: string,
    options?: Record<string, unknown>,
  ) => {
    onRequest();
    return singleAttempt(endpoint, options);
  }) as never);
}

export const requesterFn = countingRequesterFn(() => {});
