// GitLab's Deployments and Environments API in the sandbox: the rules as tables (slug, tier,
// status transitions, list-query refusals), then over HTTP — create → running → success, the
// transitions GitLab refuses, list filters and their 400s, the `<env>/<app>` folder name, who
// may read and write — and the bot's client methods against it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GitLab, GitLabError } from '../../src/gitlab/client.js';
import {
  type DeploymentQuery,
  deploymentQueryProblem,
  environmentNameErrors,
  environmentSlug,
  guessTier,
  transition,
} from '../../src/sandbox/core-deployments.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { api, OPS, sandboxFixture } from '../helpers.js';

const ENV = 'production/helloworld';
/** A running deployment of `sha` on main to ENV, by `gitlab`'s createDeployment. */
const startDeployment = (gitlab: GitLab, sha: string) =>
  gitlab.createDeployment(OPS, { environment: ENV, sha, ref: 'main', status: 'running' });

describe('Gitlab::Slug::Environment', () => {
  // GitLab's own spec table (spec/lib/gitlab/slug/environment_spec.rb), whose digest is stubbed
  // to 'a' * 64: ('a' * 64).to_i(16).to_s(36).last(6) is 'q517sa'.
  const TABLE: Array<[string, string]> = [
    ['staging-12345678901234567', 'staging-123456789-q517sa'],
    ['9-staging-123456789012345', 'env-9-staging-123-q517sa'],
    ['staging-1234567890123456', 'staging-1234567890123456'],
    ['staging-1234567890123456-', 'staging-123456789-q517sa'],
    ['production', 'production'],
    ['PRODUCTION', 'production-q517sa'],
    ['review/1-foo', 'review-1-foo-q517sa'],
    ['1-foo', 'env-1-foo-q517sa'],
    ['1/foo', 'env-1-foo-q517sa'],
    ['foo-', 'foo'],
    ['foo--bar', 'foo-bar-q517sa'],
    ['foo**bar', 'foo-bar-q517sa'],
    ['*-foo', 'env-foo-q517sa'],
    ['staging-12345678-', 'staging-12345678'],
    ['staging-12345678-01234567', 'staging-12345678-q517sa'],
    ['', 'env-q517sa'],
  ];
  for (const [name, slug] of TABLE) {
    test(`${JSON.stringify(name)} → ${slug}`, () => {
      assert.equal(
        environmentSlug(name, () => 'a'.repeat(64)),
        slug,
      );
    });
  }
  test('the real digest: production/helloworld → production-hellow-n7syhw (SHA-256, base 36)', () => {
    assert.equal(environmentSlug('production/helloworld'), 'production-hellow-n7syhw');
  });
});

describe('Environment#guess_tier', () => {
  const TABLE: Array<[string, string]> = [
    ['production/helloworld', 'production'],
    ['prd', 'production'],
    ['live', 'production'],
    ['staging/helloworld', 'staging'],
    ['stg', 'staging'],
    // the rules are tried in GitLab's order: development, testing, staging, production
    ['preprod', 'staging'],
    ['review/fix-foo', 'development'],
    ['dev', 'development'],
    ['qa', 'testing'],
    ['integration', 'testing'],
    ['canary', 'other'],
  ];
  for (const [name, tier] of TABLE) test(`${name} → ${tier}`, () => assert.equal(guessTier(name), tier));
});

describe('environment name validation', () => {
  const MESSAGE =
    "can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', and spaces, but it cannot start or end with '/'";
  const TABLE: Array<[string, string[]]> = [
    ['production/helloworld', []],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal GitLab environment name
    ['review/${CI_COMMIT_REF_NAME}', []],
    ['/production', [MESSAGE]],
    ['production/', [MESSAGE]],
    ['prod:eu', [MESSAGE]],
    ['', ["can't be blank"]],
    ['x'.repeat(256), ['is too long (maximum is 255 characters)']],
  ];
  for (const [name, errors] of TABLE)
    test(`${JSON.stringify(name.slice(0, 30))} → ${errors.length ? errors[0].slice(0, 30) : 'valid'}`, () =>
      assert.deepEqual(environmentNameErrors(name), errors));
});

