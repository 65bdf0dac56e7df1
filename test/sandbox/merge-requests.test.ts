import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { api, type Client, client, failure, type hookReceiver, OPS, sandboxWithHooks } from '../helpers.js';

let sb: Sandbox;
let hooks: Awaited<ReturnType<typeof hookReceiver>>;
let close: () => Promise<void>;

before(async () => {
  ({ sb, hooks, close } = await sandboxWithHooks({
    token: 'hook-secret',
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
  }));
});
after(() => close());

/** A branch with one changed file, as the bot makes it. */
async function branchWithChange(c: Client, branch: string, tag: string): Promise<string> {
  const f = await c.RepositoryFiles.show(OPS, 'deployment.yml', 'main');
  const content = Buffer.from(f.content, 'base64')
    .toString()
    .replace(/ci-\d+/, tag);
  const commit = await c.Commits.create(
    OPS,
    branch,
    `Deploy ${tag}`,
    [{ action: 'update', filePath: 'deployment.yml', content, lastCommitId: f.last_commit_id }],
    { startBranch: 'main', force: true },
  );
  return commit.id;
}

describe('merge requests', () => {
  test('create, list with filters, show, the 409 for a second open MR', async () => {
    const bot = client(sb, 'gitops-bot');
    await branchWithChange(bot, 'gitops-bot/main/helloworld', 'ci-34');
    const operator = (await bot.Users.all({ username: 'operator' }))[0];
    const mr = await bot.MergeRequests.create(
      OPS,
      'gitops-bot/main/helloworld',
      'main',
      'Deploy helloworld ci-34 to main',
      {
        description: 'bump',
        assigneeIds: [operator.id],
        labels: 'gitops-bot,env::main',
        removeSourceBranch: true,
      },
    );
    assert.equal(mr.iid, 1);
    assert.equal(mr.state, 'opened');
    assert.deepEqual(mr.labels, ['gitops-bot', 'env::main']);
    assert.equal((mr.assignees as Array<{ username: string }>)[0].username, 'operator');
    assert.equal(mr.detailed_merge_status, 'mergeable');
    assert.equal(mr.force_remove_source_branch, true);
    const dup = await failure(bot.MergeRequests.create(OPS, 'gitops-bot/main/helloworld', 'main', 'again'));
    assert.equal(dup.status, 409);
    assert.equal(dup.message, '["Another open merge request already exists for this source branch: !1"]');
    const bySource = await bot.MergeRequests.all({
      projectId: OPS,
      sourceBranch: 'gitops-bot/main/helloworld',
      state: 'opened',
    });
    assert.deepEqual(
      bySource.map((m) => m.iid),
      [1],
    );
    assert.equal((await bot.MergeRequests.all({ projectId: OPS, labels: 'gitops-bot' })).length, 1);
    assert.equal((await bot.MergeRequests.all({ projectId: OPS, labels: 'nope' })).length, 0);
    assert.equal((await bot.MergeRequests.all({ projectId: OPS, targetBranch: 'other' })).length, 0);
    assert.equal((await bot.MergeRequests.all({ projectId: OPS, state: 'merged' })).length, 0);
    const shown = await bot.MergeRequests.show(OPS, 1);
    assert.equal(shown.sha, bySource[0].sha);
    assert.deepEqual(await failure(bot.MergeRequests.show(OPS, 999)), {
      status: 404,
      message: '404 Not found',
    });
  });

  test('create errors: missing params, missing branch, Reporter', async () => {
    const bot = client(sb, 'gitops-bot');
    const r = await api(sb, `/projects/${encodeURIComponent(OPS)}/merge_requests`, {
      method: 'POST',
      token: 'gitops-bot-token',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    assert.deepEqual(
      [r.status, r.body],
      [400, { error: 'source_branch is missing, target_branch is missing, title is missing' }],
    );
    assert.equal((await failure(bot.MergeRequests.create(OPS, 'no-such', 'main', 't'))).status, 400);
    assert.equal(
      (await failure(client(sb, 'argocd').MergeRequests.create(OPS, 'main', 'x', 't'))).status,
      403,
    );
  });

  test('update: title, description, labels, assignees, reviewers, close and reopen', async () => {
    const bot = client(sb, 'gitops-bot');
    const reviewer = (await bot.Users.all({ username: 'reviewer' }))[0];
    let mr = await bot.MergeRequests.edit(OPS, 1, {
      title: 'Deploy helloworld ci-35 to main',
      description: 'new',
      addLabels: 'extra',
      reviewerIds: [reviewer.id],
    });
    assert.equal(mr.title, 'Deploy helloworld ci-35 to main');
    assert.deepEqual(mr.labels, ['gitops-bot', 'env::main', 'extra']);
    assert.equal((mr.reviewers as Array<{ username: string }>)[0].username, 'reviewer');
    mr = await bot.MergeRequests.edit(OPS, 1, { removeLabels: 'extra', assigneeIds: [] });
    assert.deepEqual(mr.labels, ['gitops-bot', 'env::main']);
    assert.deepEqual(mr.assignees, []);
    mr = await bot.MergeRequests.edit(OPS, 1, { stateEvent: 'close' });
    assert.equal(mr.state, 'closed');
    assert.equal(mr.detailed_merge_status, 'not_open');
    mr = await bot.MergeRequests.edit(OPS, 1, { stateEvent: 'reopen' });
    assert.equal(mr.state, 'opened');
    const none = await api(sb, `/projects/${encodeURIComponent(OPS)}/merge_requests/1`, {
      method: 'PUT',
      token: 'gitops-bot-token',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    assert.equal(none.status, 400);
    assert.match(none.body.error, /at least one parameter must be provided/);
  });

  test('changes, diffs, commits and versions follow pushes', async () => {
    const bot = client(sb, 'gitops-bot');
    const changes = await bot.MergeRequests.showChanges(OPS, 1);
    assert.equal(changes.changes!.length, 1);
    assert.match(
      changes.changes![0].diff,
      /-\s+image: registry.example.com\/root\/helloworld:ci-33\n\+\s+image: registry.example.com\/root\/helloworld:ci-34/,
    );
    const diffs = await bot.MergeRequests.allDiffs(OPS, 1);
    assert.equal(diffs[0].new_path, 'deployment.yml');
    const before = await bot.MergeRequests.allDiffVersions(OPS, 1);
    const sha = await branchWithChange(bot, 'gitops-bot/main/helloworld', 'ci-35');
    const versions = await bot.MergeRequests.allDiffVersions(OPS, 1);
    assert.equal(versions.length, before.length + 1);
    assert.equal(versions[0].head_commit_sha, sha);
    assert.equal((await bot.MergeRequests.show(OPS, 1)).sha, sha);
    const commits = await bot.MergeRequests.allCommits(OPS, 1);
    assert.deepEqual(
      commits.map((c) => c.id),
      [sha],
    );
  });

  test('approvals: approve with sha, author refused, 409 on a stale sha, unapprove', async () => {
    const operator = client(sb, 'operator');
    const mr = await operator.MergeRequests.show(OPS, 1);
    assert.deepEqual(await failure(client(sb, 'gitops-bot').MergeRequestApprovals.approve(OPS, 1)), {
      status: 401,
      message: '401 Unauthorized',
    });
    assert.equal(
      (await failure(operator.MergeRequestApprovals.approve(OPS, 1, { sha: 'a'.repeat(40) }))).status,
      409,
    );
    assert.equal((await failure(client(sb, 'argocd').MergeRequestApprovals.approve(OPS, 1))).status, 401);
    await operator.MergeRequestApprovals.approve(OPS, 1, { sha: mr.sha });
    assert.equal((await failure(operator.MergeRequestApprovals.approve(OPS, 1))).status, 401, 'twice');
    const state = await operator.MergeRequestApprovals.showConfiguration(OPS, { mergerequestIId: 1 });
    const approvedBy = state.approved_by as unknown as Array<{
      user: { username: string };
      approved_at: string;
    }>;
    assert.deepEqual(
      approvedBy.map((a) => a.user.username),
      ['operator'],
    );
    assert.ok(approvedBy[0].approved_at);
    await client(sb, 'reviewer').MergeRequestApprovals.approve(OPS, 1);
    await client(sb, 'reviewer').MergeRequestApprovals.unapprove(OPS, 1);
    assert.equal((await failure(client(sb, 'reviewer').MergeRequestApprovals.unapprove(OPS, 1))).status, 404);
  });

  test('notes: create, list, update, delete; over-long bodies refused', async () => {
    const bot = client(sb, 'gitops-bot');
    const note = await bot.MergeRequestNotes.create(OPS, 1, '<!-- gitops-bot:diff -->\nhello');
    assert.equal(note.body, '<!-- gitops-bot:diff -->\nhello');
    await bot.MergeRequestNotes.create(OPS, 1, 'second');
    // (the push system notes of the earlier tests are there too)
    const list = (await bot.MergeRequestNotes.all(OPS, 1, { sort: 'asc' })).filter((n) => !n.system);
    assert.deepEqual(
      list.map((n) => n.body),
      ['<!-- gitops-bot:diff -->\nhello', 'second'],
    );
    const edited = await bot.MergeRequestNotes.edit(OPS, 1, note.id, { body: 'edited' });
    assert.equal(edited.body, 'edited');
    assert.equal(
      (await failure(client(sb, 'reviewer').MergeRequestNotes.edit(OPS, 1, note.id, { body: 'x' }))).status,
      403,
    );
    await bot.MergeRequestNotes.remove(OPS, 1, note.id);
    assert.equal((await bot.MergeRequestNotes.all(OPS, 1)).filter((n) => !n.system).length, 1);
    const long = await failure(bot.MergeRequestNotes.create(OPS, 1, 'x'.repeat(1_000_001)));
    assert.equal(long.status, 400);
    assert.match(long.message, /too long/);
    assert.ok(await bot.MergeRequestNotes.create(OPS, 1, 'x'.repeat(1_000_000)));
  });

  test('merge: Developer refused, sha mismatch 409, pipeline must succeed, then merged', async () => {
    const bot = client(sb, 'gitops-bot');
    const operator = client(sb, 'operator');
    const mr = await operator.MergeRequests.show(OPS, 1);
    assert.equal((await failure(bot.MergeRequests.merge(OPS, 1, { sha: mr.sha }))).status, 401);
    const stale = await failure(operator.MergeRequests.merge(OPS, 1, { sha: 'b'.repeat(40) }));
    assert.equal(stale.status, 409);
    assert.match(stale.message, /^SHA does not match HEAD of source branch/);
    await client(sb, 'root').Projects.edit(OPS, { onlyAllowMergeIfPipelineSucceeds: true });
    assert.equal((await operator.MergeRequests.show(OPS, 1)).detailed_merge_status, 'ci_must_pass');
    assert.equal((await failure(operator.MergeRequests.merge(OPS, 1, { sha: mr.sha }))).status, 405);
    await bot.Commits.editStatus(OPS, mr.sha, 'success', { name: 'gitops-bot/approval' });
    const merged = await operator.MergeRequests.merge(OPS, 1, { sha: mr.sha });
    assert.equal(merged.state, 'merged');
    assert.match(merged.merge_commit_sha!, /^[0-9a-f]{40}$/);
    assert.equal((merged.merged_by as { username: string }).username, 'operator');
    const main = await operator.Branches.show(OPS, 'main');
    assert.equal(main.commit.id, merged.merge_commit_sha);
    assert.deepEqual(main.commit.parent_ids?.[1], mr.sha);
    assert.equal(
      (await failure(operator.Branches.show(OPS, 'gitops-bot/main/helloworld'))).status,
      404,
      'source removed',
    );
    assert.equal((await failure(operator.MergeRequests.merge(OPS, 1))).status, 405, 'already merged');
    const f = await operator.RepositoryFiles.show(OPS, 'deployment.yml', 'main');
    assert.match(Buffer.from(f.content, 'base64').toString(), /helloworld:ci-35/);
    await client(sb, 'root').Projects.edit(OPS, { onlyAllowMergeIfPipelineSucceeds: false });
  });

  test('conflicting MRs report conflict and cannot be merged', async () => {
    const bot = client(sb, 'gitops-bot');
    await branchWithChange(bot, 'conflict-a', 'ci-40');
    await bot.MergeRequests.create(OPS, 'conflict-a', 'main', 'a');
    // main moves on under the branch, touching the same line.
    await branchWithChange(client(sb, 'operator'), 'main', 'ci-41');
    const list = await bot.MergeRequests.all({ projectId: OPS, sourceBranch: 'conflict-a' });
    assert.equal(list[0].detailed_merge_status, 'conflict');
    assert.equal(list[0].has_conflicts, true);
    assert.equal((await failure(client(sb, 'operator').MergeRequests.merge(OPS, list[0].iid))).status, 405);
  });

  test('hooks: delivered with GitLab headers and payload keys', async () => {
    await sb.idle();
    const events = hooks.received.map((r) => r.headers['x-gitlab-event']);
    assert.ok(events.includes('Push Hook'));
    assert.ok(events.includes('Merge Request Hook'));
    assert.ok(events.includes('Note Hook'));
    for (const r of hooks.received) {
      assert.equal(r.headers['x-gitlab-token'], 'hook-secret');
      assert.match(String(r.headers['x-gitlab-event-uuid']), /^[0-9a-f-]{36}$/);
      assert.match(String(r.headers['idempotency-key']), /^[0-9a-f-]{36}$/);
      assert.ok(r.headers['x-gitlab-webhook-uuid']);
      assert.match(String(r.headers['user-agent']), /^GitLab\//);
    }
    const mrEvents = hooks.received.filter((r) => r.body.object_kind === 'merge_request').map((r) => r.body);
    const actions = mrEvents.map((b) => b.object_attributes.action);
    for (const a of ['open', 'update', 'close', 'reopen', 'approved', 'merge'])
      assert.ok(actions.includes(a), a);
    const push = mrEvents.find((b) => b.object_attributes.action === 'update' && b.object_attributes.oldrev);
    assert.ok(push, 'a push to the source branch carries oldrev');
    const open = mrEvents.find((b) => b.object_attributes.action === 'open');
    assert.equal(open.project.path_with_namespace, OPS);
    assert.equal(open.object_attributes.iid, 1);
    assert.ok(open.object_attributes.last_commit.id);
    assert.ok(open.user.username);
    const note = hooks.received.find((r) => r.body.object_kind === 'note')!.body;
    assert.equal(note.object_attributes.noteable_type, 'MergeRequest');
    assert.equal(note.merge_request.iid, 1);
    const pushEvent = hooks.received.find((r) => r.body.object_kind === 'push')!.body;
    assert.match(pushEvent.ref, /^refs\/heads\//);
    assert.ok(pushEvent.commits.length >= 1);
    // Resending keeps the Idempotency-Key, as GitLab's "Resend request" does.
    const list = (await (await fetch(`${sb.url}/-/sandbox/hooks/deliveries`)).json()) as {
      deliveries: Array<{ id: number; idempotencyKey: string }>;
    };
    const first = list.deliveries[0];
    const count = hooks.received.length;
    await fetch(`${sb.url}/-/sandbox/hooks/deliveries/${first.id}/resend`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': 'root-token' },
    });
    await sb.idle();
    assert.equal(hooks.received.length, count + 1);
    assert.equal(hooks.received.at(-1)!.headers['idempotency-key'], first.idempotencyKey);
  });

  test('hooks: Maintainer only; list and delete', async () => {
    assert.equal((await failure(client(sb, 'reviewer').ProjectHooks.all(OPS))).status, 403);
    const op = client(sb, 'operator');
    const hooks = await op.ProjectHooks.all(OPS);
    assert.equal(hooks.length, 1);
    assert.equal((hooks[0] as Record<string, unknown>).token, undefined, 'the secret is never returned');
    const extra = await op.ProjectHooks.add(OPS, 'http://127.0.0.1:9/x');
    await op.ProjectHooks.remove(OPS, extra.id);
    assert.equal((await op.ProjectHooks.all(OPS)).length, 1);
  });
});
