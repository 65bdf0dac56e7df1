// Issue 17 end to end: the sandbox (GitLab, real git), Debian's docker-registry (so promote
// records the app MRs a tag carries), `serve` with its /argocd and /flux endpoints, and the
// payloads the README's Argo CD template and Flux's generic(-hmac) provider send. What is
// checked is what GitLab holds afterwards: Deployments, the gitops-bot/deploy status, the
// Deployment section of the MR's sticky comment, the note on the app MR, the alert.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { DIFF_MARKER } from '../../src/model/markers.js';
import { promote } from '../../src/promote/promote.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage } from '../../src/sandbox/images.js';
import { type Sandbox, strictPolicy } from '../../src/sandbox/index.js';
import { createWebhookServer, type WebhookServer } from '../../src/server/webhook.js';
import { APP, type Client, client, OPS, protect, sandboxFixture, until } from '../helpers.js';
import { freePort, type Registry, startRegistry } from '../registry/docker-registry.js';
import { skipUnless } from '../tools.js';

const skip = skipUnless('docker-registry');
const SECRET = 'agent-secret';
const ENV = 'production/helloworld';

function policy(agent: string, timeout: string): string {
  return strictPolicy({ agent, deploy_timeout: timeout });
}

interface World {
  sb: Sandbox;
  registry: Registry;
  op: Client;
  image: string;
  replicas: WebhookServer[];
  urls: string[];
  /** the app MR (root/helloworld) that ci-34 carries */
  appMr: number;
  appMergeSha: string;
  /** serve's jobs on a worker thread, as the CLI runs them */
  worker?: boolean;
}

/**
 * A sandbox whose ops repo runs images from the test registry, under `policyText`. With
 * `argocd`, the sandbox's Argo CD (its registry the test one) notifies the first replica,
 * which listens on a port chosen up front.
 */
async function world(
  policyText: string,
  replicas: number,
  argocd: false | 'notify' | 'poll' = false,
  worker = false,
  /** the sandbox Argo CD's reconciliation interval */
  argocdPollMs = 200,
): Promise<World> {
  const registry = await startRegistry();
  const port = argocd === 'notify' ? await freePort() : 0;
  const sb = await sandboxFixture(
    argocd
      ? {
          argocd: {
            pollMs: argocdPollMs,
            syncMs: 100,
            progressingMs: 300,
            registries: [registry.url],
            ...(argocd === 'notify'
              ? { notifyUrl: `http://127.0.0.1:${port}/argocd`, notifyToken: SECRET, notifyRetryWaitMs: 50 }
              : {}),
          },
        }
      : {},
  );
  const op = client(sb, 'operator');
  const dev = client(sb, 'reviewer'); // Maintainer of root/helloworld
  const image = `${registry.host}/root/helloworld`;
  const labels = (sha: string) => ({
    'org.opencontainers.image.revision': sha,
    'org.opencontainers.image.source': `${sb.url}/${APP}`,
  });
  await pushImage(registry.url, 'root/helloworld', 'ci-33', {
    labels: labels((await dev.Commits.show(APP, 'main')).id),
  });
  await dev.Commits.create(
    APP,
    'feature/hw-001',
    'HW-001: say hello',
    [{ action: 'create', filePath: 'hello.txt', content: 'hello\n' }],
    { startBranch: 'main' },
  );
  const mr = await dev.MergeRequests.create(APP, 'feature/hw-001', 'main', 'HW-001: say hello');
  const merged = await dev.MergeRequests.merge(APP, mr.iid);
  for (const tag of ['ci-34', 'ci-36', 'ci-38', 'ci-40', 'ci-42'])
    await pushImage(registry.url, 'root/helloworld', tag, {
      labels: labels(String(merged.merge_commit_sha)),
    });
  const base = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await op.Commits.create(OPS, 'main', 'Policy, and images from the test registry', [
    { action: 'create', filePath: '.gitops-bot.yml', content: policyText },
    {
      action: 'update',
      filePath: 'deployment.yml',
      content: base.replace('registry.example.com/root/helloworld', image),
    },
  ]);
  await op.Branches.create(OPS, 'deploy/prod', 'main');
  await protect(sb, { name: 'main', push_access_level: 40, merge_access_level: 30 });
  const w: World = {
    sb,
    registry,
    op,
    image,
    replicas: [],
    urls: [],
    appMr: mr.iid,
    appMergeSha: String(merged.merge_commit_sha),
    worker,
  };
  const poll = argocd === 'poll' ? await argocdPolling(sb) : undefined;
  for (let i = 0; i < replicas; i++) await addReplica(w, i === 0 ? port : 0, poll);
  return w;
}

