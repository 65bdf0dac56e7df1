// Issue 18, `on_degraded: rollback` end to end: the sandbox, its Argo CD pulling from
// Debian's docker-registry and notifying serve. ci-34 runs healthy; ci-35 (never pushed:
// "Back-off pulling image") degrades production, and the bot itself opens "Roll back
// helloworld to ci-34 in production" and merges it by the rollback rules (no approval);
// Argo CD is healthy at ci-34 again, and ci-35 is rejected there. A repeated Degraded report
// never opens a second MR, also before the rollback's revision has reported Healthy.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { notificationBody } from '../../src/sandbox/argocd/notify.js';
import { strictPolicy } from '../../src/sandbox/index.js';
import {
  type AgentWorld,
  agentWorld,
  approveAndMerge,
  argoAt,
  deploymentsIn,
  promoteAs,
  SECRET,
  settle,
} from '../agent-world.js';
import { OPS, until } from '../helpers.js';
import { skipUnless } from '../tools.js';

const skip = skipUnless('docker-registry');
const ENV = 'production/helloworld';
const TITLE = 'Roll back helloworld to ci-34 in production';
let w: AgentWorld;
const at: Record<string, string> = {};

before(async () => {
  if (skip) return;
  w = await agentWorld({
    policy: strictPolicy({
      agent: '{ argocd: helloworld }',
      on_degraded: 'rollback',
      rollback: '{ approvals: { required: 0 }, merge: bot }',
    }),
    tags: ['ci-34'],
  });
  const r = await promoteAs(w, { tag: 'ci-34', env: 'production', files: ['deployment.yml'] });
  at['ci-34'] = await approveAndMerge(w, r.mr!.iid);
  assert.equal(await argoAt(w, 'helloworld', at['ci-34']), 'Healthy');
});
after(() => w?.close());

type Mr = {
  iid: number;
  title: string;
  state: string;
  labels: string[];
  description: string;
  merge_commit_sha?: string;
};
async function rollbackMrs(): Promise<Mr[]> {
  const all = (await w.op.MergeRequests.all({ projectId: OPS })) as unknown as Mr[];
  return all.filter((m) => m.labels.includes('rollback')).sort((a, b) => a.iid - b.iid);
}
const deployProd = async () => String((await w.op.Branches.show(OPS, 'deploy/prod')).commit.id);
/** serve's /argocd, given `body` (what Argo CD's gitops-bot template sends); then quiet. */
async function post(body: string): Promise<void> {
  const res = await fetch(`${w.serveUrl}/argocd`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Gitops-Bot-Token': SECRET },
    body,
  });
  assert.ok(res.ok, `serve answered ${res.status}`);
  await res.arrayBuffer();
  await settle(w);
}
const cannotRollBack = async (iid: number) =>
  (await w.op.MergeRequestNotes.all(OPS, iid)).filter((n) => String(n.body).includes('could not roll back'));

test('ci-35 degrades production: the bot opens the rollback MR and merges it by the rollback rules; Argo CD is healthy at ci-34', {
  skip,
}, async () => {
  const r = await promoteAs(w, { tag: 'ci-35', env: 'production', files: ['deployment.yml'] });
  at['ci-35'] = await approveAndMerge(w, r.mr!.iid);
  await until(
    async () => {
      await settle(w);
      return (await rollbackMrs()).some((m) => m.state === 'merged');
    },
    'the rollback MR merged',
    50,
    400,
  );
  const [mr] = await rollbackMrs();
  assert.equal(mr.title, TITLE);
  assert.match(mr.description, /Degraded: Back-off pulling image/);
  assert.match(mr.description, /"by":"on_degraded"/);
  const approvals = await w.op.MergeRequestApprovals.showConfiguration(OPS, { mergerequestIId: mr.iid });
  assert.deepEqual((approvals as { approved_by: unknown[] }).approved_by, [], 'nobody approved it');
  const notes = await w.op.MergeRequestNotes.all(OPS, mr.iid);
  assert.ok(
    notes.some((n) => /Rollback rules of production applied/.test(String(n.body))),
    'the verdict says the rollback rules applied',
  );
  const head = await deployProd();
  assert.equal(head, mr.merge_commit_sha, 'deploy/prod moved to the rollback');
  assert.equal(await argoAt(w, 'helloworld', head), 'Healthy');
  assert.match(String(await w.op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'deploy/prod')), /:ci-34\n/);
  const deps = await deploymentsIn(w, ENV);
  assert.equal(deps.find((d) => d.sha === at['ci-35'])?.status, 'failed');
  assert.equal(deps.find((d) => d.sha === head)?.status, 'success');
});

