// The pacer: how long a request waits for GitLab's rate limit, as tables; then the stateful
// part on a fake clock; then eight promotions at once against a sandbox whose limit they
// would overrun, which must all succeed without a 429.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GitbeakerRequestError } from '@gitbeaker/requester-utils';
import { DEFAULT_RETRY, withRetry } from '../../src/base/retry.js';
import { GitLab } from '../../src/gitlab/client.js';
import { type Budget, Pacer, paceDelay, reserve, routeOf, windowSeen } from '../../src/gitlab/pacer.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { addApps, client, OPS, sandboxFixture } from '../helpers.js';

const NOW = 1_000_000;

describe('paceDelay', () => {
  const budget = (remaining: number, limit = 2000, resetIn = 30_000): Budget => ({
    remaining,
    limit,
    resetAt: NOW + resetIn,
  });
  const rows: Array<[string, Budget | null, number, number]> = [
    ['nothing known (no RateLimit-* headers): no wait', null, NOW - 1, 0],
    ['plenty left: no wait, however fast we go', budget(1500), NOW, 0],
    ['just above the reserve: no wait', budget(reserve(2000) + 1), NOW, 0],
    ['at the reserve: the rest spread evenly over the window', budget(200), NOW, 150],
    ['spread, counted from the last request sent', budget(200), NOW - 100, 50],
    ['spread, and the last request was long enough ago: no wait', budget(200), NOW - 1000, 0],
    ['one left: it may have the whole rest of the window', budget(1, 2000, 30_000), NOW, 30_000],
    ['none left: until the reset', budget(0), NOW, 30_000],
    ['fewer than none (sent since the answer): until the reset', budget(-3), NOW - 5, 30_000],
    ['the window is over: no wait (the next answer tells of the new one)', budget(0, 2000, -1), NOW, 0],
    ['a small limit has a reserve of at least one', budget(1, 5, 4000), NOW, 4000],
  ];
  for (const [name, b, lastSentAt, want] of rows)
    test(name, () => {
      assert.equal(paceDelay(b, NOW, lastSentAt), want);
    });
});

describe('windowSeen', () => {
  const h = (o: Record<string, string>) => new Headers(o);
  test("the time to the reset is taken on GitLab's clock (Date), not ours", () => {
    const w = windowSeen(
      h({
        'RateLimit-Remaining': '40',
        'RateLimit-Observed': '1960',
        'RateLimit-Limit': '2000',
        'RateLimit-Reset': '1800000060',
        Date: new Date(1_800_000_048_000).toUTCString(),
      }),
      NOW,
    );
    assert.deepEqual(w, { remaining: 40, limit: 2000, reset: 1_800_000_060, resetAt: NOW + 12_000 });
  });
  test("the window's limit is Observed + Remaining (RateLimit-Limit is per minute, whatever the period)", () => {
    const w = windowSeen(
      h({
        'RateLimit-Remaining': '8',
        'RateLimit-Observed': '2',
        'RateLimit-Limit': '120',
        'RateLimit-Reset': '2000',
      }),
      1_999_000,
    );
    assert.equal(w?.limit, 10);
    assert.equal(w?.resetAt, 2_000_000, 'no Date: against our clock');
  });
  test('spent (a 429): the limit from RateLimit-Limit, as Observed has gone past it', () => {
    const w = windowSeen(
      h({
        'RateLimit-Remaining': '0',
        'RateLimit-Observed': '2300',
        'RateLimit-Limit': '2000',
        'RateLimit-Reset': '9',
      }),
      0,
    );
    assert.equal(w?.limit, 2000);
    assert.equal(w?.remaining, 0);
  });
  test('no headers, or not numbers: nothing known', () => {
    assert.equal(windowSeen(h({}), NOW), null);
    assert.equal(windowSeen(h({ 'RateLimit-Remaining': 'x', 'RateLimit-Reset': '9' }), NOW), null);
  });
});

