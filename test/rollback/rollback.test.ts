// Issue 18, rollback by command, end to end: the sandbox, its Argo CD pulling from Debian's
// docker-registry, and serve writing the agent's reports into GitLab's Deployments. ci-34
// runs healthy, ci-35 (never pushed) degrades production; `gitops-bot rollback` turns the
// open promotion of ci-36 into "Roll back helloworld to ci-34 in production"; once merged,
// ci-35 is rejected in production and newer tags are not.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { strictPolicy } from '../../src/sandbox/index.js';
import {
  type AgentWorld,
  agentWorld,
  approveAndMerge,
  argoAt,
  cli,
  deploymentsIn,
  promoteAs,
  settle,
} from '../agent-world.js';
import { OPS } from '../helpers.js';
import { skipUnless } from '../tools.js';

const skip = skipUnless('docker-registry');
const ENV = 'production/helloworld';
let w: AgentWorld;
/** deploy/prod's heads: ci-34's merge, ci-35's */
const at: Record<string, string> = {};

before(async () => {
  if (skip) return;
  w = await agentWorld({
    policy: strictPolicy({ agent: '{ argocd: helloworld }' }),
    tags: ['ci-34', 'ci-36'],
  });
  for (const tag of ['ci-34', 'ci-35']) {
    const r = await promoteAs(w, { tag, files: ['deployment.yml'], assignees: ['operator'] });
    at[tag] = await approveAndMerge(w, r.mr!.iid);
    await argoAt(w, 'helloworld', at[tag]);
  }
});
after(() => w?.close());

const rollbackArgs = (extra: string[] = []) => [
  'rollback',
  '--project',
  OPS,
  '--env',
  'production',
  '--app',
  'helloworld',
  '--file',
  'deployment.yml',
  ...extra,
];

test('the agent wrote ci-34 healthy and ci-35 failed into the Deployments the bot owns', {
  skip,
}, async () => {
  const deps = await deploymentsIn(w, ENV);
  assert.equal(deps.find((d) => d.sha === at['ci-34'])?.status, 'success');
  assert.equal(deps.find((d) => d.sha === at['ci-35'])?.status, 'failed');
  assert.equal(w.sb.argocd!.get('helloworld')!.status.health.status, 'Degraded');
});

test('rollback --dry-run says which tag and why, and writes nothing', { skip }, async () => {
  const before = await w.op.MergeRequests.all({ projectId: OPS, state: 'opened' });
  const r = await cli(w, rollbackArgs(['--dry-run', '--json']));
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.action, 'would-create');
  assert.equal(out.tag, 'ci-34');
  assert.equal(out.fromTag, 'ci-35');
  const after = await w.op.MergeRequests.all({ projectId: OPS, state: 'opened' });
  assert.equal(after.length, before.length, 'no merge request opened');
});

