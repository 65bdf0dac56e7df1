// fetch's network failures say only "fetch failed"; the reason is in `cause` (a Node
// system error, an undici error, sometimes an AggregateError of both address families).
// This names the service, where it was asked and why, in words a person acts on.

/** Node's and undici's error codes, as the cause a person reads. */
const CAUSES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed (DNS)',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_BODY_TIMEOUT: 'no answer in time',
  ECONNRESET: 'connection reset',
  UND_ERR_SOCKET: 'connection closed',
  EPIPE: 'connection closed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPROTO: 'TLS handshake failed',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS handshake failed (is it plain http?)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS certificate not trusted (self-signed)',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS certificate not trusted (self-signed in chain)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate not trusted (unknown issuer)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'TLS certificate not trusted (unknown issuer)',
  CERT_HAS_EXPIRED: 'TLS certificate expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS certificate is for another host name',
};

interface Cause {
  code?: unknown;
  message?: unknown;
  name?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** The first error code in a chain of causes (and AggregateError's `errors`). */
function firstCode(e: unknown, depth = 0): string | undefined {
  if (!e || typeof e !== 'object' || depth > 4) return undefined;
  const c = e as Cause;
  if (typeof c.code === 'string') return c.code;
  if (Array.isArray(c.errors)) {
    for (const inner of c.errors) {
      const code = firstCode(inner, depth + 1);
      if (code) return code;
    }
  }
  return firstCode(c.cause, depth + 1);
}

/** The innermost message in a chain of causes ("bad port", "getaddrinfo ENOTFOUND x"). */
function innermostMessage(e: unknown, depth = 0): string | undefined {
  if (!e || typeof e !== 'object' || depth > 4) return undefined;
  const c = e as Cause;
  return (
    innermostMessage(c.cause, depth + 1) ??
    (typeof c.message === 'string' && c.message ? c.message : undefined)
  );
}

/** scheme://host[:port] of a URL, never its credentials, path or query. */
export function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//').replace(/^(.*?:\/\/[^/?]*).*$/, '$1');
  }
}

/**
 * Why a request to `url` failed without an answer, in words: the cause of a fetch failure
 * ("connection refused", "host not found"…), or null when `e` is not a network failure.
 */
export function networkCause(e: unknown, url: string): string | null {
  const err = e as Cause | null;
  if (!err || typeof err !== 'object') return null;
  if (err.name === 'TimeoutError') return 'no answer in time';
  const failed = err.message === 'fetch failed';
  const code = firstCode(err.cause);
  if (code && (failed || code in CAUSES)) return CAUSES[code] ?? code;
  if (!failed) return null;
  const inner = err.cause ? innermostMessage(err.cause) : undefined;
  // The Fetch standard blocks some ports outright (9, 25, 6000…): nothing was even sent.
  if (inner === 'bad port')
    return `fetch refuses port ${safePort(url)} (a blocked port in the Fetch standard)`;
  return inner ?? 'the request failed';
}

function safePort(url: string): string {
  try {
    return new URL(url).port || '(default)';
  } catch {
    return '?';
  }
}

/**
 * "cannot reach GitLab at http://127.0.0.1:9: connection refused", or null when `e` is not
 * a network failure (an HTTP answer, a bug): the caller keeps its own message then.
 */
export function networkErrorMessage(service: string, url: string, e: unknown): string | null {
  const cause = networkCause(e, url);
  return cause === null ? null : `cannot reach ${service} at ${origin(url)}: ${cause}`;
}