/** serve's --argocd-url: the sandbox's Argo CD, read with a session token of its admin. */
async function argocdPolling(sb: Sandbox): Promise<{ url: string; token: string; pollMs: number }> {
  const res = await fetch(`${sb.argocdUrl}/api/v1/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: 'argocd-admin' }),
  });
  const { token } = (await res.json()) as { token: string };
  return { url: sb.argocdUrl!, token, pollMs: 150 };
}

async function addReplica(
  w: World,
  port = 0,
  argocd?: { url: string; token: string; pollMs: number },
): Promise<WebhookServer> {
  const gitlab = new GitLabGate({ url: w.sb.url, token: 'gitops-bot-token' });
  const bot = await gitlab.currentUser();
  const srv = createWebhookServer({
    ctx: { gitlab, botUserId: bot.id },
    secret: SECRET,
    projects: [OPS],
    ...(argocd ? { argocd } : {}),
    ...(w.worker ? { worker: true } : {}),
  });
  const url = await srv.listen(port, '127.0.0.1');
  const hook = await w.op.ProjectHooks.add(OPS, `${url}/webhook`, {
    token: SECRET,
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
  });
  (srv as WebhookServer & { hookId?: number }).hookId = hook.id;
  w.replicas.push(srv);
  w.urls.push(url);
  return srv;
}

async function removeReplica(w: World, i: number): Promise<void> {
  const srv = w.replicas[i] as WebhookServer & { hookId?: number };
  await w.op.ProjectHooks.remove(OPS, srv.hookId!);
  await srv.close();
  w.replicas.splice(i, 1);
  w.urls.splice(i, 1);
}

/** promote `tag` (verified in the registry unless `verify` is false), approve; the bot merges and moves deploy/prod. */
async function promoteAndMerge(
  w: World,
  tag: string,
  verify = true,
): Promise<{ iid: number; revision: string; mergedAt: string }> {
  const r = await promote(
    { project: OPS, files: ['deployment.yml'], image: w.image, tag },
    {
      gitlab: new GitLab({ url: w.sb.url, token: 'gitops-bot-token' }),
      ...(verify ? { registry: new RegistryClient() } : {}),
    },
  );
  assert.ok(r.mr, `promote ${tag}: ${r.action} (${r.reason})`);
  const iid = r.mr.iid;
  await w.sb.settle(...w.replicas);
  const mr = await w.op.MergeRequests.show(OPS, iid);
  await w.op.MergeRequestApprovals.approve(OPS, iid, { sha: mr.sha });
  await w.sb.settle(...w.replicas);
  const merged = await w.op.MergeRequests.show(OPS, iid);
  assert.equal(merged.state, 'merged', `!${iid} merged by the bot`);
  const head = (await w.op.Branches.show(OPS, 'deploy/prod')).commit.id;
  assert.equal(head, merged.merge_commit_sha, 'deploy/prod moved to the merge');
  return { iid, revision: String(head), mergedAt: String(merged.merged_at) };
}

/** The body of the README's Argo CD template: the partial Application. */
function argoBody(
  revision: string,
  s: { phase?: 'Running' | 'Succeeded' | 'Failed'; health: string; message?: string; at: string },
) {
  const finished = s.phase && s.phase !== 'Running';
  return {
    application: {
      metadata: { name: 'helloworld', namespace: 'argocd' },
      spec: {
        source: {
          repoURL: 'http://gitlab.invalid/root/helloworld-ops.git',
          path: '.',
          targetRevision: 'deploy/prod',
        },
      },
      status: {
        sync: { status: 'Synced', revision },
        health: { status: s.health, ...(s.message ? { message: s.message } : {}), lastTransitionTime: s.at },
        operationState: s.phase
          ? {
              operation: { sync: { revision }, initiatedBy: { automated: true } },
              phase: s.phase,
              message:
                s.phase === 'Failed'
                  ? (s.message ?? 'sync failed')
                  : finished
                    ? 'successfully synced (all tasks run)'
                    : '',
              ...(finished ? { syncResult: { revision } } : {}),
              startedAt: s.at,
              ...(finished ? { finishedAt: s.at } : {}),
            }
          : null,
        summary: { images: ['registry/root/helloworld:ci-34'] },
      },
    },
  };
}

async function post(
  url: string,
  path: '/argocd' | '/flux',
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = JSON.stringify(body);
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Gitops-Bot-Token': SECRET, ...headers },
    body: text,
  });
  return { status: res.status, body: await res.json() };
}

async function deployments(w: World, environment = ENV) {
  const r = await fetch(
    `${w.sb.apiUrl}/projects/${encodeURIComponent(OPS)}/deployments?environment=${encodeURIComponent(environment)}&per_page=100`,
    {
      headers: { 'PRIVATE-TOKEN': 'operator-token' },
    },
  );
  return (await r.json()) as Array<{ id: number; sha: string; status: string; user: { username: string } }>;
}

const ofRevision = async (w: World, revision: string) =>
  (await deployments(w)).filter((d) => d.sha === revision && d.status !== 'canceled');

/** The statuses of `revision`'s deployments. */
const statusesOf = async (w: World, revision: string) => (await ofRevision(w, revision)).map((d) => d.status);

/** Waits (every 100 ms, `tries` times) for a deployment of `revision` in `status`; `what` names it. */
const untilDeployment = (w: World, revision: string, status: string, what: string, tries: number) =>
  until(async () => (await ofRevision(w, revision)).some((d) => d.status === status), what, 100, tries);

/** The bot's deploy alerts on the ops MR `iid`. */
const deployAlerts = async (w: World, iid: number) =>
  (await w.op.MergeRequestNotes.all(OPS, iid)).filter((n) => n.body.includes('gitops-bot:deploy-alert'));

/** The bot's "deployed" notes on the app MR. */
const deployedNotes = async (w: World) =>
  (await client(w.sb, 'reviewer').MergeRequestNotes.all(APP, w.appMr)).filter((n) =>
    n.body.includes('gitops-bot:deployed'),
  );

/** The replicas first, then the sandbox and the registry. */
async function closeWorld(w: World | undefined): Promise<void> {
  for (const r of w?.replicas ?? []) await r.close();
  await Promise.all([w?.registry.close(), w?.sb.close()]);
}

async function section(w: World, iid: number): Promise<string> {
  const notes = await w.op.MergeRequestNotes.all(OPS, iid);
  const sticky = notes.filter((n) => n.body.startsWith(DIFF_MARKER));
  assert.equal(sticky.length, 1, 'one sticky comment');
  const body = sticky[0].body;
  const at = body.indexOf('### Deployment');
  return at < 0 ? '' : body.slice(at);
}

async function deployStatus(w: World, sha: string) {
  const list = await w.op.Commits.allStatuses(OPS, sha, { name: 'gitops-bot/deploy' } as never);
  return list[0] as { status: string; description: string; author: { username: string } } | undefined;
}

/** gitops_bot_deploy_failures_total of production/helloworld for `reason`, as `srv` counts it. */
const failures = (srv: WebhookServer, reason: string) =>
  metric(
    srv,
    new RegExp(
      `gitops_bot_deploy_failures_total\\{environment="production/helloworld",reason="${reason}"\\} (\\d+)`,
    ),
  );

async function metric(srv: WebhookServer, text: RegExp): Promise<number> {
  const m = text.exec(await srv.registry.metrics());
  return m ? Number(m[1]) : 0;
}

describe('Argo CD notifications → GitLab', { skip }, () => {
  let w: World;
  before(async () => {
    w = await world(policy('{ argocd: helloworld }', '10m'), 2);
  });
  after(() => closeWorld(w));

  let healthy: { iid: number; revision: string; mergedAt: string };

  test('healthy path: running, then Synced and Healthy: a Deployment, the status, the section, the app MR note', async () => {
    healthy = await promoteAndMerge(w, 'ci-34');
    const { revision, iid } = healthy;
    const t0 = new Date(Date.parse(healthy.mergedAt) + 5_000).toISOString();
    const r = await post(
      w.urls[0],
      '/argocd',
      argoBody(revision, { phase: 'Running', health: 'Progressing', at: t0 }),
    );
    assert.equal(r.status, 202);
    await w.sb.settle(...w.replicas);
    let deps = await ofRevision(w, revision);
    assert.deepEqual(
      deps.map((d) => d.status),
      ['running'],
    );
    assert.equal(deps[0].user.username, 'gitops-bot');
    const running = await deployStatus(w, revision);
    assert.equal(running?.status, 'running');
    assert.equal(running?.description, `${ENV}: running`);
    // the sync under way shows in the Deployment and the status; the MR's comment waits for the outcome
    assert.equal(await section(w, iid), '', 'no Deployment section while running');

    const t1 = new Date(Date.parse(healthy.mergedAt) + 130_000).toISOString();
    await post(w.urls[0], '/argocd', argoBody(revision, { phase: 'Succeeded', health: 'Healthy', at: t1 }));
    await w.sb.settle(...w.replicas);
    deps = await ofRevision(w, revision);
    assert.deepEqual(
      deps.map((d) => d.status),
      ['success'],
    );
    const s = await deployStatus(w, revision);
    assert.equal(s?.status, 'success');
    assert.equal(s?.description, `${ENV}: Healthy`);
    assert.ok(
      (await section(w, iid)).includes(
        `✅ Synced and Healthy in production at ${t1.slice(11, 16)} (2 min 10 s after merge)`,
      ),
    );
    const appNotes = await deployedNotes(w);
    assert.equal(appNotes.length, 1);
    assert.match(
      appNotes[0].body,
      new RegExp(`Deployed to production at ${t1.slice(11, 16)} \\(helloworld-ops!${iid}\\)`),
    );
    // GitLab's own view: the environment production/helloworld, its last deployment this one
    const envs = await w.op.Environments.all(OPS, { name: ENV } as never);
    assert.equal(envs.length, 1);
  });

  test('duplicate and reordered notifications: nothing more is written', async () => {
    const { revision, iid } = healthy;
    const before = await section(w, iid);
    const notesBefore = await w.op.MergeRequestNotes.all(OPS, iid);
    const t0 = new Date(Date.parse(healthy.mergedAt) + 5_000).toISOString();
    const t1 = new Date(Date.parse(healthy.mergedAt) + 130_000).toISOString();
    // the healthy one twice, then the running one (older) arrives last
    await post(w.urls[0], '/argocd', argoBody(revision, { phase: 'Succeeded', health: 'Healthy', at: t1 }));
    await post(w.urls[1], '/argocd', argoBody(revision, { phase: 'Succeeded', health: 'Healthy', at: t1 }));
    await post(w.urls[0], '/argocd', argoBody(revision, { phase: 'Running', health: 'Progressing', at: t0 }));
    // an older Degraded (before the Healthy one) is history, not news
    await post(
      w.urls[0],
      '/argocd',
      argoBody(revision, { phase: 'Succeeded', health: 'Degraded', message: 'old', at: t0 }),
    );
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['success']);
    assert.equal(await section(w, iid), before);
    const notesAfter = await w.op.MergeRequestNotes.all(OPS, iid);
    assert.equal(notesAfter.length, notesBefore.length, 'no alert, no new comment');
    const appNotes = await deployedNotes(w);
    assert.equal(appNotes.length, 1, 'one note on the app MR');
    assert.equal((await deployStatus(w, revision))?.status, 'success');
  });

  test("a side-branch commit copying the bot's record, reported by the agent, deploys nothing", async () => {
    const { revision, iid } = healthy;
    const before = await section(w, iid);
    // the bot's promotion commit (the merge's second parent) carries the record trailer
    const merge = await w.op.Commits.show(OPS, revision);
    const promotion = await w.op.Commits.show(OPS, String(merge.parent_ids?.[1]));
    const side = await w.op.Commits.create(
      OPS,
      'side/copied-record',
      String(promotion.message),
      [{ action: 'create', filePath: 'side.txt', content: 'not deployed\n' }],
      { startBranch: 'deploy/prod' } as never,
    );
    const at = new Date().toISOString();
    await post(
      w.urls[0],
      '/argocd',
      argoBody(String(side.id), { phase: 'Running', health: 'Progressing', at }),
    );
    await post(
      w.urls[0],
      '/argocd',
      argoBody(String(side.id), { phase: 'Succeeded', health: 'Healthy', at }),
    );
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await ofRevision(w, String(side.id)), [], 'no Deployment for a commit off the branch');
    assert.equal(await deployStatus(w, String(side.id)), undefined, 'no gitops-bot/deploy status on it');
    assert.equal(await section(w, iid), before, 'the MR its record names is left alone');
  });

  test('two replicas get the same notifications at once: one Deployment, one note, one section', async () => {
    const { revision, iid, mergedAt } = await promoteAndMerge(w, 'ci-36');
    const t0 = new Date(Date.parse(mergedAt) + 1_000).toISOString();
    const t1 = new Date(Date.parse(mergedAt) + 20_000).toISOString();
    const running = argoBody(revision, { phase: 'Running', health: 'Progressing', at: t0 });
    await Promise.all(w.urls.flatMap((u) => [post(u, '/argocd', running), post(u, '/argocd', running)]));
    await w.sb.settle(...w.replicas);
    const healthyBody = argoBody(revision, { phase: 'Succeeded', health: 'Healthy', at: t1 });
    await Promise.all(w.urls.map((u) => post(u, '/argocd', healthyBody)));
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['success'], 'one live deployment');
    assert.match(await section(w, iid), /✅ Synced and Healthy in production/);
    // ci-36 carries no app change after ci-34: the app MR keeps its one note
    const appNotes = await deployedNotes(w);
    assert.equal(appNotes.length, 1, 'one note on the app MR');
  });

  test('degraded: failed, the agent message in the section and status, one alert however often it is said', async () => {
    const { revision, iid, mergedAt } = await promoteAndMerge(w, 'ci-37', false);
    const message = `Back-off pulling image "${w.image}:ci-37"`;
    const t = new Date(Date.parse(mergedAt) + 30_000).toISOString();
    for (const u of [w.urls[0], w.urls[0], w.urls[1]])
      await post(
        u,
        '/argocd',
        argoBody(revision, { phase: 'Succeeded', health: 'Degraded', message, at: t }),
      );
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['failed']);
    assert.ok((await section(w, iid)).includes(`❌ Degraded: ${message}`));
    const s = await deployStatus(w, revision);
    assert.equal(s?.status, 'failed');
    assert.equal(s?.description, `${ENV}: Degraded: ${message}`);
    const alerts = await deployAlerts(w, iid);
    assert.equal(alerts.length, 1, 'one alert comment');
    assert.match(alerts[0].body, /Deployment of `[0-9a-f]{8}` to production failed/);
    const counted = await Promise.all(w.replicas.map((r) => failures(r, 'degraded')));
    assert.equal(
      counted.reduce((a, b) => a + b, 0),
      1,
      'counted once across replicas',
    );
  });

  test('a failed sync: failed, with the operation message', async () => {
    const { revision, iid, mergedAt } = await promoteAndMerge(w, 'ci-38');
    const t = new Date(Date.parse(mergedAt) + 10_000).toISOString();
    await post(
      w.urls[0],
      '/argocd',
      argoBody(revision, {
        phase: 'Failed',
        health: 'Healthy',
        message: 'one or more objects failed to apply',
        at: t,
      }),
    );
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['failed']);
    assert.ok((await section(w, iid)).includes('❌ Sync failed: one or more objects failed to apply'));
  });

  test('a restart between running and success: the new process finishes the same Deployment', async () => {
    const { revision, iid, mergedAt } = await promoteAndMerge(w, 'ci-40');
    const t0 = new Date(Date.parse(mergedAt) + 1_000).toISOString();
    await post(w.urls[0], '/argocd', argoBody(revision, { phase: 'Running', health: 'Progressing', at: t0 }));
    await w.sb.settle(...w.replicas);
    const [first] = await ofRevision(w, revision);
    assert.equal(first.status, 'running');
    // every replica goes; a new one starts with nothing in memory
    while (w.replicas.length) await removeReplica(w, 0);
    await addReplica(w);
    const t1 = new Date(Date.parse(mergedAt) + 40_000).toISOString();
    await post(w.urls[0], '/argocd', argoBody(revision, { phase: 'Succeeded', health: 'Healthy', at: t1 }));
    await w.sb.settle(...w.replicas);
    const deps = await ofRevision(w, revision);
    assert.deepEqual(
      deps.map((d) => [d.id, d.status]),
      [[first.id, 'success']],
    );
    const text = await section(w, iid);
    assert.match(
      text,
      /✅ Synced and Healthy in production at .* \(40 s after merge\)/,
      JSON.stringify({ mergedAt, t1, text }),
    );
  });

  test('refused: no token, a wrong token, a body that is not an Application', async () => {
    const body = argoBody('a'.repeat(40), {
      phase: 'Running',
      health: 'Progressing',
      at: new Date().toISOString(),
    });
    const none = await fetch(`${w.urls[0]}/argocd`, { method: 'POST', body: JSON.stringify(body) });
    assert.equal(none.status, 401);
    assert.equal((await post(w.urls[0], '/argocd', body, { 'X-Gitops-Bot-Token': 'wrong' })).status, 401);
    const bad = await post(w.urls[0], '/argocd', { application: { metadata: {} } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /metadata\.name: missing/);
  });
});

/** A Flux event as notification-controller's generic provider posts it. */
function fluxEvent(
  revision: string,
  s: { severity: 'info' | 'error'; reason: string; message: string; at: string },
) {
  return {
    involvedObject: {
      kind: 'Kustomization',
      namespace: 'flux-system',
      name: 'helloworld',
      uid: '5e1f0a2b-0000-4000-8000-000000000000',
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      resourceVersion: '4711',
    },
    severity: s.severity,
    timestamp: s.at,
    message: s.message,
    reason: s.reason,
    metadata: { revision: `deploy/prod@sha1:${revision}` },
    reportingController: 'kustomize-controller',
    reportingInstance: 'kustomize-controller-7f9c',
  };
}

/** generic-hmac: X-Signature: sha256=<hex HMAC of the body>, no token header. */
async function postSigned(url: string, body: unknown, key = SECRET) {
  const text = JSON.stringify(body);
  const sig = createHmac('sha256', key).update(text).digest('hex');
  const res = await fetch(`${url}/flux`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-Signature': `sha256=${sig}`,
      'gotk-component': 'kustomize-controller',
    },
    body: text,
  });
  return res.status;
}

describe('Flux events → GitLab, and the timeout', { skip }, () => {
  let w: World;
  before(async () => {
    // on a worker thread, as the CLI's serve runs its jobs (reports and timers cross to it)
    w = await world(policy('{ flux: flux-system/helloworld }', '3s'), 1, false, true);
  });
  after(() => closeWorld(w));

  test('Flux healthy (generic-hmac signature): success', async () => {
    const { revision, iid, mergedAt } = await promoteAndMerge(w, 'ci-34');
    const at = new Date(Date.parse(mergedAt) + 2_000).toISOString();
    assert.equal(
      await postSigned(
        w.urls[0],
        fluxEvent(revision, {
          severity: 'info',
          reason: 'ReconciliationSucceeded',
          message: 'Reconciliation finished in 1.2s, next run in 10m0s',
          at,
        }),
      ),
      202,
    );
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['success']);
    assert.match(await section(w, iid), /✅ Synced and Healthy in production at .* \(2 s after merge\)/);
    // the 3 s timeout passes: a success stays a success
    await new Promise((r) => setTimeout(r, 4_500));
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['success']);
  });

  test('Flux degraded (health check failed): failed with its message, an alert', async () => {
    const { revision, iid, mergedAt } = await promoteAndMerge(w, 'ci-36');
    const at = new Date(Date.parse(mergedAt) + 1_000).toISOString();
    const message =
      "health check failed after 30s: timeout waiting for: [Deployment/helloworld/helloworld status: 'InProgress']";
    assert.equal(
      await postSigned(
        w.urls[0],
        fluxEvent(revision, { severity: 'error', reason: 'HealthCheckFailed', message, at }),
      ),
      202,
    );
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['failed']);
    assert.ok((await section(w, iid)).includes(`❌ Degraded: ${message}`));
    const alerts = await deployAlerts(w, iid);
    assert.equal(alerts.length, 1);
  });

  test('timeout: no word from the agent within deploy_timeout → failed, ⌛, an alert', async () => {
    const { revision, iid } = await promoteAndMerge(w, 'ci-38');
    await untilDeployment(w, revision, 'failed', 'the timeout', 100);
    // the Deployment turns failed before the same job posts the alert: let serve finish it
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['failed']);
    assert.ok((await section(w, iid)).includes('⌛ not live after 3 s'));
    assert.equal((await deployStatus(w, revision))?.description, `${ENV}: not live after 3 s`);
    const alerts = await deployAlerts(w, iid);
    assert.equal(alerts.length, 1);
    assert.equal(await failures(w.replicas[0], 'timeout'), 1);
  });

  test('timeout across a restart: the new process reads the running Deployment and times it out', async () => {
    const { revision, mergedAt } = await promoteAndMerge(w, 'ci-40');
    const at = new Date(Date.parse(mergedAt) + 500).toISOString();
    await postSigned(
      w.urls[0],
      fluxEvent(revision, {
        severity: 'info',
        reason: 'Progressing',
        message: 'Deployment/helloworld/helloworld configured',
        at,
      }),
    );
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['running']);
    await removeReplica(w, 0); // its timer goes with it
    await addReplica(w);
    await untilDeployment(w, revision, 'failed', 'the timeout after the restart', 100);
    assert.deepEqual(await statusesOf(w, revision), ['failed']);
  });

  test('timeout across a restart with no word from the agent at all: the new process finds the head undeployed', async () => {
    const { revision, mergedAt } = await promoteAndMerge(w, 'ci-42');
    await removeReplica(w, 0); // its landing timer goes with it
    assert.ok(Date.now() - Date.parse(mergedAt) < 3_000, 'restarted before the timeout');
    await addReplica(w);
    await untilDeployment(w, revision, 'failed', 'the timeout', 100);
    assert.deepEqual(await statusesOf(w, revision), ['failed']);
  });

  test('refused: a wrong signature', async () => {
    const body = fluxEvent('a'.repeat(40), {
      severity: 'info',
      reason: 'Progressing',
      message: '',
      at: new Date().toISOString(),
    });
    assert.equal(await postSigned(w.urls[0], body, 'wrong-key'), 401);
  });
});

describe("the sandbox's Argo CD notifies serve: what it really synced, back in GitLab", { skip }, () => {
  let w: World;
  before(async () => {
    w = await world(policy('{ argocd: helloworld }', '10m'), 1, 'notify');
  });
  after(() => closeWorld(w));

  const settled = async (revision: string, status: string) => {
    await untilDeployment(w, revision, status, `a ${status} deployment of ${revision.slice(0, 8)}`, 300);
    await w.sb.settle(...w.replicas);
  };

  test('healthy: Argo CD syncs deploy/prod; running, then success, the section and the app MR note', async () => {
    const { revision, iid } = await promoteAndMerge(w, 'ci-34');
    await settled(revision, 'success');
    assert.deepEqual(await statusesOf(w, revision), ['success']);
    assert.match(
      await section(w, iid),
      /✅ Synced and Healthy in production at \d\d:\d\d \(\d+ s after merge\)/,
    );
    assert.equal((await deployStatus(w, revision))?.status, 'success');
    const appNotes = await deployedNotes(w);
    assert.equal(appNotes.length, 1);
    // what ran before (deploy/prod as the operator made it) deploys no bot change: no deployment of it
    const all = await deployments(w);
    assert.deepEqual([...new Set(all.map((d) => d.sha))], [revision]);
  });

  test('degraded: an image never pushed is ImagePullBackOff in Argo CD, failed in GitLab, with an alert', async () => {
    const { revision, iid } = await promoteAndMerge(w, 'ci-37', false);
    await settled(revision, 'failed');
    assert.deepEqual(await statusesOf(w, revision), ['failed']);
    const text = await section(w, iid);
    assert.match(text, /❌ Degraded: .*ci-37/);
    const alerts = await deployAlerts(w, iid);
    assert.equal(alerts.length, 1);
  });
});

describe('serve --argocd-url: the polling fallback reads the same facts', { skip }, () => {
  let w: World;
  before(async () => {
    w = await world(policy('{ argocd: helloworld }', '10m'), 1, 'poll');
  });
  after(() => closeWorld(w));

  test('no notifications configured: the poller finds the sync and its health, GitLab gets success', async () => {
    const { revision, iid } = await promoteAndMerge(w, 'ci-34');
    await untilDeployment(w, revision, 'success', 'a success deployment from polling', 300);
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['success']);
    assert.match(await section(w, iid), /✅ Synced and Healthy in production/);
  });
});

describe("the sandbox's Argo CD never gets to it: the timeout", { skip }, () => {
  let w: World;
  before(async () => {
    // Argo CD reconciles every 10 minutes and has no GitLab webhook: a merge is not synced in time
    w = await world(policy('{ argocd: helloworld }', '2s'), 1, 'notify', false, 600_000);
  });
  after(() => closeWorld(w));

  test('not live after deploy_timeout: failed, ⌛ in the section and the status, one alert, counted', async () => {
    const { revision, iid } = await promoteAndMerge(w, 'ci-34');
    await untilDeployment(w, revision, 'failed', 'the timeout', 100);
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['failed']);
    assert.ok((await section(w, iid)).includes('⌛ not live after 2 s'));
    assert.equal((await deployStatus(w, revision))?.description, `${ENV}: not live after 2 s`);
    const alerts = await deployAlerts(w, iid);
    assert.equal(alerts.length, 1);
    assert.equal(await failures(w.replicas[0], 'timeout'), 1);
    // Argo CD gets there late after all (a manual refresh): Healthy, newer, turns it into success
    await w.sb.argocd!.refresh('helloworld');
    await untilDeployment(w, revision, 'success', 'the late sync', 100);
    await w.sb.settle(...w.replicas);
    assert.deepEqual(await statusesOf(w, revision), ['success']);
  });
});