describe('Pacer', () => {
  /** a pacer on a fake clock: its sleeps move the clock */
  function fakePacer() {
    let now = 0;
    const slept: number[] = [];
    const pacer = new Pacer({
      host: 'http://gitlab.test',
      now: () => now,
      sleep: async (ms) => {
        slept.push(ms);
        now += ms;
      },
    });
    const answer = (remaining: number, resetS: number, observed = 100 - remaining) =>
      new Headers({
        'RateLimit-Remaining': String(remaining),
        'RateLimit-Observed': String(observed),
        'RateLimit-Reset': String(resetS),
      });
    return { pacer, slept, answer, clock: () => now };
  }
  /** an answer of the throttle `name`: `remaining` of 100 left, the window ending at `resetS` */
  const named = (name: string, remaining: number, resetS: number) =>
    new Headers({
      'RateLimit-Name': name,
      'RateLimit-Remaining': String(remaining),
      'RateLimit-Observed': String(100 - remaining),
      'RateLimit-Reset': String(resetS),
    });
  const API = 'projects/:id/merge_requests/:id';
  const FILES = 'projects/:id/repository/files';

  test('throttles are budgets of their own: a later reset of one does not make the other look over', async () => {
    const { pacer, slept, clock } = fakePacer();
    await pacer.send(FILES);
    await pacer.send(API);
    pacer.answered(named('throttle_authenticated_files_api', 0, 10), FILES); // spent, until t = 10 s
    pacer.answered(named('throttle_authenticated_api', 50, 60), API); // plenty, a later window
    await pacer.send(API);
    assert.deepEqual(slept, [], 'the API throttle has plenty left');
    await pacer.send(FILES);
    assert.deepEqual(slept, [10_000], "the files throttle's own window is not over");
    assert.equal(clock(), 10_000);
  });

  test("a late answer of one throttle's older window is still told apart from the other's", async () => {
    const { pacer, slept } = fakePacer();
    await pacer.send(API);
    pacer.answered(named('throttle_authenticated_api', 50, 60), API);
    await pacer.send(FILES);
    // answers of the files throttle whose window ends first: not from a window already over
    pacer.answered(named('throttle_authenticated_files_api', 0, 20), FILES);
    await pacer.send(FILES);
    assert.deepEqual(slept, [20_000], 'the files budget is spent: until its reset');
  });

  test('a route not answered yet is paced by the most constrained budget known', async () => {
    const { pacer, slept } = fakePacer();
    await pacer.send(API);
    await pacer.send(FILES);
    pacer.answered(named('throttle_authenticated_api', 50, 60), API);
    pacer.answered(named('throttle_authenticated_files_api', 0, 10), FILES);
    await pacer.send('projects/:id/repository/compare');
    assert.deepEqual(slept, [10_000], 'it might count against the spent files throttle');
  });

  test('routes: the path shape, ids as :id', () => {
    const rows: Array<[string, string]> = [
      ['/api/v4/projects/root%2Fops/repository/files/apps%2Fa.yml/raw', FILES],
      ['/api/v4/projects/7/merge_requests/12/notes', API],
      ['/api/v4/projects/7/repository/compare', 'projects/:id/repository/compare'],
      ['/api/v4/user', 'user'],
      ['/gitlab/api/v4/projects/7/repository/compare', 'projects/:id/repository/compare'],
    ];
    for (const [path, want] of rows) assert.equal(routeOf(path), want, path);
  });

  test('with a budget to spare, requests never wait', async () => {
    const { pacer, slept, answer } = fakePacer();
    for (let i = 0; i < 5; i++) {
      await pacer.send();
      pacer.answered(answer(1000 - i, 60, i));
    }
    assert.deepEqual(slept, []);
  });

  test('requests sent since the last answer count: the last of the budget waits for the reset', async () => {
    const { pacer, slept, answer } = fakePacer();
    await pacer.send();
    pacer.answered(answer(2, 10)); // 2 left of 100 (under the reserve), the window ends at t = 10 s
    await pacer.send(); // spread: 10 s for 2
    await pacer.send(); // 5 s for the 1 left by our count (no answer has said so yet)
    assert.deepEqual(slept, [5000, 5000]);
  });

  test('a request in flight when an answer comes may not be in its count: it is taken as spent', async () => {
    const { pacer, slept, answer } = fakePacer();
    await pacer.send();
    await pacer.send();
    pacer.answered(answer(1, 10)); // 1 left, but the other request is still out
    await pacer.send();
    assert.deepEqual(slept, [10_000]);
  });

  test('an older answer arriving late does not raise the count; a new window replaces it', async () => {
    const { pacer, slept, answer, clock } = fakePacer();
    for (let i = 0; i < 3; i++) await pacer.send();
    pacer.answered(answer(0, 10));
    pacer.answered(answer(5, 10)); // the same window, answered out of order
    pacer.answered(answer(7, 5)); // an earlier window
    await pacer.send();
    assert.deepEqual(slept, [10_000]);
    pacer.answered(answer(9, 20, 1)); // the new window: 9 left of 10
    await pacer.send();
    assert.equal(slept.length, 1);
    assert.equal(clock(), 10_000);
  });

  test('concurrent requests queue for the budget one by one, in order', async () => {
    const { pacer, slept, answer } = fakePacer();
    await pacer.send();
    pacer.answered(answer(0, 3));
    const order: number[] = [];
    await Promise.all([1, 2, 3].map((i) => pacer.send().then(() => order.push(i))));
    assert.deepEqual(order, [1, 2, 3]);
    assert.deepEqual(slept, [3000], 'one wait for the reset; the others go in the new window');
  });
});

