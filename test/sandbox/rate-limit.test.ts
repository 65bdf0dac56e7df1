// The sandbox's rate limit is GitLab's authenticated API throttle (Rack::Attack, see
// Gitlab::RackAttack::RequestThrottleData): fixed windows aligned to the epoch, counted per
// user, RateLimit-* headers on every answer, and past the limit a plain-text 429 with
// Retry-After and RateLimit-ResetTime. A client that paces itself by these headers is only
// as right as they are.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ExitCode } from '../../src/model/exit-codes.js';
import { parseRateLimit, throttleHeaders } from '../../src/sandbox/rest.js';
import type { Sandbox } from '../../src/sandbox/server.js';
import { api, sandboxFixture } from '../helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const exec = promisify(execFile);

describe('throttleHeaders (GitLab RequestThrottleData)', () => {
  const NOW = 1_800_000_030; // 30 s into a minute
  test('every answer: Name, Limit, Observed, Remaining and Reset at the end of the epoch-aligned window', () => {
    const h = throttleHeaders(
      { name: 'throttle_authenticated_api', limit: 2000, periodS: 60, observed: 12, nowS: NOW },
      false,
    );
    assert.deepEqual(h, {
      'RateLimit-Name': 'throttle_authenticated_api',
      'RateLimit-Limit': '2000',
      'RateLimit-Observed': '12',
      'RateLimit-Remaining': '1988',
      'RateLimit-Reset': String(NOW + 30),
    });
  });
  test('a 429 adds Retry-After (s to the reset) and RateLimit-ResetTime (HTTP date); Remaining stops at 0', () => {
    const h = throttleHeaders(
      { name: 'throttle_authenticated_api', limit: 5, periodS: 60, observed: 7, nowS: NOW },
      true,
    );
    assert.equal(h['RateLimit-Remaining'], '0');
    assert.equal(h['RateLimit-Observed'], '7');
    assert.equal(h['Retry-After'], '30');
    assert.equal(h['RateLimit-ResetTime'], new Date((NOW + 30) * 1000).toUTCString());
  });
  test('Limit is per 60 s, rounded up, whatever the period; Remaining is of the period', () => {
    const h = throttleHeaders({ name: 't', limit: 100, periodS: 120, observed: 10, nowS: NOW }, false);
    assert.equal(h['RateLimit-Limit'], '50');
    assert.equal(h['RateLimit-Remaining'], '90');
    assert.equal(h['RateLimit-Reset'], String(NOW + 90));
    assert.equal(
      throttleHeaders({ name: 't', limit: 7, periodS: 9, observed: 1, nowS: NOW }, false)['RateLimit-Limit'],
      '47',
    );
  });
});

describe('parseRateLimit (--rate-limit)', () => {
  const rows: Array<[string, number | RegExp]> = [
    ['2000/min', 2000],
    ['60/min', 60],
    ['60', 60],
    [' 5 / min ', 5],
    ['60/s', /not N\/min/],
    ['60/hour', /not N\/min/],
    ['0/min', /not N\/min/],
    ['-3', /not N\/min/],
    ['1.5/min', /not N\/min/],
    ['lots', /not N\/min/],
    ['', /not N\/min/],
  ];
  for (const [text, want] of rows)
    test(`'${text}'`, () => {
      if (typeof want === 'number') assert.equal(parseRateLimit(text), want);
      else assert.throws(() => parseRateLimit(text), want);
    });
});

