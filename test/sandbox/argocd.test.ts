// The sandbox's Argo CD over HTTP, with real git behind it and a real registry: sessions,
// Argo CD's JSON field names, a merge that moves deploy/prod reaching it through GitLab's
// Push Hook, Running → Succeeded + Healthy with history, a missing image → Degraded with the
// kubelet's message, and the README's notifications (header, body, once per revision).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startArgocd } from '../../src/sandbox/argocd/index.js';
import { decideNotifications, triggerHolds } from '../../src/sandbox/argocd/notify.js';
import { splitImage } from '../../src/sandbox/argocd/registry.js';
import { parseManifests, RenderError } from '../../src/sandbox/argocd/render.js';
import type { Application } from '../../src/sandbox/argocd/types.js';
import { pushImage } from '../../src/sandbox/images.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, hookReceiver, OPS, sandboxFixture, until } from '../helpers.js';
import { type Registry, startRegistry } from '../registry/docker-registry.js';

const TOKEN = 'argocd-notify-secret';
let sb: Sandbox;
let registry: Registry;
let receiver: Awaited<ReturnType<typeof hookReceiver>>;
let image: string;
let argoToken: string;
let bumps = 0;

async function argo(path: string, init: RequestInit & { token?: string | null } = {}) {
  const headers = new Headers(init.headers);
  const token = init.token === undefined ? argoToken : init.token;
  if (token) headers.set('Authorization', `Bearer ${token}`);
  if (init.body) headers.set('Content-Type', 'application/json');
  const res = await fetch(`${sb.argocdUrl}${path}`, { ...init, headers });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body };
}

const app = async (refresh?: string): Promise<Application> =>
  (await argo(`/api/v1/applications/helloworld${refresh ? `?refresh=${refresh}` : ''}`)).body;

/** Opens and merges an MR into deploy/prod that runs `tag`; returns the merge commit. */
async function mergeTag(tag: string): Promise<string> {
  const op = client(sb, 'operator');
  const branch = `bump-${tag}-${++bumps}`;
  const current = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'deploy/prod'));
  await op.Commits.create(
    OPS,
    branch,
    `helloworld: ${tag}`,
    [
      {
        action: 'update',
        filePath: 'deployment.yml',
        content: current.replace(/helloworld:ci-\d+/, `helloworld:${tag}`),
      },
    ],
    { startBranch: 'deploy/prod' },
  );
  const mr = await op.MergeRequests.create(OPS, branch, 'deploy/prod', `helloworld ${tag}`);
  const merged = await op.MergeRequests.merge(OPS, mr.iid, { sha: mr.sha });
  return merged.merge_commit_sha!;
}

/** Synced and Healthy at `revision`: the sync finished and the rollout settled. */
async function deployed(revision: string): Promise<Application> {
  let a = await app();
  await until(
    async () => {
      a = await app();
      const op = a.status.operationState;
      return (
        op?.syncResult?.revision === revision &&
        op.phase === 'Succeeded' &&
        a.status.health.status === 'Healthy'
      );
    },
    `${revision.slice(0, 8)} Healthy`,
    25,
    800,
  );
  return a;
}

const notificationsFor = (revision: string) =>
  receiver.received.filter(
    (r) => r.body.application.status.operationState?.syncResult?.revision === revision,
  );

before(async () => {
  registry = await startRegistry();
  receiver = await hookReceiver();
  sb = await sandboxFixture({
    argocd: {
      // Long poll: the test proves the Push Hook path; refresh=... proves the rest.
      pollMs: 600_000,
      syncMs: 80,
      progressingMs: 250,
      notifyUrl: receiver.url,
      notifyToken: TOKEN,
      notifyRetryWaitMs: 20,
      registries: [registry.url],
    },
  });
  image = `${registry.host}/root/helloworld`;
  await pushImage(registry.url, 'root/helloworld', 'ci-33');
  await pushImage(registry.url, 'root/helloworld', 'ci-34');
  const login = await argo('/api/v1/session', {
    method: 'POST',
    token: null,
    body: JSON.stringify({ username: 'admin', password: 'argocd-admin' }),
  });
  argoToken = login.body.token;
});
after(async () => {
  await sb.close();
  receiver.close();
  await registry.close();
});

