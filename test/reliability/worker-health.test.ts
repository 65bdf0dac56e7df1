// Finding 6: work that hangs or kills the worker thread is noticed. A job stuck past
// --job-timeout (here: git's push protocol hanging, behind a proxy) is counted, alerted and
// makes /healthz 503; at twice the timeout the worker is restarted. A worker that dies (out
// of memory on an MR's dense YAML) is restarted, its jobs count as failed, /healthz is 503
// while it is down; later deliveries are handled.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GitLab } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { gitProxy } from '../gitlab/git-proxy.js';
import { addHook, client, OPS, protectDeployRef, sandboxFixture, strictOps, until } from '../helpers.js';
import { deliver, type ServeProcess, startServe } from '../server/serve-process.js';

const IMAGE = 'registry.example.com/root/helloworld';
let sb: Sandbox;
const op = () => client(sb, 'operator');
const serves: ServeProcess[] = [];

async function newMr(tag: string, app?: string) {
  const r = await promote(
    {
      project: OPS,
      files: [app ? `apps/${app}.yml` : 'deployment.yml'],
      image: IMAGE,
      tag,
      ...(app ? { app } : {}),
    },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  return op().MergeRequests.show(OPS, r.mr!.iid);
}
const verdicts = async (s: ServeProcess) =>
  (
    await Promise.all(
      ['pending', 'failed', 'success'].map((state) =>
        s.metric('gitops_bot_gate_verdicts_total', `{state="${state}"}`),
      ),
    )
  ).reduce((a, b) => a + b, 0);
const gated = async (sha: string) =>
  (await op().Commits.allStatuses(OPS, sha)).some((s) => s.name === 'gitops-bot/approval');

/** Polls /healthz until `want` holds; returns the answer and when it came. */
async function healthUntil(
  s: ServeProcess,
  want: (h: { status: number; body: Record<string, any> }) => boolean,
  what: string,
) {
  let seen: { status: number; body: Record<string, any> } | undefined;
  await until(
    async () => {
      seen = await s.health();
      return want(seen);
    },
    what,
    20,
    1000,
  );
  return { ...seen!, at: Date.now() };
}

before(async () => {
  sb = await sandboxFixture();
  await strictOps(sb);
  const bot = (await op().Users.all({ username: 'gitops-bot' }))[0];
  await protectDeployRef(sb, bot.id);
});
after(async () => {
  for (const s of serves) await s.kill();
  await sb?.close();
});

test('a job stuck past --job-timeout: counted, alerted, /healthz 503; the worker is restarted at twice it', async (t) => {
  // git's requests never get an answer (a network that hangs); the API's pass
  const proxy = await gitProxy(sb.url);
  proxy.intercept = (r) => (/\.git\//.test(r.path) ? new Promise(() => {}) : undefined);
  t.after(() => proxy.close());
  const s = await startServe(sb, ['--project', OPS, '--job-timeout', '2'], { GITLAB_URL: proxy.url });
  serves.push(s);
  const hook = await addHook(sb, `${s.url}/webhook`, 's');
  // removed even when an assertion fails, so the next test's deliveries reach only its serve
  t.after(() => op().ProjectHooks.remove(OPS, hook.id));
  const mr = await newMr('ci-34');
  await until(() => gated(mr.sha), 'the first verdict');
  assert.equal((await s.health()).status, 200);
  // approved: the bot merges, then moves deploy_ref with a push, which hangs
  await op().MergeRequestApprovals.approve(OPS, mr.iid, { sha: mr.sha });
  await until(async () => (await op().MergeRequests.show(OPS, mr.iid)).state === 'merged', 'the merge');
  const merged = Date.now();
  const stuck = await healthUntil(s, (h) => h.status === 503 && h.body.status === 'stuck', '/healthz stuck');
  assert.match(
    stuck.body.reason,
    /root\/helloworld-ops.* has been running for \d+\.\d s \(job timeout 2 s\)/,
  );
  assert.equal(await s.metric('gitops_bot_job_failures_total', '{reason="timeout"}'), 1);
  const alert = s.logs().find((l) => l.level === 50 && /^job failed \(timeout\)/.test(l.msg));
  assert.ok(alert, s.stderr());
  assert.equal(alert.project, OPS);
  assert.match(alert.msg, /root\/helloworld-ops(!\d+| )/);

  // at twice the timeout the worker is replaced; /healthz says so, then is well again
  const down = await healthUntil(
    s,
    (h) => h.status === 503 && h.body.status === 'worker down',
    'the stuck worker to be restarted',
  );
  assert.match(down.body.reason, /still running at twice the 2 s job timeout/);
  const well = await healthUntil(s, (h) => h.status === 200, '/healthz well again');
  assert.equal(await s.metric('gitops_bot_worker_restarts_total'), 1);
  console.log(
    `stuck job: /healthz 503 ${((stuck.at - merged) / 1000).toFixed(1)} s after the merge, worker restarted at ${((down.at - merged) / 1000).toFixed(1)} s, healthy at ${((well.at - merged) / 1000).toFixed(1)} s`,
  );

  // the next delivery is handled by the new worker
  const next = await newMr('ci-35');
  await until(() => gated(next.sha), 'the next MR to be gated by the new worker');
});

test('the worker dies (out of memory): restarted, its jobs counted, /healthz 503 while it is down', async (t) => {
  const s = await startServe(sb, ['--project', OPS, '--worker-heap', '32']);
  serves.push(s);
  // A dense manifest (every line an image reference) under the 16 MiB limit: parsing it
  // before and after needs far more than a 32 MB heap.
  const line = (tag: string) => `  - name: c\n    image: ${IMAGE}:${tag}\n`;
  const dense = (tag: string) => `spec:\n  containers:\n${line(tag).repeat(30_000)}`;
  await op().Commits.create(OPS, 'main', 'Dense', [
    { action: 'create', filePath: 'dense.yml', content: dense('ci-1') },
  ]);
  await client(sb, 'reviewer').Commits.create(
    OPS,
    'dense-change',
    'Bump all',
    [{ action: 'update', filePath: 'dense.yml', content: dense('ci-2') }],
    { startBranch: 'main' },
  );
  const hook = await op().ProjectHooks.add(OPS, `${s.url}/webhook`, {
    token: 's',
    mergeRequestsEvents: true,
    noteEvents: true,
  });
  t.after(() => op().ProjectHooks.remove(OPS, hook.id));
  const started = Date.now();
  await client(sb, 'reviewer').MergeRequests.create(OPS, 'dense-change', 'main', 'Dense bump');
  const down = await healthUntil(
    s,
    (h) => h.status === 503 && h.body.status === 'worker down',
    'the worker to die',
  );
  assert.match(down.body.reason, /out of memory \(heap limit 32 MB\); restarting/);
  assert.ok((await s.metric('gitops_bot_job_failures_total', '{reason="worker"}')) >= 1);
  assert.ok((await s.metric('gitops_bot_worker_restarts_total')) >= 1);
  const alert = s.logs().find((l) => l.level === 50 && /^job failed \(worker\)/.test(l.msg));
  assert.ok(alert, s.stderr());
  assert.match(alert.msg, /root\/helloworld-ops!\d+: the worker thread out of memory/);
  const well = await healthUntil(s, (h) => h.status === 200, '/healthz well again');
  console.log(
    `worker death: /healthz 503 ${((down.at - started) / 1000).toFixed(1)} s after the MR opened, healthy again at ${((well.at - started) / 1000).toFixed(1)} s`,
  );

  // serve is up, and the restarted worker handles the next delivery
  assert.equal(s.child.exitCode, null);
  const open = await op().MergeRequests.all({ projectId: OPS, state: 'opened' });
  const other = open.find((m) => m.source_branch !== 'dense-change')!;
  const res = await deliver(s, 'Note Hook', {
    object_kind: 'note',
    project: { id: 2, path_with_namespace: OPS },
    object_attributes: { note: '/gitops-bot recheck', noteable_type: 'MergeRequest' },
    merge_request: { iid: other.iid },
  });
  assert.equal(res.status, 202);
  await until(async () => (await verdicts(s)) > 0, 'a verdict from the new worker');
});
