// Environment chains end to end: the sandbox (GitLab, real git), its Argo CD running one
// Application per environment (envs/staging, envs/production, both on main) and notifying
// `serve`. A tag promoted into staging becomes healthy there (GitLab's Deployment, written
// by the feedback loop); after the soak serve opens the production MR itself. What is
// checked is what GitLab holds afterwards: the MRs on gitops-bot/production/helloworld,
// their files and descriptions, and when they were opened.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runChain } from '../../src/chain/index.js';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { recordComment } from '../../src/model/record.js';
import { promote } from '../../src/promote/promote.js';
import { notificationBody } from '../../src/sandbox/argocd/notify.js';
import { freePort } from '../../src/sandbox/docker-registry.js';
import type { ArgocdOptions, Sandbox } from '../../src/sandbox/index.js';
import { MAIN_PROTECTION } from '../../src/sandbox/index.js';
import { createWebhookServer, type WebhookServer } from '../../src/server/webhook.js';
import { type Client, client, OPS, protect, sandboxFixture, until } from '../helpers.js';

const SECRET = 'chain-secret';
const IMAGE = 'registry.example.com/root/helloworld';
const STAGING_FILE = 'envs/staging/deployment.yml';
const PRODUCTION_FILE = 'envs/production/deployment.yml';
const CHAIN_BRANCH = 'gitops-bot/production/helloworld';
const SOAK_MS = 4000;
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function policy(o: { soak?: string; freeze?: boolean; agents?: boolean } = {}): string {
  const today = new Date().getUTCDay();
  const days = `[${DAYS[today]}, ${DAYS[(today + 1) % 7]}]`;
  return `version: 1
environments:
  - name: staging
    match: { files: ['envs/staging/**'] }
    approvals: { required: 0 }
    merge: bot
${o.agents === false ? '' : '    agent: { argocd: helloworld-staging }\n'}  - name: production
    match: { files: ['envs/production/**'] }
    approvals: { required: 1, users: [operator] }
    merge: bot
${o.agents === false ? '' : '    agent: { argocd: helloworld-production }\n'}${o.freeze ? `    freeze: [{ days: ${days}, reason: release freeze }]\n` : ''}promotion:
  - { from: staging, to: production, when: healthy${o.soak ? `, soak: ${o.soak}` : ''}, assignees: [operator] }
`;
}

interface World {
  sb: Sandbox;
  op: Client;
  port: number;
  servers: Array<WebhookServer & { hookId?: number }>;
}

/** The ops repo with a directory per environment, both at ci-33, under `policyText`. */
async function opsRepo(sb: Sandbox, policyText: string): Promise<Client> {
  const op = client(sb, 'operator');
  const base = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await op.Commits.create(OPS, 'main', 'Environments staging and production, and the chain', [
    { action: 'create', filePath: '.gitops-bot.yml', content: policyText },
    { action: 'create', filePath: STAGING_FILE, content: base },
    { action: 'create', filePath: PRODUCTION_FILE, content: base },
  ]);
  await protect(sb, MAIN_PROTECTION);
  return op;
}

async function world(): Promise<World> {
  const port = await freePort();
  const app = (env: string) => ({
    name: `helloworld-${env}`,
    repo: OPS,
    path: `envs/${env}`,
    targetRevision: 'main',
    destinationNamespace: `helloworld-${env}`,
  });
  const sb = await sandboxFixture({
    argocd: {
      pollMs: 200,
      syncMs: 100,
      progressingMs: 300,
      notifyUrl: `http://127.0.0.1:${port}/argocd`,
      notifyToken: SECRET,
      notifyRetryWaitMs: 50,
      apps: [app('staging'), app('production')],
    } as ArgocdOptions,
  });
  const op = await opsRepo(sb, policy({ soak: `${SOAK_MS / 1000}s` }));
  const w: World = { sb, op, port, servers: [] };
  await serve(w, port);
  return w;
}

/** A `serve` replica (its start runs the chains once); on `port`, it gets Argo CD's notifications. */
async function serve(w: World, port = 0): Promise<WebhookServer> {
  const gitlab = new GitLabGate({ url: w.sb.url, token: 'gitops-bot-token' });
  const bot = await gitlab.currentUser();
  const srv = createWebhookServer({ ctx: { gitlab, botUserId: bot.id }, secret: SECRET, projects: [OPS] });
  const url = await srv.listen(port, '127.0.0.1');
  const hook = await w.op.ProjectHooks.add(OPS, `${url}/webhook`, {
    token: SECRET,
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
  });
  const s = srv as WebhookServer & { hookId?: number };
  s.hookId = hook.id;
  w.servers.push(s);
  return srv;
}