describe('deployment status transitions (Deployment state_machine :status)', () => {
  const TABLE: Array<[Parameters<typeof transition>[0], Parameters<typeof transition>[1], boolean, string]> =
    [
      ['created', 'running', true, 'run'],
      ['blocked', 'running', true, 'run'],
      ['running', 'running', false, 'run'],
      ['failed', 'running', false, 'run'],
      ['success', 'running', false, 'run'],
      ['created', 'success', true, 'succeed'],
      ['running', 'success', true, 'succeed'],
      ['success', 'success', false, 'succeed'],
      ['failed', 'success', true, 'succeed'],
      ['success', 'failed', true, 'drop'],
      ['failed', 'failed', false, 'drop'],
      ['running', 'canceled', true, 'cancel'],
      ['canceled', 'canceled', false, 'cancel'],
    ];
  for (const [from, to, allowed, event] of TABLE)
    test(`${from} → ${to}: ${allowed ? 'allowed' : 'refused'} (${event})`, () =>
      assert.deepEqual(transition(from, to), { event, allowed }));
});

describe('DeploymentsFinder#validate!', () => {
  const at = new Date('2026-01-01T00:00:00Z');
  const q = (extra: Partial<DeploymentQuery>): DeploymentQuery => ({ orderBy: 'id', sort: 'asc', ...extra });
  const TABLE: Array<[string, DeploymentQuery, string | null]> = [
    ['no filter', q({}), null],
    ['environment and status', q({ environment: 'production/helloworld', status: 'running' }), null],
    ['updated_after with order_by=updated_at', q({ updatedAfter: at, orderBy: 'updated_at' }), null],
    // only tracked in production (track_and_raise_for_dev_exception), not refused
    ['updated_after without updated_at ordering', q({ updatedAfter: at }), null],
    [
      'finished_after, order_by=finished_at, status=success',
      q({ finishedAfter: at, orderBy: 'finished_at', status: 'success' }),
      null,
    ],
    [
      'finished_after without finished_at ordering',
      q({ finishedAfter: at, status: 'success' }),
      '`finished_at` filter and `finished_at` sorting must be paired',
    ],
    [
      'order_by=finished_at without a finished filter',
      q({ orderBy: 'finished_at', status: 'success' }),
      '`finished_at` filter and `finished_at` sorting must be paired',
    ],
    [
      'finished filter with another status',
      q({ finishedBefore: at, orderBy: 'finished_at', status: 'failed' }),
      '`finished_at` filter must be combined with `success` status filter.',
    ],
    [
      'updated and finished filters together',
      q({ updatedBefore: at, finishedAfter: at, orderBy: 'finished_at', status: 'success' }),
      'Both `updated_at` filter and `finished_at` filter can not be specified',
    ],
  ];
  for (const [name, query, problem] of TABLE)
    test(`${name} → ${problem ?? 'accepted'}`, () => assert.equal(deploymentQueryProblem(query), problem));
});