describe('sessions', () => {
  test('login gives a JWT-shaped token; userinfo names admin', async () => {
    assert.equal(argoToken.split('.').length, 3);
    const claims = JSON.parse(Buffer.from(argoToken.split('.')[1], 'base64url').toString());
    assert.equal(claims.sub, 'admin');
    assert.equal(claims.iss, 'argocd');
    assert.deepEqual((await argo('/api/v1/session/userinfo')).body, {
      loggedIn: true,
      username: 'admin',
      iss: 'argocd',
    });
    assert.deepEqual((await argo('/api/v1/session/userinfo', { token: null })).body, { loggedIn: false });
  });

  test('a wrong password, no token or a forged token: 401 with Argo CD error JSON', async () => {
    const bad = await argo('/api/v1/session', {
      method: 'POST',
      token: null,
      body: JSON.stringify({ username: 'admin', password: 'nope' }),
    });
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.body, {
      error: 'Invalid username or password',
      code: 16,
      message: 'Invalid username or password',
    });
    const none = await argo('/api/v1/applications', { token: null });
    assert.equal(none.status, 401);
    assert.deepEqual(none.body, {
      error: 'no session information',
      code: 16,
      message: 'no session information',
    });
    const [h, p] = argoToken.split('.');
    const forged = await argo('/api/v1/applications', { token: `${h}.${p}.AAAA` });
    assert.equal(forged.status, 401);
    assert.equal(forged.body.code, 16);
  });

  test('an application that does not exist is 403 permission denied (names cannot be probed)', async () => {
    const r = await argo('/api/v1/applications/nope');
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, { error: 'permission denied', code: 7, message: 'permission denied' });
  });
});