async function stop(w: World, srv: WebhookServer & { hookId?: number }): Promise<void> {
  await w.op.ProjectHooks.remove(OPS, srv.hookId!);
  await srv.close();
  w.servers.splice(w.servers.indexOf(srv), 1);
}

const settle = (w: World) => w.sb.settle(...w.servers);

/** promote `tag` into staging (by hand, as CI would); the gate merges it (no approvals needed there). */
async function toStaging(w: World, tag: string): Promise<void> {
  const r = await promote(
    { project: OPS, files: [STAGING_FILE], env: 'staging', image: IMAGE, tag },
    { gitlab: new GitLab({ url: w.sb.url, token: 'gitops-bot-token' }) },
  );
  assert.ok(r.mr, `promote ${tag} to staging: ${r.action} (${r.reason})`);
  await until(
    async () => (await w.op.MergeRequests.show(OPS, r.mr!.iid)).state === 'merged',
    `staging !${r.mr.iid} merged by the bot`,
    100,
    100,
  );
}

type Deployment = { id: number; sha: string; status: string; updated_at: string; user: { username: string } };

async function stagingDeployments(w: World): Promise<Deployment[]> {
  const r = await fetch(
    `${w.sb.apiUrl}/projects/${encodeURIComponent(OPS)}/deployments?environment=staging%2Fhelloworld&order_by=id&sort=desc&per_page=100`,
    { headers: { 'PRIVATE-TOKEN': 'operator-token' } },
  );
  return (await r.json()) as Deployment[];
}

/** Waits for staging's newest bot deployment of main's head to be successful; returns it. */
async function healthyInStaging(w: World): Promise<Deployment> {
  const head = (await w.op.Branches.show(OPS, 'main')).commit.id;
  let found: Deployment | undefined;
  await until(
    async () => {
      found = (await stagingDeployments(w)).find(
        (d) => d.sha === head && d.status === 'success' && d.user.username === 'gitops-bot',
      );
      return !!found;
    },
    `a success deployment of ${head.slice(0, 8)} in staging/helloworld`,
    100,
    150,
  );
  return found!;
}

/** Every MR (any state) from the chain's branch. */
const chainMrs = (w: World) => w.op.MergeRequests.all({ projectId: OPS, sourceBranch: CHAIN_BRANCH });
const openChainMrs = async (w: World) => (await chainMrs(w)).filter((m) => m.state === 'opened');

const productionTagOn = async (w: World, ref: string) =>
  /helloworld:(ci-\d+)/.exec(String(await w.op.RepositoryFiles.showRaw(OPS, PRODUCTION_FILE, ref)))?.[1];

