// Issue 18, the rollback rules of the gate, against the sandbox: production needs the
// operator's approval, but a rollback to a tag GitLab's Deployments show healthy there merges
// by its own rules (no approval). What a Developer can write (the MR description, commits on
// the bot's branch, a deployment of their own) never makes an MR a rollback.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gate } from '../../src/gate/gate.js';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { readRecordTrailer, recordComment, recordTrailer } from '../../src/model/record.js';
import { promote } from '../../src/promote/promote.js';
import type { PromoteRequest } from '../../src/promote/types.js';
import { rollback } from '../../src/rollback/rollback.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS } from '../helpers.js';
import { gateContext, gateSandbox } from './helpers.js';

const IMAGE = 'registry.example.com/root/helloworld';
const ENV = 'production/helloworld';
const BRANCH = 'gitops-bot/production/helloworld';
const POLICY = `version: 1
environments:
  - name: production
    match: { target_branches: [main] }
    approvals: { required: 1, users: [operator] }
    merge: bot
    rollback: { approvals: { required: 0 }, merge: bot }
`;

let sb: Sandbox;
let botId: number;
let ctx: ReturnType<typeof gateContext>;
/** the merge commit of ci-34's promotion, and the bot's successful deployment of it */
let ci34: { sha: string; deployment: number };