describe('a 429 queues (retry.ts)', () => {
  const tooMany = (retryAfterS: number) =>
    new GitbeakerRequestError('429', {
      cause: {
        description: 'Retry later',
        request: new Request('http://127.0.0.1/api/v4/user'),
        response: new Response('Retry later\n', {
          status: 429,
          headers: { 'Retry-After': String(retryAfterS) },
        }),
      },
    });
  const policy = { ...DEFAULT_RETRY, budgetMs: 1000 };
  test("its Retry-After is waited even past the failure budget: it is GitLab's queue, not a failure", async () => {
    const slept: number[] = [];
    let calls = 0;
    const r = await withRetry(
      async () => {
        if (++calls < 3) throw tooMany(40);
        return 'done';
      },
      'safe',
      policy,
      { sleep: async (ms) => void slept.push(ms) },
    );
    assert.equal(r, 'done');
    assert.deepEqual(slept, [40_000, 40_000]);
  });
  test('a wait longer than maxRateLimitWaitMs is not waited', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw tooMany(DEFAULT_RETRY.maxRateLimitWaitMs! / 1000 + 1);
        },
        'safe',
        policy,
        { sleep: async () => {} },
      ),
    );
    assert.equal(calls, 1);
  });
  test('without maxRateLimitWaitMs (the registry), a 429 is held against the budget as before', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw tooMany(40);
        },
        'safe',
        { ...policy, maxRateLimitWaitMs: undefined },
        { sleep: async () => {} },
      ),
    );
    assert.equal(calls, 1);
  });
});

// A wait in the pacer is queueing, not failure: after one of about a window (the sandbox's
// 2 s, longer than the 1 s budget), a 502 is still retried, as it would be unpaced.
test("the pacer's wait is not held against the retry budget: a 502 after a long wait is retried", async () => {
  const sb = await sandboxFixture({ rateLimit: { limit: 2, periodS: 2 } });
  try {
    const gitlab = new GitLab({ url: sb.url, token: 'gitops-bot-token', retry: { budgetMs: 1000 } });
    // start at the beginning of a window, so the pacer's wait for the next one is long
    await new Promise((r) => setTimeout(r, 2000 - (Date.now() % 2000) + 50));
    await gitlab.projectDefaultBranch(OPS); // 1 of 2 left: the next request waits for the reset
    // seed 7 at rate 0.5: the first request to the route is a 502, the next ones are not
    sb.setFaults(`rate=0.5,seed=7,kinds=502,only=GET /projects/:id`);
    const started = Date.now();
    assert.equal(await gitlab.projectDefaultBranch(OPS), 'main');
    assert.ok(Date.now() - started > 1000, 'the pacer made it wait longer than the budget');
    assert.deepEqual(sb.faults(), { '502': 1 });
    assert.equal(gitlab.retries, 1);
  } finally {
    await sb.close();
  }
});

test('a wait over a second is logged once, as progress (host, what is left, how long); shorter ones are not', async () => {
  // pino writes to stderr of the process: a child with GITOPS_BOT_LOG_LEVEL=warn, on a fake clock
  const pacerJs = new URL('../../src/gitlab/pacer.js', import.meta.url).href;
  const script = `
    const { Pacer } = await import(${JSON.stringify(pacerJs)});
    let now = 0;
    const pacer = new Pacer({ host: 'https://gitlab.example.com', now: () => now, sleep: async (ms) => { now += ms; } });
    const answer = (remaining, observed, reset) => new Headers({
      'RateLimit-Remaining': String(remaining), 'RateLimit-Observed': String(observed), 'RateLimit-Reset': String(reset) });
    await pacer.send();
    pacer.answered(answer(9, 91, 1));   // under the reserve: spread, 1 s / 9 = 112 ms, not logged
    await pacer.send();
    pacer.answered(answer(0, 100, 13)); // spent: until the reset, 12.9 s
    await pacer.send();
  `;
  const { stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, GITOPS_BOT_LOG_LEVEL: 'warn' },
  });
  const lines = stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 1, stderr);
  assert.equal(lines[0].msg, 'GitLab rate limit: 0 of 100 left, waiting 13 s');
  assert.equal(lines[0].host, 'https://gitlab.example.com');
  assert.equal(lines[0].waitMs, 12_888);
});