const hhmm = (iso: string) => new Date(iso).toISOString().slice(11, 16);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('environment chain staging → production, with Argo CD and serve', () => {
  let w: World;
  before(async () => {
    w = await world();
  });
  after(async () => {
    for (const s of [...w.servers]) await s.close();
    await w.sb.close();
  });

  let iid = 0;

  test('a soak not yet over waits, across a restart too; then the production MR, verified in staging since', async () => {
    await toStaging(w, 'ci-34');
    const healthy = await healthyInStaging(w);
    const soakEnd = Date.parse(healthy.updated_at) + SOAK_MS;
    await settle(w);
    assert.ok(Date.now() < soakEnd, 'the test reached here within the soak');
    assert.deepEqual(await chainMrs(w), [], 'no production MR during the soak');
    // a restart during the soak: the new process reads the soak from GitLab, and waits still
    await stop(w, w.servers[0]);
    await serve(w, w.port);
    await settle(w);
    if (Date.now() < soakEnd - 200) assert.deepEqual(await chainMrs(w), [], 'none after the restart either');
    await until(async () => (await openChainMrs(w)).length > 0, 'the production MR', 100, 150);
    const [mr] = await openChainMrs(w);
    iid = mr.iid;
    assert.ok(
      Date.parse(String(mr.created_at)) >= soakEnd - 1000,
      `opened at ${mr.created_at}, not before the soak's end ${new Date(soakEnd).toISOString()}`,
    );
    assert.equal(mr.target_branch, 'main');
    assert.deepEqual(
      (mr.assignees ?? []).map((a) => (a as { username: string }).username),
      ['operator'],
    );
    assert.equal(await productionTagOn(w, CHAIN_BRANCH), 'ci-34');
    assert.equal(await productionTagOn(w, 'main'), 'ci-33', 'production waits for the operator');
    assert.ok(
      String(mr.description).includes(`verified in staging since ${hhmm(healthy.updated_at)}`),
      `the description says where it was verified: ${mr.description}`,
    );
    await settle(w);
    assert.equal((await w.op.MergeRequests.show(OPS, iid)).state, 'opened', "production's rules: not merged");
    // Both Applications track main: production's agent reported on the staging merge too,
    // but a staging MR is staging's (its record says so), not production's.
    const stagingMr = (
      await w.op.MergeRequests.all({ projectId: OPS, sourceBranch: 'gitops-bot/staging/helloworld' })
    )[0];
    const notes = await w.op.MergeRequestNotes.all(OPS, stagingMr.iid);
    const sections = notes.map((n) => String(n.body)).filter((b) => b.includes('gitops-bot:deployment'));
    assert.ok(
      sections.length > 0 && sections.some((b) => b.includes('staging/helloworld')),
      'staging writes its section',
    );
    assert.ok(
      !sections.some((b) => b.includes('production/helloworld')),
      `no production section on the staging MR: ${sections}`,
    );
  });

  test('restarts, a second replica and duplicate notifications: still one MR, one commit', async () => {
    const before = (await w.op.Branches.show(OPS, CHAIN_BRANCH)).commit.id;
    // two replicas start at once (each decides the chain at start) while the agent repeats itself
    await Promise.all([serve(w), serve(w)]);
    const app = w.sb.argocd!.get('helloworld-staging')!;
    for (let i = 0; i < 3; i++)
      for (const url of w.servers.map(
        (s) => `http://127.0.0.1:${(s.server.address() as { port: number }).port}`,
      )) {
        const r = await fetch(`${url}/argocd`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'X-Gitops-Bot-Token': SECRET },
          body: notificationBody(app),
        });
        assert.equal(r.status, 202);
      }
    await settle(w);
    const all = await chainMrs(w);
    assert.deepEqual(
      all.map((m) => [m.iid, m.state]),
      [[iid, 'opened']],
    );
    assert.equal((await w.op.Branches.show(OPS, CHAIN_BRANCH)).commit.id, before, 'no new commit');
    for (const s of w.servers.slice(1)) await stop(w, s);
  });

  test('a freeze in production waits; when it is lifted, the chain moves the MR on', async () => {
    await w.op.Commits.create(OPS, 'main', 'Release freeze in production', [
      {
        action: 'update',
        filePath: '.gitops-bot.yml',
        content: policy({ soak: `${SOAK_MS / 1000}s`, freeze: true }),
      },
    ]);
    await settle(w);
    await toStaging(w, 'ci-35');
    const healthy = await healthyInStaging(w);
    await sleep(Math.max(0, Date.parse(healthy.updated_at) + SOAK_MS + 1500 - Date.now()));
    await settle(w);
    assert.equal(await productionTagOn(w, CHAIN_BRANCH), 'ci-34', 'the MR still proposes ci-34');
    // what serve decided, decided again here: the same facts, the same answer
    const gitlab = new GitLabGate({ url: w.sb.url, token: 'gitops-bot-token' });
    const ctx = { gitlab, botUserId: (await gitlab.currentUser()).id };
    const run = await runChain(ctx, OPS, { dryRun: true });
    const [d] = run.decisions;
    assert.ok(d && 'wait' in d, `waits: ${JSON.stringify(d)}`);
    assert.match(d.wait, /^production is frozen \(\w+,\w+ 00:00-24:00 UTC\): release freeze$/);
    assert.ok(d.until && Date.parse(d.until) > Date.now(), `until the freeze ends: ${d.until}`);
    assert.equal(run.nextAt, d.until, 'serve sets its timer to the end of the freeze');

    await w.op.Commits.create(OPS, 'main', 'Freeze lifted', [
      { action: 'update', filePath: '.gitops-bot.yml', content: policy({ soak: `${SOAK_MS / 1000}s` }) },
    ]);
    await settle(w);
    // the freeze's end is a timer in serve; a restart decides from GitLab at once
    await stop(w, w.servers[0]);
    await serve(w, w.port);
    await until(
      async () => (await productionTagOn(w, CHAIN_BRANCH)) === 'ci-35',
      'the MR moved to ci-35',
      100,
      100,
    );
    const all = await chainMrs(w);
    assert.deepEqual(
      all.map((m) => [m.iid, m.state]),
      [[iid, 'opened']],
      'the same MR, updated',
    );
  });
});