describe('the story application', () => {
  test('before deploy/prod exists: sync Unknown with a ComparisonError, health Missing', async () => {
    const a = await app('normal');
    assert.equal(a.metadata.name, 'helloworld');
    assert.equal(a.metadata.namespace, 'argocd');
    assert.equal(a.spec.project, 'default');
    assert.deepEqual(a.spec.source, {
      repoURL: `${sb.url}/root/helloworld-ops.git`,
      path: '.',
      targetRevision: 'deploy/prod',
      directory: { exclude: '.gitops-bot.yml' },
    });
    assert.equal(a.status.sync.status, 'Unknown');
    assert.equal(a.status.health.status, 'Missing');
    assert.equal(a.status.conditions?.[0].type, 'ComparisonError');
    assert.match(a.status.conditions![0].message, /Unable to resolve 'deploy\/prod' to a commit SHA/);
    assert.equal(a.status.operationState, undefined);
  });

  test('deploy/prod created, then a merge into it: Push Hook → Running → Succeeded + Healthy, history', async () => {
    const op = client(sb, 'operator');
    await op.ProjectHooks.add(OPS, `${sb.argocdUrl}/api/webhook`, { pushEvents: true });
    const main = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
    await op.Commits.create(OPS, 'main', 'Images come from the local registry', [
      {
        action: 'update',
        filePath: 'deployment.yml',
        content: main.replace('registry.example.com/root/helloworld', image),
      },
    ]);
    const created = (await op.Branches.create(OPS, 'deploy/prod', 'main')).commit.id;
    await deployed(created);

    const merged = await mergeTag('ci-34');
    const a = await deployed(merged);
    assert.equal(a.status.sync.status, 'Synced');
    assert.equal(a.status.sync.revision, merged);
    assert.equal(a.status.operationState?.phase, 'Succeeded');
    assert.equal(a.status.operationState?.message, 'successfully synced (all tasks run)');
    assert.deepEqual(a.status.operationState?.operation.initiatedBy, { automated: true });
    assert.ok(
      Date.parse(a.status.operationState!.finishedAt!) >= Date.parse(a.status.operationState!.startedAt),
    );
    assert.deepEqual(a.status.summary.images, [`${image}:ci-34`]);
    assert.deepEqual(
      a.status.history?.map((h) => h.revision),
      [created, merged],
    );
    const last = a.status.history!.at(-1)!;
    assert.deepEqual(Object.keys(last).sort(), [
      'deployStartedAt',
      'deployedAt',
      'id',
      'initiatedBy',
      'revision',
      'source',
    ]);
    assert.ok(Date.parse(a.status.health.lastTransitionTime!) >= Date.parse(last.deployedAt));
    // The single-app GET fills resource health from the tree; the list does not.
    const deployment = a.status.resources?.find((r) => r.kind === 'Deployment');
    assert.deepEqual(deployment, {
      group: 'apps',
      version: 'v1',
      kind: 'Deployment',
      namespace: 'helloworld',
      name: 'helloworld',
      status: 'Synced',
      health: { status: 'Healthy' },
    });
    const list = (await argo('/api/v1/applications')).body;
    assert.match(list.metadata.resourceVersion, /^\d+$/);
    assert.deepEqual(
      list.items.map((i: Application) => i.metadata.name),
      ['helloworld'],
    );
    assert.equal(list.items[0].status.resources.find((r: any) => r.kind === 'Deployment').health, undefined);

    // The notifications for that revision: on-sync-running, then on-deployed, each once.
    await sb.argocd!.idle();
    const sent = notificationsFor(merged);
    assert.deepEqual(
      sent.map((s) => [
        s.body.application.status.operationState.phase,
        s.body.application.status.health.status,
      ]),
      [
        ['Running', 'Healthy'],
        ['Succeeded', 'Healthy'],
      ],
    );
    for (const s of sent) {
      assert.equal(s.headers['x-gitops-bot-token'], TOKEN);
      assert.equal(s.headers['content-type'], 'application/json');
      assert.deepEqual(Object.keys(s.body), ['application']);
      assert.deepEqual(Object.keys(s.body.application), ['metadata', 'spec', 'status']);
      assert.deepEqual(s.body.application.metadata, { name: 'helloworld', namespace: 'argocd' });
      assert.deepEqual(Object.keys(s.body.application.status), [
        'sync',
        'health',
        'operationState',
        'summary',
      ]);
    }
    assert.deepEqual(sent[1].body.application.status.summary, { images: [`${image}:ci-34`] });
  });

  test('a refresh of an unchanged app sends nothing more (once per revision per trigger)', async () => {
    const before = receiver.received.length;
    await app('normal');
    await app('hard');
    await sb.argocd!.refresh('helloworld');
    await sb.argocd!.idle();
    assert.equal(receiver.received.length, before);
  });

  test('an image the registry lacks: Degraded with the kubelet message, on-health-degraded once', async () => {
    const merged = await mergeTag('ci-35');
    await until(async () => (await app()).status.health.status === 'Degraded', 'degraded', 25, 800);
    const a = await app();
    assert.equal(a.status.operationState?.phase, 'Succeeded');
    assert.equal(a.status.operationState?.syncResult?.revision, merged);
    assert.equal(a.status.health.message, `Back-off pulling image "${image}:ci-35"`);
    assert.deepEqual(a.status.resources?.find((r) => r.kind === 'Deployment')?.health, {
      status: 'Degraded',
      message: `Back-off pulling image "${image}:ci-35"`,
    });
    assert.deepEqual(a.status.summary.images, [`${image}:ci-35`]);
    await app('normal');
    await sb.argocd!.idle();
    const sent = notificationsFor(merged).map((s) => s.body.application.status.health.status);
    // on-sync-running (while the old revision was still Healthy), then on-health-degraded;
    // no on-deployed.
    assert.deepEqual(sent, ['Healthy', 'Degraded']);
  });

  test('GET without refresh is the stored app; refresh=hard reconciles at once', async () => {
    const op = client(sb, 'operator');
    const hooks = await op.ProjectHooks.all(OPS);
    for (const h of hooks) await op.ProjectHooks.remove(OPS, h.id);
    const stored = await app();
    const merged = await mergeTag('ci-33');
    const still = await app();
    assert.equal(
      still.status.sync.revision,
      stored.status.sync.revision,
      'no webhook, long poll: not seen yet',
    );
    const hard = await app('hard');
    assert.equal(hard.status.sync.revision, merged);
    assert.equal(hard.status.operationState?.syncResult?.revision, merged, 'auto-sync started');
    assert.ok(Number(hard.metadata.resourceVersion) > Number(stored.metadata.resourceVersion));
    await deployed(merged);
  });

  test('POST sync: a manual sync by admin; a second one while running is refused', async () => {
    const r = await argo('/api/v1/applications/helloworld/sync', { method: 'POST', body: '{}' });
    assert.equal(r.status, 200);
    assert.equal(r.body.status.operationState.phase, 'Running');
    assert.deepEqual(r.body.status.operationState.operation.initiatedBy, { username: 'admin' });
    const again = await argo('/api/v1/applications/helloworld/sync', { method: 'POST', body: '{}' });
    assert.equal(again.status, 400);
    assert.deepEqual(again.body, {
      error: 'another operation is already in progress',
      code: 9,
      message: 'another operation is already in progress',
    });
    await until(async () => (await app()).status.operationState?.phase === 'Succeeded', 'manual sync done');
    assert.deepEqual((await app()).status.history?.at(-1)?.initiatedBy, { username: 'admin' });
  });

  test('/api/webhook: 400 for a request without a GitLab event, 405 for GET', async () => {
    const none = await fetch(`${sb.argocdUrl}/api/webhook`, { method: 'POST', body: '{}' });
    assert.equal(none.status, 400);
    assert.equal((await none.text()).trim(), 'Unknown webhook event');
    const note = await fetch(`${sb.argocdUrl}/api/webhook`, {
      method: 'POST',
      headers: { 'X-Gitlab-Event': 'Note Hook' },
      body: '{}',
    });
    assert.equal(note.status, 400);
    assert.equal((await fetch(`${sb.argocdUrl}/api/webhook`)).status, 405);
  });
});

