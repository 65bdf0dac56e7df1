// Finding 7: `serve` logs by default (info, JSON on stderr), its worker thread at the same
// level, alerts at error; GITOPS_BOT_LOG_LEVEL overrides; other commands stay quiet. And the
// worker thread honours what the in-process runner does (ctx callbacks, the GitLab client's
// retry policy and onRetry) or refuses it loudly.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { createWebhookServer } from '../../src/server/webhook.js';
import { addHook, client, OPS, PROMOTE_STORY, sandboxFixture, strictOps, until } from '../helpers.js';
import { CLI, deliver, type ServeProcess, startServe } from './serve-process.js';

let sb: Sandbox;
let bypassed: number;
const serves: ServeProcess[] = [];
const op = () => client(sb, 'operator');

before(async () => {
  sb = await sandboxFixture();
  await strictOps(sb);
});
after(async () => {
  for (const s of serves) await s.stop();
  await sb?.close();
});

const start = async (env: Record<string, string> = {}) => {
  const s = await startServe(sb, ['--project', OPS], env);
  serves.push(s);
  return s;
};

test('serve logs at info by default, its worker too; a bypassing merge is an error line', async () => {
  const s = await start();
  const listening = s.logs().find((l) => l.msg === 'serve listening');
  assert.equal(listening?.level, 30);
  const ready = s.logs().find((l) => l.msg === 'worker thread started');
  assert.equal(ready?.thread, 'worker', 'the worker logs at the same level');
  await addHook(sb, `${s.url}/webhook`, 's');
  // a Maintainer merges without any approval: a bypass of the rules
  const r = await promote(
    { project: OPS, files: ['deployment.yml'], image: 'registry.example.com/root/helloworld', tag: 'ci-34' },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  await sb.settle();
  bypassed = r.mr!.iid;
  await op().MergeRequests.merge(OPS, bypassed);
  await until(
    async () => s.logs().some((l) => l.level === 50 && l.thread === 'worker' && l.project === OPS),
    'the bypass to be logged at error by the worker',
  );
  await until(
    async () => (await s.metric('gitops_bot_bypass_alerts_total', '{kind="merge"}')) === 1,
    'the alert to be counted',
  );
});

test('GITOPS_BOT_LOG_LEVEL overrides, in the worker too; an unknown level is reported', async () => {
  const warn = await start({ GITOPS_BOT_LOG_LEVEL: 'warn' });
  assert.deepEqual(
    warn.logs().filter((l) => l.level < 40),
    [],
  );
  const debug = await start({ GITOPS_BOT_LOG_LEVEL: 'debug' });
  const r = await promote(
    { project: OPS, files: ['deployment.yml'], image: 'registry.example.com/root/helloworld', tag: 'ci-35' },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  await deliver(debug, 'Note Hook', {
    object_kind: 'note',
    project: { id: 2, path_with_namespace: OPS },
    object_attributes: { note: '/gitops-bot recheck' },
    merge_request: { iid: r.mr!.iid },
  });
  await until(async () => debug.logs().some((l) => l.msg === 'job done' && l.level === 20), 'a debug line');
  assert.ok(debug.logs().some((l) => l.thread === 'worker' && l.level === 30));
  const bad = await start({ GITOPS_BOT_LOG_LEVEL: 'loud' });
  assert.match(bad.stderr(), /GITOPS_BOT_LOG_LEVEL='loud' is not a level .*; using info/);
  assert.ok(bad.logs().some((l) => l.msg === 'serve listening'));
  for (const s of [warn, debug, bad]) await s.stop();
});

test('other commands keep their human output: no log lines by default', async () => {
  const out = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...PROMOTE_STORY, '--tag', 'ci-40', '--dry-run'], {
      env: {
        ...process.env,
        GITOPS_BOT_LOG_LEVEL: '',
        GITLAB_URL: sb.url,
        GITOPS_BOT_TOKEN: 'gitops-bot-token',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    for (const stream of [child.stdout, child.stderr]) stream.on('data', (b) => (text += b));
    child.on('exit', () => resolve(text));
  });
  assert.match(out, /ci-40/);
  assert.doesNotMatch(out, /"level":/);
});

/** A Merge Request Hook for project 2's MR `iid`, signed with the secret 's'. */
const postMergeRequestHook = (url: string, iid: number, action: string) =>
  fetch(`${url}/webhook`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-Gitlab-Token': 's',
      'X-Gitlab-Event': 'Merge Request Hook',
    },
    body: JSON.stringify({
      object_kind: 'merge_request',
      project: { id: 2 },
      object_attributes: { iid, action },
    }),
  });