describe('environment chain from GitLab facts alone (no agent): rejected tags, racing replicas, a closed MR', () => {
  let sb: Sandbox;
  let op: Client;
  let ctx: { gitlab: GitLabGate; botUserId: number };
  before(async () => {
    sb = await sandboxFixture();
    op = await opsRepo(sb, policy({ agents: false }));
    const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
    ctx = { gitlab, botUserId: (await gitlab.currentUser()).id };
  });
  after(() => sb.close());

  /** staging runs `tag` at main's head: the bot's successful deployment of it (as feedback writes). */
  async function stagingRuns(tag: string): Promise<void> {
    const text = String(await op.RepositoryFiles.showRaw(OPS, STAGING_FILE, 'main'));
    await op.Commits.create(OPS, 'main', `staging: ${tag}`, [
      {
        action: 'update',
        filePath: STAGING_FILE,
        content: text.replace(/helloworld:ci-\d+/, `helloworld:${tag}`),
      },
    ]);
    const head = (await op.Branches.show(OPS, 'main')).commit.id;
    await ctx.gitlab.createDeployment(OPS, {
      environment: 'staging/helloworld',
      sha: head,
      ref: 'main',
      status: 'success',
    });
  }

  test('a tag rolled back from production never chains', async () => {
    await stagingRuns('ci-34');
    // ci-34 was rolled back from production: a merged rollback MR of the bot's branch says so
    const text = String(await op.RepositoryFiles.showRaw(OPS, PRODUCTION_FILE, 'main'));
    await op.Branches.create(OPS, CHAIN_BRANCH, 'main');
    await op.Commits.create(OPS, CHAIN_BRANCH, 'Roll back helloworld to ci-33 in production', [
      { action: 'update', filePath: PRODUCTION_FILE, content: `${text}# rolled back\n` },
    ]);
    const record = recordComment({
      v: 1,
      app: 'helloworld',
      env: 'production',
      image: IMAGE,
      tag: 'ci-33',
      fromTag: 'ci-34',
      target: 'main',
      files: [],
      source: {},
      rollback: {
        fromTag: 'ci-34',
        reason: 'Degraded: ImagePullBackOff',
        waived: 'downgrade',
        by: 'command',
      },
    });
    const rb = await op.MergeRequests.create(
      OPS,
      CHAIN_BRANCH,
      'main',
      'Roll back helloworld to ci-33 in production',
      {
        description: `Rollback.\n\n${record}`,
      },
    );
    const merged = await op.MergeRequests.merge(OPS, rb.iid);

    const first = await runChain(ctx, OPS);
    assert.deepEqual(
      first.decisions.map((d) => ('none' in d ? d.none : JSON.stringify(d))),
      [
        `rejected: ci-34 was rolled back from production at ${hhmm(String(merged.merged_at))} (!${rb.iid}): Degraded: ImagePullBackOff`,
      ],
    );
    assert.equal(first.opened.length, 0);
    assert.deepEqual(
      (await op.MergeRequests.all({ projectId: OPS, sourceBranch: CHAIN_BRANCH, state: 'opened' })).length,
      0,
    );
  });

  let iid = 0;

  test('a newer tag does; two replicas deciding at the same moment open one MR; a duplicate nothing', async () => {
    await stagingRuns('ci-35');
    // two replicas decide at the same moment: one MR between them
    const other = { ...ctx, gitlab: new GitLabGate({ url: sb.url, token: 'gitops-bot-token' }) };
    const runs = await Promise.all([runChain(ctx, OPS), runChain(other, OPS)]);
    const results = runs.flatMap((r) => r.opened).map((o) => ('result' in o ? o.result.action : o.error));
    assert.ok(results.includes('created'), results.join(', '));
    const open = await op.MergeRequests.all({ projectId: OPS, sourceBranch: CHAIN_BRANCH, state: 'opened' });
    assert.equal(open.length, 1, `one MR: ${results.join(', ')}`);
    assert.equal(
      /helloworld:(ci-\d+)/.exec(
        String(await op.RepositoryFiles.showRaw(OPS, PRODUCTION_FILE, CHAIN_BRANCH)),
      )?.[1],
      'ci-35',
    );
    // decided again (a duplicate event): nothing more
    const third = await runChain(ctx, OPS);
    assert.deepEqual(
      third.decisions.map((d) => ('none' in d ? d.none : JSON.stringify(d))),
      [`!${open[0].iid} proposes ci-35 already`],
    );
    iid = open[0].iid;
  });

  test('an MR the operator closed is not opened again; a newer tag is', async () => {
    await op.MergeRequests.edit(OPS, iid, { stateEvent: 'close' });
    const fourth = await runChain(ctx, OPS);
    assert.deepEqual(
      fourth.decisions.map((d) => ('none' in d ? d.none : JSON.stringify(d))),
      [`!${iid} proposing ci-35 was closed: not proposed again (a newer tag will be)`],
    );
    await stagingRuns('ci-36');
    const fifth = await runChain(ctx, OPS);
    assert.deepEqual(
      fifth.opened.map((o) => ('result' in o ? o.result.action : o.error)),
      ['created'],
    );
  });
});