describe('more sources', () => {
  const appNamed = async (name: string, refresh = 'normal'): Promise<Application> =>
    (await argo(`/api/v1/applications/${name}?refresh=${refresh}`)).body;

  test('a kustomization goes through kubectl kustomize: sourceType Kustomize, its images', async () => {
    const op = client(sb, 'operator');
    const deployment = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
    await op.Commits.create(OPS, 'main', 'kustomize layout', [
      { action: 'create', filePath: 'k/base/deployment.yml', content: deployment },
      {
        action: 'create',
        filePath: 'k/base/kustomization.yaml',
        content: 'resources:\n  - deployment.yml\n',
      },
      {
        action: 'create',
        filePath: 'k/prod/kustomization.yaml',
        content: `resources:\n  - ../base\nnamePrefix: prod-\nimages:\n  - name: ${image}\n    newTag: ci-34\n`,
      },
    ]);
    sb.argocd!.addApp({ name: 'kustomized', repo: OPS, path: 'k/prod', targetRevision: 'main' });
    const a = await appNamed('kustomized');
    assert.equal(a.status.sourceType, 'Kustomize');
    assert.equal(a.status.sync.status, 'OutOfSync');
    await until(
      async () => (await appNamed('kustomized', '')).status.health.status === 'Healthy',
      'kustomized healthy',
    );
    const done = await appNamed('kustomized', '');
    assert.deepEqual(done.status.summary.images, [`${image}:ci-34`]);
    assert.deepEqual(
      done.status.resources?.map((r) => r.name),
      ['prod-helloworld'],
    );
  });

  test('an object the API server would refuse: the sync Fails and on-sync-failed is sent once', async () => {
    const op = client(sb, 'operator');
    await op.Commits.create(OPS, 'main', 'a broken manifest', [
      {
        action: 'create',
        filePath: 'broken/cm.yml',
        content: 'apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n',
      },
    ]);
    sb.argocd!.addApp({ name: 'broken', repo: OPS, path: 'broken', targetRevision: 'main' });
    await appNamed('broken');
    await until(
      async () => (await appNamed('broken', '')).status.operationState?.phase === 'Failed',
      'failed',
    );
    const a = await appNamed('broken');
    assert.equal(
      a.status.operationState?.message,
      'one or more objects failed to apply, reason: resource name may not be empty',
    );
    assert.equal(a.status.operationState?.syncResult?.resources?.[0].status, 'SyncFailed');
    assert.equal(a.status.sync.status, 'OutOfSync');
    assert.equal(a.status.history, undefined, 'a failed sync is no deployment');
    await appNamed('broken', 'hard');
    await sb.argocd!.idle();
    const failed = receiver.received.filter(
      (r) =>
        r.body.application.metadata.name === 'broken' &&
        r.body.application.status.operationState.phase === 'Failed',
    );
    assert.equal(failed.length, 1, 'auto-sync does not retry the failed revision; the trigger fires once');
  });

  test('a document that is no Kubernetes object: sync Unknown, ComparisonError naming the file', async () => {
    const op = client(sb, 'operator');
    await op.Commits.create(OPS, 'main', 'not a manifest', [
      { action: 'create', filePath: 'odd/values.yml', content: 'replicas: 2\n' },
    ]);
    sb.argocd!.addApp({ name: 'odd', repo: OPS, path: 'odd', targetRevision: 'main' });
    const a = await appNamed('odd');
    assert.equal(a.status.sync.status, 'Unknown');
    assert.match(a.status.conditions![0].message, /values\.yml.*Object 'Kind' is missing/);
    assert.equal(a.status.operationState, undefined);
  });
});