function propose(tag: string, over: Partial<PromoteRequest> = {}) {
  return promote(
    { project: OPS, files: ['deployment.yml'], image: IMAGE, tag, env: 'production', ...over },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
}

/** promote `tag`, the operator approves, the gate merges; the merge commit. */
async function promoteApproved(tag: string): Promise<string> {
  const r = await propose(tag);
  assert.ok(r.mr, `promote ${tag}: ${r.action} (${r.reason})`);
  const op = client(sb, 'operator');
  await op.MergeRequestApprovals.approve(OPS, r.mr.iid, {
    sha: String((await op.MergeRequests.show(OPS, r.mr.iid)).sha),
  });
  const g = await gate(ctx, OPS, r.mr.iid, { merge: true });
  assert.ok(g.merged, `${tag} merged: ${g.verdict.summary}`);
  return String((await op.MergeRequests.show(OPS, r.mr.iid)).merge_commit_sha);
}

const ROLLBACK = {
  fromTag: 'ci-35',
  reason: 'Degraded: Back-off pulling image',
  waived: 'downgrade',
  by: 'command',
} as const;

before(async () => {
  ({ sb, botId } = await gateSandbox());
  ctx = gateContext(sb, botId);
  await client(sb, 'operator').Commits.create(OPS, 'main', 'Policy with rollback rules', [
    { action: 'create', filePath: '.gitops-bot.yml', content: POLICY },
  ]);
  // ci-34 lands and runs healthy: the Deployment gitops-bot writes from the agent's report
  // (feedback/apply.ts), created with the bot's token at the merge commit
  const sha = await promoteApproved('ci-34');
  const bot = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  const d = await bot.createDeployment(OPS, { environment: ENV, sha, ref: 'main', status: 'success' });
  ci34 = { sha, deployment: d.id };
  // then ci-35 lands (and is what a rollback goes back from)
  await promoteApproved('ci-35');
});
after(() => sb?.close());

test('a Developer adds a rollback record to the description of a normal promotion: the normal rules (the operator) apply', async () => {
  const r = await propose('ci-34', { allowDowngrade: true });
  assert.ok(r.mr, `${r.action}: ${r.reason}`);
  const dev = client(sb, 'reviewer');
  const mr = await dev.MergeRequests.show(OPS, r.mr.iid);
  const head = await dev.Commits.show(OPS, String(mr.sha));
  const record = readRecordTrailer(String(head.message));
  assert.ok(record && !record.rollback);
  await dev.MergeRequests.edit(OPS, r.mr.iid, {
    description: `${mr.description}\n${recordComment({ ...record, rollback: ROLLBACK })}`,
  });
  const g = await gate(ctx, OPS, r.mr.iid, { merge: true });
  assert.equal(g.merged, false);
  assert.equal(g.verdict.rules, 'environment');
  assert.match(g.verdict.summary, /^0\/1 approvals from operator$/);
});

test('a Developer pushes a commit with a rollback record to the bot branch: the MR is foreign, never merged', async () => {
  const dev = client(sb, 'reviewer');
  const [open] = await dev.MergeRequests.all({ projectId: OPS, sourceBranch: BRANCH, state: 'opened' });
  const head = await dev.Commits.show(OPS, String(open.sha));
  const record = readRecordTrailer(String(head.message));
  assert.ok(record);
  const content = String(await dev.RepositoryFiles.showRaw(OPS, 'deployment.yml', BRANCH));
  await dev.Commits.create(OPS, BRANCH, `Roll back\n\n${recordTrailer({ ...record, rollback: ROLLBACK })}`, [
    { action: 'update', filePath: 'deployment.yml', content: `${content}# rollback\n` },
  ]);
  const g = await gate(ctx, OPS, open.iid, { merge: true });
  assert.equal(g.merged, false);
  assert.equal(g.verdict.pass, false);
  assert.match(g.verdict.summary, /@reviewer pushed/);
});

test('a rollback to a tag that never ran healthy there (only a Developer’s deployment says so): the normal rules, with the reason', async () => {
  // the reviewer records a successful deployment of main's first commit (ci-33) themselves
  const dev = client(sb, 'reviewer');
  const commits = await dev.Commits.all(OPS, { refName: 'main' });
  const first = commits.at(-1)!;
  await new GitLab({ url: sb.url, token: 'reviewer-token' }).createDeployment(OPS, {
    environment: ENV,
    sha: String(first.id),
    ref: 'main',
    status: 'success',
  });
  const r = await rollback(
    {
      project: OPS,
      env: 'production',
      app: 'helloworld',
      to: 'ci-33',
      reason: 'back to ci-33',
      files: ['deployment.yml'],
    },
    { gitlab: ctx.gitlab },
  );
  assert.ok(r.mr, `${r.action}: ${r.reason}`);
  const g = await gate(ctx, OPS, r.mr.iid, { merge: true });
  assert.equal(g.merged, false);
  assert.equal(g.verdict.rules, 'environment');
  assert.match(g.verdict.summary, /^0\/1 approvals from operator$/);
  assert.match(
    g.verdict.notes.join('\n'),
    /Not judged as a rollback: GitLab's Deployments do not show ci-33 healthy in production\/helloworld/,
  );
  const note = (await client(sb, 'operator').MergeRequestNotes.all(OPS, r.mr.iid)).find((n) =>
    String(n.body).includes('Not judged as a rollback'),
  );
  assert.ok(note, 'the reason is in the verdict comment');
});

test('a rollback to ci-34, which ran healthy in production: merged by the rollback rules without approval', async () => {
  const r = await rollback(
    {
      project: OPS,
      env: 'production',
      app: 'helloworld',
      toPrevious: true,
      reason: 'HW-035',
      files: ['deployment.yml'],
    },
    { gitlab: ctx.gitlab },
  );
  assert.deepEqual([r.tag, r.fromTag], ['ci-34', 'ci-35']);
  assert.ok(r.mr, `${r.action}: ${r.reason}`);
  const op = client(sb, 'operator');
  const mr = await op.MergeRequests.show(OPS, r.mr.iid);
  assert.match(String(mr.title), /^Roll back helloworld to ci-34 in production/);
  const g = await gate(ctx, OPS, r.mr.iid, { merge: true });
  assert.equal(g.verdict.rules, 'rollback');
  assert.match(g.verdict.summary, /^0\/0 approvals from Maintainers \(rollback rules\)$/);
  assert.match(
    g.verdict.notes.join('\n'),
    new RegExp(
      `Rollback rules of production applied: a rollback from ci-35 to ci-34 ran healthy in production/helloworld \\(deployment #${ci34.deployment}\\)`,
    ),
  );
  assert.ok(g.merged, g.verdict.summary);
  assert.equal((await op.MergeRequests.show(OPS, r.mr.iid)).state, 'merged');
  assert.match(String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main')), /helloworld:ci-34/);
});