test('rollback replaces the open promotion of ci-36: titled, labelled, the reason, the agent, the waiver, a note', {
  skip,
}, async () => {
  const ci36 = await promoteAs(w, { tag: 'ci-36', files: ['deployment.yml'] });
  assert.equal(ci36.action, 'created');
  await settle(w);
  const r = await cli(w, rollbackArgs(['--reason', 'HW-035 breaks the login page', '--json']));
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.action, 'updated');
  assert.equal(out.mr.iid, ci36.mr!.iid, 'one MR per app and environment: the same one');
  assert.equal(out.replaced, ci36.mr!.iid);
  assert.deepEqual([out.tag, out.fromTag], ['ci-34', 'ci-35']);
  const mr = await w.op.MergeRequests.show(OPS, out.mr.iid);
  assert.equal(mr.title, 'Roll back helloworld to ci-34 in production');
  assert.ok((mr.labels as string[]).includes('rollback'), `labels: ${mr.labels}`);
  const d = String(mr.description);
  assert.match(d, /Reason: HW-035 breaks the login page/);
  assert.match(
    d,
    /The agent's last message: .*(Back-off|Degraded|pull)/i,
    'the agent last words (gitops-bot/deploy)',
  );
  assert.match(d, /downgrade guard is waived for this merge request only/);
  assert.match(
    d,
    /"rollback":\{"fromTag":"ci-35".*"waived":"downgrade","by":"command"/,
    'the record says so',
  );
  const notes = await w.op.MergeRequestNotes.all(OPS, out.mr.iid);
  const replaced = notes.filter((n) => String(n.body).includes('gitops-bot:replaced ci-36'));
  assert.equal(replaced.length, 1, 'a note says the promotion was replaced');
  assert.match(String(replaced[0].body), /proposed `ci-36`.*rollback/);
  const file = String(await w.op.RepositoryFiles.showRaw(OPS, 'deployment.yml', mr.source_branch));
  assert.match(file, /helloworld:ci-34\n/);

  // Idempotent: the same command again changes nothing and notes nothing twice.
  const again = JSON.parse(
    (await cli(w, rollbackArgs(['--reason', 'HW-035 breaks the login page', '--json']))).stdout,
  );
  assert.equal(again.action, 'noop');
  const notesAfter = await w.op.MergeRequestNotes.all(OPS, out.mr.iid);
  assert.equal(notesAfter.filter((n) => String(n.body).includes('gitops-bot:replaced')).length, 1);

  // A pipeline promoting ci-36 again does not undo the open rollback.
  const pushed = await promoteAs(w, { tag: 'ci-36', files: ['deployment.yml'] });
  assert.equal(pushed.action, 'refused');
  assert.match(pushed.reason, /rolls helloworld back to ci-34 in production/);
});

test('once merged, production runs ci-34 again and ci-35 is rejected there (exit 5), ci-36 is not', {
  skip,
}, async () => {
  const open = (await w.op.MergeRequests.all({ projectId: OPS, state: 'opened', labels: 'rollback' }))[0];
  const merge = await approveAndMerge(w, open.iid);
  assert.equal(await argoAt(w, 'helloworld', merge), 'Healthy');
  const deps = await deploymentsIn(w, ENV);
  assert.equal(deps.find((d) => d.sha === merge)?.status, 'success');

  const promoteArgs = (tag: string, extra: string[] = []) => [
    'promote',
    '--project',
    OPS,
    '--file',
    'deployment.yml',
    '--image',
    w.image,
    '--tag',
    tag,
    '--env',
    'production',
    '--no-verify-image',
    '--json',
    ...extra,
  ];
  const refused = await cli(w, promoteArgs('ci-35'));
  assert.equal(refused.code, 5, refused.stderr);
  const r = JSON.parse(refused.stdout);
  assert.equal(r.action, 'refused');
  assert.match(
    r.reason,
    new RegExp(
      `ci-35 was rolled back from production at \\d\\d:\\d\\d \\(!${open.iid}\\): HW-035 breaks the login page`,
    ),
  );
  const forced = JSON.parse((await cli(w, promoteArgs('ci-35', ['--allow-rejected', '--dry-run']))).stdout);
  assert.equal(forced.action, 'would-create', '--allow-rejected lifts it');
  const newer = JSON.parse((await cli(w, promoteArgs('ci-36', ['--dry-run']))).stdout);
  assert.equal(newer.action, 'would-create', 'newer tags are not affected');
});

test('rollback with nothing on record to go back to: exit 2 and what to pass', { skip }, async () => {
  const r = await cli(w, ['rollback', '--project', OPS, '--env', 'staging', '--app', 'helloworld', '--json']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /no promotion of helloworld to staging on record .*pass --image/);
  const withImage = await cli(w, rollbackArgs(['--to', 'ci-34']));
  assert.equal(withImage.code, 2, withImage.stderr);
  assert.match(withImage.stderr, /production already runs helloworld ci-34: nothing to roll back to/);
});