describe('a second Argo CD on the same GitLab: polling and the webhook secret', () => {
  test('it polls: a merge reaches it without webhook or refresh', async () => {
    const other = await startArgocd(sb.core, '127.0.0.1', { pollMs: 100, syncMs: 10, progressingMs: 10 });
    try {
      const head = async () => (await client(sb, 'operator').Branches.show(OPS, 'deploy/prod')).commit.id;
      const at = async (sha: string) =>
        until(
          async () => other.controller.get('helloworld')?.status.sync.revision === sha,
          `poll sees ${sha}`,
        );
      await at(await head());
      const merged = await mergeTag('ci-34');
      await at(merged);
    } finally {
      await other.close();
    }
  });

  test('close() in the middle of a sync returns (the cleared timers do not keep it waiting)', async () => {
    const other = await startArgocd(sb.core, '127.0.0.1', { pollMs: 600_000, syncMs: 60_000 });
    await other.controller.refresh('helloworld');
    assert.equal(other.controller.get('helloworld')?.status.operationState?.phase, 'Running');
    const closed = await Promise.race([
      other.close().then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('hung'), 5000)),
    ]);
    assert.equal(closed, 'closed');
  });

  test('with webhook.gitlab.secret set, a wrong X-Gitlab-Token is 400; the right one 200', async () => {
    const other = await startArgocd(sb.core, '127.0.0.1', {
      pollMs: 600_000,
      gitlabWebhookSecret: 'hook-secret',
    });
    try {
      const post = (token: string) =>
        fetch(`${other.url}/api/webhook`, {
          method: 'POST',
          headers: { 'X-Gitlab-Event': 'Push Hook', 'X-Gitlab-Token': token },
          body: JSON.stringify({ ref: 'refs/heads/deploy/prod', project: { web_url: `${sb.url}/${OPS}` } }),
        });
      const wrong = await post('nope');
      assert.equal(wrong.status, 400);
      assert.equal((await wrong.text()).trim(), 'Webhook processing failed');
      assert.equal((await post('hook-secret')).status, 200);
    } finally {
      await other.close();
    }
  });
});