test('ci-35 is then rejected in production: promote refuses it, naming the rollback', { skip }, async () => {
  const r = await promoteAs(w, { tag: 'ci-35', env: 'production', files: ['deployment.yml'] });
  assert.equal(r.action, 'refused');
  assert.match(r.reason, /ci-35 was rolled back from production .*Degraded: Back-off pulling image/);
});

test('a duplicate Degraded report opens no second MR: before the rollback’s revision reported Healthy, and after', {
  skip,
}, async () => {
  // Argo CD's notifications stop reaching serve: the test posts what Argo CD sends, when it wants
  w.sb.argocd!.setNotify(null);
  const r = await promoteAs(w, { tag: 'ci-37', env: 'production', files: ['deployment.yml'] });
  const failedMr = r.mr!.iid;
  at['ci-37'] = await approveAndMerge(w, failedMr);
  assert.equal(await argoAt(w, 'helloworld', at['ci-37']), 'Degraded');
  const degraded = notificationBody(w.sb.argocd!.get('helloworld')!);
  const before = await rollbackMrs();
  await post(degraded); // the rollback opens and merges
  const once = await rollbackMrs();
  assert.equal(once.length, before.length + 1, 'one rollback MR more');
  assert.deepEqual([once.at(-1)!.title, once.at(-1)!.state], [TITLE, 'merged']);
  const ids = once.map((m) => m.iid);
  // deploy/prod is at the rollback, which Argo CD syncs; serve has not heard of it yet
  await post(degraded);
  assert.deepEqual(
    (await rollbackMrs()).map((m) => m.iid),
    ids,
    'no second rollback MR while the rollback is not Healthy yet',
  );
  assert.deepEqual(await cannotRollBack(failedMr), [], 'no "could not roll back" alert either');
  // Argo CD's Healthy at the rollback, then the Degraded report about ci-37 once more
  const head = await deployProd();
  assert.equal(await argoAt(w, 'helloworld', head), 'Healthy');
  await post(notificationBody(w.sb.argocd!.get('helloworld')!));
  assert.equal((await deploymentsIn(w, ENV)).find((d) => d.sha === head)?.status, 'success');
  await post(degraded);
  assert.deepEqual(
    (await rollbackMrs()).map((m) => m.iid),
    ids,
    'no second rollback MR after it either',
  );
  assert.deepEqual(await cannotRollBack(failedMr), []);
});

test('nothing healthy to go back to: an alert on the failed MR instead, and the feedback run goes on', {
  skip,
}, async () => {
  const v = await agentWorld({
    policy: strictPolicy({
      agent: '{ argocd: helloworld }',
      on_degraded: 'rollback',
      rollback: '{ approvals: { required: 0 }, merge: bot }',
    }),
    tags: [],
  });
  try {
    const r = await promoteAs(v, { tag: 'ci-35', env: 'production', files: ['deployment.yml'] });
    const revision = await approveAndMerge(v, r.mr!.iid);
    assert.equal(await argoAt(v, 'helloworld', revision), 'Degraded');
    const alerts = async () =>
      (await v.op.MergeRequestNotes.all(OPS, r.mr!.iid)).filter((n) =>
        String(n.body).includes('could not roll back'),
      );
    await until(async () => (await alerts()).length > 0, 'the alert', 50, 200);
    const [alert] = await alerts();
    assert.match(String(alert.body), /no earlier healthy deployment of helloworld in production/);
    assert.match(String(alert.body), /The failure: Degraded: Back-off pulling image/);
    const all = (await v.op.MergeRequests.all({ projectId: OPS })) as unknown as Mr[];
    assert.deepEqual(
      all.filter((m) => m.labels.includes('rollback')),
      [],
      'no rollback MR',
    );
    // the failure itself was written as usual
    assert.equal((await deploymentsIn(v, ENV)).find((d) => d.sha === revision)?.status, 'failed');
    // a repeated report: still one alert
    await fetch(`${v.serveUrl}/argocd`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Gitops-Bot-Token': SECRET },
      body: notificationBody(v.sb.argocd!.get('helloworld')!),
    }).then((x) => x.arrayBuffer());
    await settle(v);
    assert.equal((await alerts()).length, 1);
  } finally {
    await v.close();
  }
});
