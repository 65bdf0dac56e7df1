// Issue 19: a network failure names the host and the cause, not "fetch failed".
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { networkCause, networkErrorMessage, origin } from '../../src/base/network-error.js';

/** What undici's fetch rejects with: TypeError('fetch failed') and the socket's error as cause. */
const fetchFailed = (cause: unknown) => Object.assign(new TypeError('fetch failed'), { cause });
const sys = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:9`), { code });

test('networkCause: the cause in words for each failure; null for what is not a network failure', () => {
  const cases: [string, unknown, string, string | null][] = [
    ['refused', fetchFailed(sys('ECONNREFUSED')), 'http://127.0.0.1:1', 'connection refused'],
    ['no such host', fetchFailed(sys('ENOTFOUND')), 'http://gitlab.invalid', 'host not found'],
    ['DNS down', fetchFailed(sys('EAI_AGAIN')), 'http://gitlab.invalid', 'host name lookup failed (DNS)'],
    ['timed out', fetchFailed(sys('ETIMEDOUT')), 'http://10.0.0.1', 'connection timed out'],
    [
      'undici connect timeout',
      fetchFailed(sys('UND_ERR_CONNECT_TIMEOUT')),
      'http://x',
      'connection timed out',
    ],
    ['reset', fetchFailed(sys('ECONNRESET')), 'http://x', 'connection reset'],
    ['unreachable', fetchFailed(sys('EHOSTUNREACH')), 'http://x', 'host unreachable'],
    [
      'self-signed',
      fetchFailed(sys('DEPTH_ZERO_SELF_SIGNED_CERT')),
      'https://x',
      'TLS certificate not trusted (self-signed)',
    ],
    [
      'both address families refused (AggregateError)',
      fetchFailed(
        Object.assign(new AggregateError([sys('ECONNREFUSED'), sys('ECONNREFUSED')]), { code: undefined }),
      ),
      'http://localhost:1',
      'connection refused',
    ],
    ['an unknown code is kept', fetchFailed(sys('EWEIRD')), 'http://x', 'EWEIRD'],
    [
      "fetch's blocked ports (9, 25, 6000…)",
      fetchFailed(new Error('bad port')),
      'http://127.0.0.1:9',
      'fetch refuses port 9 (a blocked port in the Fetch standard)',
    ],
    ['no cause at all', new TypeError('fetch failed'), 'http://x', 'the request failed'],
    [
      'AbortSignal.timeout',
      Object.assign(new Error('aborted'), { name: 'TimeoutError' }),
      'http://x',
      'no answer in time',
    ],
    ['an HTTP error is not a network failure', new Error('404 Not Found'), 'http://x', null],
    [
      'a bug is not either',
      new TypeError("Cannot read properties of undefined (reading 'x')"),
      'http://x',
      null,
    ],
    ['not an error', 'fetch failed', 'http://x', null],
  ];
  for (const [name, e, url, want] of cases) assert.equal(networkCause(e, url), want, name);
});

test('networkErrorMessage names the service at its origin, never credentials or the path', () => {
  assert.equal(
    networkErrorMessage(
      'GitLab',
      'http://127.0.0.1:9/api/v4/projects/a%2Fb',
      fetchFailed(sys('ECONNREFUSED')),
    ),
    'cannot reach GitLab at http://127.0.0.1:9: connection refused',
  );
  assert.equal(
    networkErrorMessage(
      'GitLab',
      'https://user:glpat-secret@gitlab.example.com/x?private_token=t',
      fetchFailed(sys('ENOTFOUND')),
    ),
    'cannot reach GitLab at https://gitlab.example.com: host not found',
  );
  assert.equal(networkErrorMessage('GitLab', 'http://x', new Error('500 Internal Server Error')), null);
  assert.equal(origin('not a url://u:p@host/path'), 'not a url://host');
});