describe('notification delivery', () => {
  test('a receiver answering 503 twice gets the notification on the third attempt', async () => {
    let calls = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        calls++;
        res.statusCode = calls <= 2 ? 503 : 200;
        res.end();
      });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/argocd`;
    const controller = sb.argocd!;
    const saved = controller.notifyTarget;
    controller.notifyTarget = { url, token: TOKEN, retryWaitMs: 10 };
    try {
      const merged = await mergeTag('ci-34');
      await app('normal');
      await deployed(merged);
      await controller.idle();
      const mine = controller.notifications.filter((n) => n.revision === merged);
      assert.deepEqual(
        mine.map((n) => [n.trigger, n.attempts, n.status]),
        [
          ['on-sync-running', 3, 200],
          ['on-deployed', 1, 200],
        ],
      );
    } finally {
      controller.notifyTarget = saved;
      server.close();
    }
  });
});

describe('gitops-bot sandbox --argocd', () => {
  const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

  test('prints argocd ready: URL on the line after sandbox ready: URL; admin logs in there', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'sandbox', '--port', '0', '--argocd', '--argocd-notify', receiver.url, '--argocd-poll', '60000'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GITOPS_BOT_WEBHOOK_SECRET: 'cli-secret' } },
    );
    let out = '';
    const ready = new Promise<string>((ok, fail) => {
      child.stdout.on('data', (b) => {
        out += b;
        if (/\ndata: /.test(out)) ok(out);
      });
      child.on('exit', (code) => fail(new Error(`exited ${code}: ${out}`)));
    });
    try {
      await ready;
      const m =
        /^sandbox ready: (http:\/\/127\.0\.0\.1:\d+)\nargocd ready: (http:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
      assert.ok(m, out);
      assert.notEqual(m[1], m[2], 'its own port');
      assert.doesNotMatch(out, /cli-secret/, 'the secret is not printed');
      const login = await fetch(`${m[2]}/api/v1/session`, {
        method: 'POST',
        body: JSON.stringify({ username: 'admin', password: 'argocd-admin' }),
      });
      assert.equal(login.status, 200);
      const { token } = (await login.json()) as { token: string };
      const list = await fetch(`${m[2]}/api/v1/applications`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      assert.deepEqual(
        ((await list.json()) as { items: Application[] }).items.map((a) => a.spec.source.targetRevision),
        ['deploy/prod'],
      );
    } finally {
      const exited = new Promise((ok) => child.on('exit', ok));
      child.kill('SIGTERM');
      await exited;
    }
  });

  test('--argocd-notify without --argocd is a usage error', async () => {
    const child = spawn(process.execPath, [CLI, 'sandbox', '--port', '0', '--argocd-notify', 'http://x'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (b) => {
      err += b;
    });
    const code = await new Promise((ok) => child.on('exit', ok));
    assert.equal(code, 2);
    assert.match(err, /need --argocd/);
  });
});

describe('decisions (pure)', () => {
  const base = (over: Partial<Application['status']>): Application =>
    ({
      metadata: { name: 'a', namespace: 'argocd' },
      spec: { source: { repoURL: 'x' }, destination: {}, project: 'default' },
      status: { sync: { status: 'Synced' }, health: { status: 'Healthy' }, summary: {}, ...over },
    }) as Application;
  const op = (
    phase: string,
    revision = 'r1',
    startedAt = '2026-01-01T10:00:00Z',
    finishedAt = '2026-01-01T10:00:10Z',
  ) =>
    ({
      operation: { initiatedBy: {}, retry: {} },
      phase,
      startedAt,
      finishedAt,
      syncResult: { revision },
    }) as any;

  test('the catalog conditions', () => {
    const cases: Array<[string, Application, Record<string, boolean>]> = [
      [
        'healthy after a succeeded sync',
        base({
          operationState: op('Succeeded'),
          health: { status: 'Healthy', lastTransitionTime: '2026-01-01T10:00:20Z' },
        }),
        {
          'on-deployed': true,
          'on-health-degraded': false,
          'on-sync-failed': false,
          'on-sync-running': false,
        },
      ],
      [
        'healthy since long before the sync started (nothing changed): still deployed',
        base({
          operationState: op('Succeeded'),
          health: { status: 'Healthy', lastTransitionTime: '2026-01-01T09:00:00Z' },
        }),
        { 'on-deployed': true },
      ],
      [
        'healthy more than a minute before finishedAt but after startedAt: not deployed',
        base({
          operationState: op('Succeeded', 'r1', '2026-01-01T10:00:00Z', '2026-01-01T10:05:00Z'),
          health: { status: 'Healthy', lastTransitionTime: '2026-01-01T10:01:00Z' },
        }),
        { 'on-deployed': false },
      ],
      ['running', base({ operationState: op('Running') }), { 'on-sync-running': true, 'on-deployed': false }],
      ['failed', base({ operationState: op('Failed') }), { 'on-sync-failed': true }],
      ['error', base({ operationState: op('Error') }), { 'on-sync-failed': true }],
      [
        'degraded without operation',
        base({ health: { status: 'Degraded' } }),
        { 'on-health-degraded': true, 'on-deployed': false },
      ],
    ];
    for (const [name, a, want] of cases) {
      for (const [trigger, value] of Object.entries(want)) {
        assert.equal(triggerHolds(trigger as any, a), value, `${name}: ${trigger}`);
      }
    }
  });

  test('oncePer: once per revision; without a revision a false condition re-arms the trigger', () => {
    const degraded = base({ operationState: op('Succeeded', 'r1'), health: { status: 'Degraded' } });
    const first = decideNotifications(degraded, new Set());
    assert.deepEqual(
      first.send.map((s) => s.key),
      ['r1:on-health-degraded:gitops-bot'],
    );
    assert.deepEqual(decideNotifications(degraded, new Set(first.send.map((s) => s.key))).send, []);
    const next = base({ operationState: op('Succeeded', 'r2'), health: { status: 'Degraded' } });
    assert.deepEqual(decideNotifications(next, new Set(['r1:on-health-degraded:gitops-bot'])).send.length, 1);
    const bare = base({ health: { status: 'Degraded' } });
    const key = decideNotifications(bare, new Set()).send[0].key;
    assert.equal(key, 'on-health-degraded:gitops-bot');
    assert.deepEqual(decideNotifications(base({}), new Set([key])).forget, [key]);
  });

  test('image references as container runtimes split them', () => {
    assert.deepEqual(splitImage('127.0.0.1:5000/root/helloworld:ci-34'), {
      host: '127.0.0.1:5000',
      repository: 'root/helloworld',
      reference: 'ci-34',
    });
    assert.deepEqual(splitImage('nginx'), {
      host: 'docker.io',
      repository: 'library/nginx',
      reference: 'latest',
    });
    assert.deepEqual(splitImage('localhost/a/b@sha256:abc'), {
      host: 'localhost',
      repository: 'a/b',
      reference: 'sha256:abc',
    });
  });

  test('manifests: multi-document YAML, Lists unrolled, a document without kind refused', () => {
    const objs = parseManifests(
      'a.yml',
      'apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n---\napiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n',
    );
    assert.deepEqual(
      objs.map((o) => o.kind),
      ['Service', 'ConfigMap'],
    );
    assert.throws(() => parseManifests('p.yml', 'version: 1\n'), RenderError);
  });
});