describe('a sandbox with a rate limit', () => {
  let sb: Sandbox;
  before(async () => {
    sb = await sandboxFixture({ rateLimit: 3 });
  });
  after(() => sb.close());

  test('counts per user, says so in the headers of every answer, and answers 429 past the limit', async () => {
    // the same window for all four requests: not across a minute's end
    const s = new Date().getUTCSeconds();
    if (s > 55) await new Promise((r) => setTimeout(r, (61 - s) * 1000));
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push(await api(sb, '/user', { token: 'reviewer-token' }));
    assert.deepEqual(
      seen.map((r) => r.status),
      [200, 200, 200, 429],
    );
    assert.deepEqual(
      seen.map((r) => [r.headers.get('ratelimit-observed'), r.headers.get('ratelimit-remaining')]),
      [
        ['1', '2'],
        ['2', '1'],
        ['3', '0'],
        ['4', '0'],
      ],
    );
    const ok = seen[0].headers;
    assert.equal(ok.get('ratelimit-name'), 'throttle_authenticated_api');
    assert.equal(ok.get('ratelimit-limit'), '3');
    const reset = Number(ok.get('ratelimit-reset'));
    assert.equal(reset % 60, 0, 'windows end on the minute, as Rack::Attack counts them');
    assert.ok(reset * 1000 > Date.now() && reset * 1000 <= Date.now() + 60_000);
    assert.equal(ok.get('retry-after'), null, 'Retry-After only on a 429');
    assert.equal(ok.get('ratelimit-resettime'), null, 'RateLimit-ResetTime only on a 429');

    const refused = seen[3];
    assert.equal(refused.body, 'Retry later\n');
    assert.match(refused.headers.get('content-type')!, /^text\/plain/);
    assert.equal(refused.headers.get('ratelimit-reset'), String(reset));
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60);
    assert.ok(
      Math.abs(reset - Date.now() / 1000 - retryAfter) <= 1.5,
      'Retry-After is the time to the reset',
    );
    assert.equal(refused.headers.get('ratelimit-resettime'), new Date(reset * 1000).toUTCString());
    assert.equal(sb.throttled(), 1);

    // another user has a budget of their own; no token is counted per IP under its own name
    const other = await api(sb, '/user', { token: 'operator-token' });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('ratelimit-observed'), '1');
    const anonymous = await api(sb, '/version');
    assert.equal(anonymous.headers.get('ratelimit-name'), 'throttle_unauthenticated_api');
  });
});

test('a window of its own period rolls over: the count starts again at its reset', async () => {
  const sb = await sandboxFixture({ rateLimit: { limit: 2, periodS: 2 } });
  try {
    let r = await api(sb, '/user', { token: 'reviewer-token' });
    await api(sb, '/user', { token: 'reviewer-token' });
    r = await api(sb, '/user', { token: 'reviewer-token' });
    // it may have rolled over between the calls already (a 2 s window): then it is 200
    if (r.status === 429) {
      const wait = Number(r.headers.get('retry-after'));
      assert.ok(wait >= 1 && wait <= 2);
      await new Promise((ok) => setTimeout(ok, wait * 1000 + 50));
    }
    r = await api(sb, '/user', { token: 'reviewer-token' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('ratelimit-limit'), '60', '2 per 2 s is 60 per minute');
  } finally {
    await sb.close();
  }
});

test('without a rate limit: no throttle and no RateLimit-* headers (a GitLab with the throttle off)', async () => {
  const sb = await sandboxFixture();
  try {
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => api(sb, '/user', { token: 'reviewer-token' })),
    );
    assert.ok(answers.every((r) => r.status === 200));
    for (const name of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after'])
      assert.equal(answers[0].headers.get(name), null, name);
    assert.equal(sb.throttled(), 0);
  } finally {
    await sb.close();
  }
});

describe('gitops-bot sandbox --rate-limit', () => {
  for (const form of ['2/min', '2'])
    test(`'${form}': 2 requests a minute per user, then 429`, async () => {
      const child = spawn(process.execPath, [CLI, 'sandbox', '--port', '0', '--rate-limit', form], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        let out = '';
        const url = await new Promise<string>((ok, fail) => {
          child.stdout.on('data', (b) => {
            out += b;
            const m = /sandbox ready: (http:\/\/\S+)\n[\s\S]*data: /.exec(out);
            if (m) ok(m[1]);
          });
          child.on('exit', (code) => fail(new Error(`exited ${code}: ${out}`)));
        });
        assert.match(out, /^rate limit: 2\/min per user/m);
        const s = new Date().getUTCSeconds();
        if (s > 57) await new Promise((r) => setTimeout(r, (61 - s) * 1000));
        const statuses = [];
        for (let i = 0; i < 3; i++)
          statuses.push(
            (await fetch(`${url}/api/v4/user`, { headers: { 'PRIVATE-TOKEN': 'reviewer-token' } })).status,
          );
        assert.deepEqual(statuses, [200, 200, 429]);
      } finally {
        if (child.exitCode === null)
          await new Promise((ok) => {
            child.once('exit', ok);
            child.kill('SIGTERM');
          });
      }
    });
  for (const bad of ['60/s', 'many'])
    test(`'${bad}' is refused in one line, exit code USAGE`, async () => {
      const r = await exec(process.execPath, [CLI, 'sandbox', '--port', '0', '--rate-limit', bad]).then(
        () => assert.fail('the sandbox started'),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(r.code, ExitCode.USAGE);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`--rate-limit: '${bad}' is not N/min`));
    });
});