describe('the Deployments and Environments API over HTTP', () => {
  let sb: Sandbox;
  let main: string;
  let first: string;
  const P = `/projects/${encodeURIComponent(OPS)}`;
  const send = (method: string, path: string, user: string | null, body?: unknown) =>
    api(sb, path, {
      method,
      ...(user ? { token: `${user}-token` } : {}),
      headers: { 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const get = (path: string, user: string | null = 'reviewer') => send('GET', path, user);
  const deploy = (body: Record<string, unknown>, user = 'gitops-bot') =>
    send('POST', `${P}/deployments`, user, { environment: ENV, ref: 'main', tag: false, ...body });
  const gitlab = (user: string) =>
    new GitLab({ url: sb.url, token: `${user}-token`, retry: { attempts: 1 } });

  before(async () => {
    sb = await sandboxFixture();
    main = (await get(`${P}/repository/branches/main`)).body.commit.id;
    const commit = await send('POST', `${P}/repository/commits`, 'operator', {
      branch: 'main',
      commit_message: 'Second',
      actions: [{ action: 'create', file_path: 'second.txt', content: 'x\n' }],
    });
    assert.equal(commit.status, 201, JSON.stringify(commit.body));
    first = main;
    main = commit.body.id;
  });
  after(() => sb.close());

  test('create running → success: the environment is created on first use, with slug and tier', async () => {
    const bot = gitlab('gitops-bot');
    const created = await startDeployment(bot, first);
    assert.equal(created.status, 'running');
    assert.equal(created.environment, ENV);
    assert.equal(created.sha, first);
    const envs = await bot.listEnvironments(OPS, { name: ENV });
    assert.equal(envs.length, 1);
    assert.equal(envs[0].lastDeployment, undefined, 'a list has no last deployment');
    const raw = await get(`${P}/environments/${envs[0].id}`);
    assert.equal(raw.body.slug, 'production-hellow-n7syhw');
    assert.equal(raw.body.tier, 'production');
    assert.equal(raw.body.state, 'available');
    assert.equal(raw.body.last_deployment, null, 'no successful deployment yet');

    const done = await bot.updateDeployment(OPS, created.id, 'success');
    assert.equal(done.status, 'success');
    assert.equal(done.id, created.id);
    const [env] = await bot.listEnvironments(OPS, { name: ENV, withLastDeployment: true });
    assert.equal(env.lastDeployment?.id, created.id);
    assert.equal(env.lastDeployment?.status, 'success');
    const single = await get(`${P}/environments/${env.id}`);
    assert.equal('project' in single.body, false, 'the single GET leaves the project out');
    assert.equal('environment' in single.body.last_deployment, false, 'and the deployment its environment');
  });

  test('the same success again returns the last successful deployment, not a new one', async () => {
    const a = await deploy({ sha: main, status: 'success' });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    const b = await deploy({ sha: main, status: 'success' });
    assert.equal(b.status, 201);
    assert.equal(b.body.id, a.body.id);
    // a running one is always new: running is never the last *successful* deployment
    const r1 = await deploy({ sha: main, status: 'running' });
    const r2 = await deploy({ sha: main, status: 'running' });
    assert.notEqual(r1.body.id, r2.body.id);
    assert.equal(r2.body.iid, r1.body.iid + 1);
  });

  test('refused transitions: running → running, success → success, failed → running are 400', async () => {
    const r = await deploy({ sha: main, status: 'running' });
    const id = r.body.id;
    const again = await send('PUT', `${P}/deployments/${id}`, 'gitops-bot', { status: 'running' });
    assert.equal(again.status, 400);
    assert.deepEqual(again.body, { message: { status: ['cannot transition via "run"'] } });
    assert.equal(
      (await send('PUT', `${P}/deployments/${id}`, 'gitops-bot', { status: 'success' })).status,
      200,
    );
    const twice = await send('PUT', `${P}/deployments/${id}`, 'gitops-bot', { status: 'success' });
    assert.deepEqual(
      [twice.status, twice.body],
      [400, { message: { status: ['cannot transition via "succeed"'] } }],
    );
    // success → failed is allowed (Degraded after Healthy)
    const failed = await send('PUT', `${P}/deployments/${id}`, 'gitops-bot', { status: 'failed' });
    assert.equal(failed.status, 200);
    assert.equal(failed.body.status, 'failed');
    const rerun = await send('PUT', `${P}/deployments/${id}`, 'gitops-bot', { status: 'running' });
    assert.equal(rerun.status, 400);
    const bad = await send('PUT', `${P}/deployments/${id}`, 'gitops-bot', { status: 'created' });
    assert.deepEqual([bad.status, bad.body], [400, { error: 'status does not have a valid value' }]);
  });

  test('the client keeps GitLab’s refusal: a repeated status is a GitLabError 400', async () => {
    const bot = gitlab('gitops-bot');
    const d = await startDeployment(bot, main);
    await assert.rejects(bot.updateDeployment(OPS, d.id, 'running'), (e: unknown) => {
      assert.ok(e instanceof GitLabError);
      assert.equal(e.status, 400);
      return true;
    });
  });

  test('create: parameters GitLab requires, an unknown sha or ref', async () => {
    const none = await send('POST', `${P}/deployments`, 'gitops-bot', {});
    assert.deepEqual(none.body, {
      error: 'environment is missing, sha is missing, ref is missing, tag is missing, status is missing',
    });
    const sha = await deploy({ sha: 'f'.repeat(40), status: 'running' });
    assert.deepEqual([sha.status, sha.body], [400, { message: { sha: ['The commit does not exist'] } }]);
    const ref = await deploy({ sha: main, ref: 'no-such-branch', status: 'running' });
    assert.deepEqual(
      [ref.status, ref.body],
      [400, { message: { ref: ['The branch or tag does not exist'] } }],
    );
    const created = await deploy({ sha: main, status: 'created' });
    assert.deepEqual(created.body, { error: 'status does not have a valid value' });
    const name = await deploy({ environment: 'production/', sha: main, status: 'running' });
    assert.equal(name.status, 400);
    assert.match(JSON.stringify(name.body.message.name), /cannot start or end with '\/'/);
  });

  test('list: environment and status filters, order and sort, GitLab’s page headers', async () => {
    await deploy({ environment: 'staging/helloworld', sha: main, status: 'running' });
    const all = (await get(`${P}/deployments?per_page=100`)).body as Array<{ id: number; environment: any }>;
    assert.deepEqual(
      all.map((d) => d.id),
      [...all.map((d) => d.id)].sort((a, b) => a - b),
      'ascending by id by default',
    );
    const staging = await get(`${P}/deployments?environment=${encodeURIComponent('staging/helloworld')}`);
    assert.deepEqual(
      staging.body.map((d: any) => d.environment.name),
      ['staging/helloworld'],
    );
    const success = (await get(`${P}/deployments?status=success&order_by=id&sort=desc`)).body;
    assert.ok(success.length >= 2);
    assert.ok(success.every((d: any) => d.status === 'success'));
    assert.ok(success[0].id > success[1].id, 'desc');
    const page = await get(`${P}/deployments?per_page=2&page=1`);
    assert.equal(page.body.length, 2);
    assert.equal(page.headers.get('x-total'), String(all.length));
    assert.equal(page.headers.get('x-per-page'), '2');
    assert.match(page.headers.get('link') ?? '', /rel="next"/);
    const unknown = await get(`${P}/deployments?environment=nowhere`);
    assert.deepEqual(unknown.body, []);
    const finished = await get(
      `${P}/deployments?order_by=finished_at&finished_after=2000-01-01T00:00:00Z&status=success&sort=desc`,
    );
    assert.equal(finished.status, 200);
    assert.ok(finished.body.length >= 2);
  });

  test('list: the query combinations GitLab refuses are 400s in its words', async () => {
    const cases: Array<[string, unknown]> = [
      [
        'finished_after=2026-01-01T00:00:00Z&status=success',
        { message: '400 Bad request - `finished_at` filter and `finished_at` sorting must be paired' },
      ],
      [
        'order_by=finished_at&status=success',
        { message: '400 Bad request - `finished_at` filter and `finished_at` sorting must be paired' },
      ],
      [
        'order_by=finished_at&finished_before=2030-01-01T00:00:00Z&status=failed',
        { message: '400 Bad request - `finished_at` filter must be combined with `success` status filter.' },
      ],
      [
        'order_by=finished_at&finished_before=2030-01-01T00:00:00Z&updated_after=2020-01-01T00:00:00Z&status=success',
        {
          message: '400 Bad request - Both `updated_at` filter and `finished_at` filter can not be specified',
        },
      ],
      ['status=done', { error: 'status does not have a valid value' }],
      ['order_by=sha', { error: 'order_by does not have a valid value' }],
      ['sort=up', { error: 'sort does not have a valid value' }],
      ['updated_after=yesterday', { error: 'updated_after is invalid' }],
    ];
    for (const [query, body] of cases) {
      const res = await get(`${P}/deployments?${query}`);
      assert.deepEqual([res.status, res.body], [400, body], query);
    }
  });

  test('environments: the <env>/<app> folder name is kept whole, found by name or search', async () => {
    const list = (await get(`${P}/environments`)).body.map((e: any) => e.name);
    assert.deepEqual(list, ['production/helloworld', 'staging/helloworld']);
    const byName = (await get(`${P}/environments?name=${encodeURIComponent(ENV)}`)).body;
    assert.deepEqual(
      byName.map((e: any) => [e.name, e.slug]),
      [[ENV, 'production-hellow-n7syhw']],
    );
    // a search matches the start of the name or of the part inside its folder
    assert.deepEqual(
      (await get(`${P}/environments?search=hello`)).body.map((e: any) => e.name),
      ['production/helloworld', 'staging/helloworld'],
    );
    assert.deepEqual(
      (await get(`${P}/environments?search=stag`)).body.map((e: any) => e.name),
      ['staging/helloworld'],
    );
    const short = await get(`${P}/environments?search=pr`);
    assert.deepEqual(
      [short.status, short.body],
      [400, { message: '400 Bad request - Search query is less than 3 characters' }],
    );
    const both = await get(`${P}/environments?search=prod&name=x`);
    assert.deepEqual([both.status, both.body], [400, { error: 'name, search cannot be used together' }]);
  });

  test('environments: create with a tier, a taken name, stop, and delete only once stopped', async () => {
    const created = await send('POST', `${P}/environments`, 'reviewer', {
      name: 'canary/helloworld',
      tier: 'staging',
      external_url: 'https://canary.example.com',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.tier, 'staging');
    assert.equal(created.body.external_url, 'https://canary.example.com');
    const taken = await send('POST', `${P}/environments`, 'reviewer', { name: 'canary/helloworld' });
    assert.deepEqual(taken.body.message.name, ['has already been taken']);
    const id = created.body.id;
    assert.equal(
      (await send('DELETE', `${P}/environments/${id}`, 'reviewer')).status,
      403,
      'still available',
    );
    const stopped = await send('POST', `${P}/environments/${id}/stop`, 'reviewer');
    assert.deepEqual([stopped.status, stopped.body.state], [200, 'stopped']);
    assert.equal((await send('DELETE', `${P}/environments/${id}`, 'reviewer')).status, 204);
    assert.equal((await get(`${P}/environments/${id}`)).status, 404);
  });

  test('permissions: Reporter reads, Developer writes, a non-member sees nothing, no token is 401', async () => {
    // argocd is a Reporter of the ops project, reviewer a Developer, developer not a member
    assert.equal((await get(`${P}/deployments`, 'argocd')).status, 200);
    assert.equal((await get(`${P}/environments`, 'argocd')).status, 200);
    const reporter = await deploy({ sha: main, status: 'running' }, 'argocd');
    assert.deepEqual([reporter.status, reporter.body], [403, { message: '403 Forbidden' }]);
    const own = await deploy({ sha: main, status: 'running' }, 'reviewer');
    assert.equal(own.status, 201);
    const put = await send('PUT', `${P}/deployments/${own.body.id}`, 'argocd', { status: 'success' });
    assert.equal(put.status, 403);
    assert.equal(
      (await send('POST', `${P}/environments`, 'argocd', { name: 'review/x' })).status,
      403,
      'Reporter cannot create an environment',
    );
    assert.equal((await get(`${P}/deployments`, 'developer')).status, 404);
    assert.equal((await get(`${P}/deployments`, null)).status, 401);
  });

  test('an internal project’s deployments are readable by anyone signed in, writable by Developers', async () => {
    const created = await send('POST', '/projects', 'operator', {
      name: 'internal-ops',
      visibility: 'internal',
      initialize_with_readme: true,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const IP = `/projects/${created.body.id}`;
    const head = (await get(`${IP}/repository/branches/main`, 'operator')).body.commit.id;
    const body = { environment: ENV, sha: head, ref: 'main', tag: false, status: 'success' };
    assert.equal((await send('POST', `${IP}/deployments`, 'operator', body)).status, 201);
    // developer is no member of it: public_access lets them read, not write
    const read = await get(`${IP}/deployments`, 'developer');
    assert.deepEqual([read.status, read.body.length], [200, 1]);
    assert.equal((await get(`${IP}/environments`, 'developer')).status, 200);
    assert.equal((await send('POST', `${IP}/deployments`, 'developer', body)).status, 403);
  });

  test('a CI job token reads deployments and environments but cannot write them', async () => {
    const job = await fetch(`${sb.url}/-/sandbox/job-tokens`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': 'root-token', 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'reviewer', project: OPS }),
    });
    const { token } = (await job.json()) as { token: string };
    const headers = { 'JOB-TOKEN': token, 'Content-Type': 'application/json' };
    assert.equal((await api(sb, `${P}/deployments`, { headers })).status, 200);
    assert.equal((await api(sb, `${P}/environments`, { headers })).status, 200);
    const write = await api(sb, `${P}/deployments`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ environment: ENV, sha: main, ref: 'main', tag: false, status: 'running' }),
    });
    assert.equal(write.status, 401);
  });

  test('the client lists one page newest first, and finished_at ordering for successes', async () => {
    const bot = gitlab('gitops-bot');
    const list = await bot.listDeployments(OPS, { environment: ENV, perPage: 3 });
    assert.equal(list.length, 3);
    assert.ok(list[0].id > list[1].id && list[1].id > list[2].id, 'newest first');
    assert.ok(list.every((d) => d.environment === ENV));
    const successes = await bot.listDeployments(OPS, {
      environment: ENV,
      status: 'success',
      orderBy: 'finished_at',
    });
    assert.ok(successes.length >= 1);
    assert.ok(successes.every((d) => d.status === 'success'));
    assert.ok(
      successes.every((d) => d.finishedAt === null),
      'GitLab’s entity has no finished_at',
    );
  });
});

describe('the client when GitLab’s answer is lost after the write (sandbox --faults drop-after-write)', () => {
  const P = `/projects/${encodeURIComponent(OPS)}`;

  async function withFaults(only: string, fn: (sb: Sandbox, main: string) => Promise<void>): Promise<void> {
    const sb = await sandboxFixture({ faults: `rate=1,kinds=drop-after-write,only=${only}` });
    try {
      const main = (await api(sb, `${P}/repository/branches/main`, { token: 'reviewer-token' })).body.commit
        .id;
      await fn(sb, main);
    } finally {
      await sb.close();
    }
  }
  const bot = (sb: Sandbox) =>
    new GitLab({ url: sb.url, token: 'gitops-bot-token', retry: { baseDelayMs: 1 } });

  test('createDeployment reads back instead of creating a second deployment', async () => {
    await withFaults('POST /projects/:id/deployments', async (sb, main) => {
      const gitlab = bot(sb);
      const d = await startDeployment(gitlab, main);
      assert.equal(d.status, 'running');
      const all = (await api(sb, `${P}/deployments`, { token: 'reviewer-token' })).body;
      assert.deepEqual(
        all.map((x: any) => x.id),
        [d.id],
        'one deployment, although the POST was answered by a dropped connection',
      );
      assert.equal(gitlab.requests, 2, 'the POST (its answer dropped) and the GET that found it');
      assert.equal(gitlab.retries, 0, 'the check found it: no second POST');
    });
  });

  test('updateDeployment reads back instead of repeating a PUT GitLab would refuse', async () => {
    await withFaults('PUT /projects/:id/deployments/:deployment_id', async (sb, main) => {
      const gitlab = bot(sb);
      const d = await startDeployment(gitlab, main);
      const done = await gitlab.updateDeployment(OPS, d.id, 'success');
      assert.equal(done.status, 'success', 'not the 400 a repeated success → success would get');
      assert.equal(gitlab.requests, 3, 'POST, the PUT (its answer dropped), the GET that read it back');
    });
  });
});