// 8 promotions of 7 requests each (56) against 20 requests per 5 s: unpaced, they overrun
// the first window at once (the control shows a plain burst does); paced, none is refused.
describe('8 promotions at once, under a limit they would overrun', () => {
  const LIMIT = { limit: 20, periodS: 5 };
  const APPS = 8;
  const request = (i: number) => ({
    project: OPS,
    files: [`apps/app${i}.yml`],
    image: `registry.example.com/root/app${i}`,
    tag: 'ci-2',
    env: 'prod',
    assignees: ['operator'],
    targetBranch: 'main',
  });

  /** The APPS promotions at once, each with a client of its own: all are created. */
  const promoteAll = async (sb: Sandbox) => {
    const results = await Promise.all(
      Array.from({ length: APPS }, (_, i) =>
        promote(request(i), { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.action),
      Array(APPS).fill('created'),
    );
    return results;
  };

  test('control: the same number of requests in one unpaced burst is refused (429)', async () => {
    const sb = await sandboxFixture({ rateLimit: LIMIT });
    try {
      const statuses = await Promise.all(
        Array.from({ length: 7 * APPS }, () =>
          fetch(`${sb.apiUrl}/user`, { headers: { 'PRIVATE-TOKEN': 'gitops-bot-token' } }).then(
            (r) => r.status,
          ),
        ),
      );
      assert.ok(statuses.includes(429));
      assert.ok(sb.throttled() > 0);
    } finally {
      await sb.close();
    }
  });

  test('paced: all succeed as their own MRs, and the sandbox refused none', async () => {
    const sb = await sandboxFixture({ rateLimit: LIMIT });
    try {
      await addApps(sb, APPS, (i) => `root/app${i}:ci-1`);
      const results = await promoteAll(sb);
      assert.equal(new Set(results.map((r) => r.mr?.iid)).size, APPS);
      assert.equal(sb.throttled(), 0, 'no 429 from the rate limit');
      const botRequests = sb.requests.filter((r) => r.user === 'gitops-bot' && r.path.startsWith('/api/v4/'));
      assert.ok(botRequests.length > LIMIT.limit, 'the promotions needed more than one window');
    } finally {
      await sb.close();
    }
  });

  test('8 pipelines at once (processes, each its own pacer) share the budget by its headers: all succeed', async (t) => {
    const sb = await sandboxFixture({ rateLimit: LIMIT });
    const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
    try {
      await addApps(sb, APPS, (i) => `root/app${i}:ci-1`);
      const runs = await Promise.all(
        Array.from({ length: APPS }, (_, i) =>
          promisify(execFile)(
            process.execPath,
            [
              cli,
              'promote',
              '--project',
              OPS,
              '--file',
              `apps/app${i}.yml`,
              '--image',
              `registry.example.com/root/app${i}`,
              '--tag',
              'ci-2',
              '--env',
              'prod',
              '--target-branch',
              'main',
              '--no-verify-image',
              '--json',
            ],
            { env: { ...process.env, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' } },
          ),
        ),
      );
      assert.deepEqual(
        runs.map((r) => JSON.parse(r.stdout).action),
        Array(APPS).fill('created'),
      );
      // each process slows down as the shared Remaining falls, but eight can still overshoot
      // together: those 429s are waited out (Retry-After), never a failure
      const botRequests = sb.requests.filter((r) => r.user === 'gitops-bot' && r.path.startsWith('/api/v4/'));
      assert.ok(botRequests.length > LIMIT.limit, 'the pipelines needed more than one window');
      t.diagnostic(`${botRequests.length} requests, ${sb.throttled()} answered 429`);
    } finally {
      await sb.close();
    }
  });

  test('another client spent the whole window first: the promotions wait out its 429s and succeed', async () => {
    const sb = await sandboxFixture({ rateLimit: LIMIT });
    try {
      await addApps(sb, APPS, (i) => `root/app${i}:ci-1`);
      // another pipeline with the same user, not paced by us: it spends the window
      const other = client(sb, 'gitops-bot');
      while (sb.throttled() === 0) await other.Users.showCurrentUser().catch(() => {});
      await promoteAll(sb);
    } finally {
      await sb.close();
    }
  });
});