test('on a worker thread: ctx callbacks and the retry policy are honoured, what cannot cross is refused', async () => {
  const gitlab = () => new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  assert.throws(
    () =>
      createWebhookServer({
        ctx: { gitlab: gitlab(), botUserId: 6, now: () => new Date() },
        secret: 's',
        worker: true,
      }),
    /ctx\.now is a function and cannot cross to the worker thread/,
  );
  assert.throws(
    () =>
      createWebhookServer({
        ctx: { gitlab: gitlab(), botUserId: 6 },
        secret: 's',
        worker: { url: sb.url } as never,
      }),
    /unknown worker option url/,
  );
  class Custom extends GitLabGate {}
  assert.throws(
    () =>
      createWebhookServer({
        ctx: { gitlab: new Custom({ url: sb.url, token: 'gitops-bot-token' }), botUserId: 6 },
        secret: 's',
        worker: true,
      }),
    /not a plain GitLabGate/,
  );

  // ctx.onAlert is called here for an alert raised on the worker thread
  const alerts: string[] = [];
  const strict = createWebhookServer({
    ctx: { gitlab: gitlab(), botUserId: 6, onAlert: (kind, project) => alerts.push(`${kind} ${project}`) },
    secret: 's',
    projects: [OPS],
    worker: true,
  });
  try {
    const url = await strict.listen(0, '127.0.0.1');
    const res = await postMergeRequestHook(url, bypassed, 'merge');
    assert.equal(res.status, 202);
    await strict.idle();
    assert.deepEqual(alerts, [`merge ${OPS}`]);
  } finally {
    await strict.close();
  }

  // A sandbox that answers every API call with 503: the worker's client retries under the
  // policy given (2 attempts), and each retry reaches onRetry here, on the main thread.
  const flaky = await sandboxFixture({ faults: 'rate=1,kinds=503' });
  const retries: string[] = [];
  const srv = createWebhookServer({
    ctx: {
      gitlab: new GitLabGate({
        url: flaky.url,
        token: 'gitops-bot-token',
        retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 5 },
        onRetry: (what, info) => retries.push(`${what} (retry ${info.attempt})`),
      }),
      botUserId: 6,
    },
    secret: 's',
    projects: [{ id: 2, path: OPS }],
    worker: true,
  });
  try {
    const url = await srv.listen(0, '127.0.0.1');
    const res = await postMergeRequestHook(url, 1, 'update');
    assert.equal(res.status, 202);
    await srv.idle();
    // 2 attempts: every call is retried once, never a second time (the default policy would
    // retry up to five times). Calls are not told apart by name: serve's startup schedules
    // (freeze edges, deploy timeouts) read the project as the gate does.
    assert.ok(retries.length >= 1, 'onRetry was called');
    assert.deepEqual(
      retries.filter((r) => !r.endsWith('(retry 1)')),
      [],
      retries.join(', '),
    );
    const metrics = await srv.registry.metrics();
    // the gate's job failed (and serve's startup job timing deploy timeouts, which reads
    // the same broken GitLab)
    assert.match(metrics, /gitops_bot_job_failures_total\{reason="error"\} [12]\n/);
  } finally {
    await srv.close();
    await flaky.close();
  }
});
