// The retry policy as tables: which failures are retried, which writes may be repeated at
// once, how long to wait. A wrong row here repeats a commit that landed, or gives up on a
// GitLab that asked us to wait.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GitbeakerRequestError, GitbeakerTimeoutError } from '@gitbeaker/requester-utils';
import { backoff, classify, DEFAULT_RETRY, queued, serverWait, withRetry } from '../../src/base/retry.js';

function httpError(status: number, headers: Record<string, string> = {}): GitbeakerRequestError {
  return new GitbeakerRequestError(String(status), {
    cause: {
      description: `${status}`,
      request: new Request('http://127.0.0.1/api/v4/projects'),
      response: new Response('{}', { status, headers }),
    },
  });
}
/** A call that always fails with `status`; `calls()` says how often it was made. */
function alwaysFails(status: number, headers?: Record<string, string>) {
  let calls = 0;
  const call = async (): Promise<never> => {
    calls++;
    throw httpError(status, headers);
  };
  return { call, calls: () => calls };
}
const network = (code: string) => Object.assign(new TypeError('fetch failed'), { cause: { code } });
const NOW = Date.parse('2026-12-02T10:00:00Z');

describe('classify', () => {
  const rows: Array<[string, unknown, { retryable: boolean; notApplied: boolean; waitMs?: number | null }]> =
    [
      [
        '429 with Retry-After seconds: wait, and it did not happen',
        httpError(429, { 'Retry-After': '3' }),
        { retryable: true, notApplied: true, waitMs: 3000 },
      ],
      ['500: retried, but it may have happened', httpError(500), { retryable: true, notApplied: false }],
      ['502', httpError(502), { retryable: true, notApplied: false }],
      ['503', httpError(503), { retryable: true, notApplied: false }],
      ['504', httpError(504), { retryable: true, notApplied: false }],
      ['400: never retried', httpError(400), { retryable: false, notApplied: true }],
      ['401', httpError(401), { retryable: false, notApplied: true }],
      ['404', httpError(404), { retryable: false, notApplied: true }],
      ['409', httpError(409), { retryable: false, notApplied: true }],
      [
        'a timeout: retried, may have happened',
        new GitbeakerTimeoutError('timeout'),
        { retryable: true, notApplied: false },
      ],
      [
        'connection refused: retried at once, it did not happen',
        network('ECONNREFUSED'),
        { retryable: true, notApplied: true },
      ],
      [
        'connection reset: retried, may have happened',
        network('ECONNRESET'),
        { retryable: true, notApplied: false },
      ],
      ['a socket closed mid-answer', new TypeError('terminated'), { retryable: true, notApplied: false }],
      ['a bug of ours: never retried', new RangeError('x'), { retryable: false, notApplied: false }],
    ];
  for (const [name, e, want] of rows)
    test(name, () => {
      const f = classify(e, NOW);
      assert.equal(f.retryable, want.retryable);
      assert.equal(f.notApplied, want.notApplied);
      if (want.waitMs !== undefined) assert.equal(f.waitMs, want.waitMs);
    });
});

describe('serverWait', () => {
  test('Retry-After in seconds, as an HTTP date, or RateLimit-Reset', () => {
    assert.equal(serverWait(new Headers({ 'Retry-After': '7' }), NOW), 7000);
    assert.equal(serverWait(new Headers({ 'Retry-After': 'Wed, 02 Dec 2026 10:00:05 GMT' }), NOW), 5000);
    assert.equal(serverWait(new Headers({ 'RateLimit-Reset': String(NOW / 1000 + 9) }), NOW), 9000);
    assert.equal(serverWait(new Headers({}), NOW), null);
  });
});

describe('backoff', () => {
  test('exponential with jitter between half and all of the step, capped', () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const step = Math.min(DEFAULT_RETRY.maxDelayMs, DEFAULT_RETRY.baseDelayMs * 2 ** attempt);
      assert.equal(
        backoff(attempt, DEFAULT_RETRY, () => 0),
        step / 2,
      );
      assert.equal(
        backoff(attempt, DEFAULT_RETRY, () => 1),
        step,
      );
    }
    assert.equal(
      backoff(30, DEFAULT_RETRY, () => 1),
      DEFAULT_RETRY.maxDelayMs,
    );
  });
});

describe('withRetry', () => {
  const policy = { ...DEFAULT_RETRY, baseDelayMs: 1, maxDelayMs: 2 };
  const noSleep = { sleep: async () => {} };
  test('a write that may have happened is checked before it is repeated, and not repeated when found', async () => {
    let writes = 0;
    let checks = 0;
    const r = await withRetry(
      async () => {
        writes++;
        throw httpError(502);
      },
      {
        check: async () => {
          checks++;
          return 'landed';
        },
      },
      policy,
      noSleep,
    );
    assert.equal(r, 'landed');
    assert.equal(writes, 1);
    assert.equal(checks, 1);
  });
  test('a write that certainly did not happen (429) is repeated without a check', async () => {
    let writes = 0;
    let checks = 0;
    const r = await withRetry(
      async () => {
        if (++writes === 1) throw httpError(429, { 'Retry-After': '0' });
        return 'done';
      },
      {
        check: async () => {
          checks++;
          return undefined;
        },
      },
      policy,
      noSleep,
    );
    assert.equal(r, 'done');
    assert.equal(checks, 0);
  });
  test('gives up after the attempts, with the last error', async () => {
    const f = alwaysFails(503);
    await assert.rejects(
      withRetry(f.call, 'safe', policy, noSleep),
      (e: unknown) => e instanceof GitbeakerRequestError,
    );
    assert.equal(f.calls(), policy.attempts);
  });
  test('a wait beyond the budget is not waited', async () => {
    const f = alwaysFails(429, { 'Retry-After': '3600' });
    await assert.rejects(withRetry(f.call, 'safe', policy, noSleep));
    assert.equal(f.calls(), 1);
  });
});

test('time an attempt reports as queued (the pacer) is not held against the budget', async () => {
  const policy = { ...DEFAULT_RETRY, budgetMs: 200, baseDelayMs: 10 };
  const attempt = (queue: boolean) => {
    let calls = 0;
    const call = async () => {
      if (++calls > 1) return 'done';
      // waiting for its turn, longer than the whole budget, then a 502
      const before = Date.now();
      await new Promise((r) => setTimeout(r, 300));
      if (queue) queued(Date.now() - before);
      throw httpError(502);
    };
    return withRetry(call, 'safe', policy, { sleep: async () => {} });
  };
  assert.equal(await attempt(true), 'done');
  await assert.rejects(attempt(false), 'control: the same wait as failure time spends the budget');
});
