// Branch protection as the Branches and Protected Branches APIs show it, comments on commits
// (API and Note Hook), and an MR's diff_refs as the target branch moves.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { api, branchWithMr, client, failure, type hookReceiver, OPS, sandboxWithHooks } from '../helpers.js';

let sb: Sandbox;
let hooks: Awaited<ReturnType<typeof hookReceiver>>;
let close: () => Promise<void>;

before(async () => {
  ({ sb, hooks, close } = await sandboxWithHooks({ pushEvents: false, noteEvents: true }));
});
after(() => close());

const P = encodeURIComponent(OPS);
const protect = (body: object) =>
  api(sb, `/projects/${P}/protected_branches`, {
    method: 'POST',
    token: 'operator-token',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('branches and protected branches', () => {
  test('protected: the default branch and every explicit protection', async () => {
    const op = client(sb, 'operator');
    await op.Branches.create(OPS, 'deploy/prod', 'main');
    await op.Branches.create(OPS, 'feature/open', 'main');
    const bot = await client(sb, 'gitops-bot').Users.showCurrentUser();
    assert.equal(
      (
        await protect({
          name: 'deploy/prod',
          push_access_level: 60,
          merge_access_level: 30,
          allowed_to_push: [{ user_id: bot.id }],
        })
      ).status,
      201,
    );
    const show = (name: string, token = 'reviewer-token') =>
      api(sb, `/projects/${P}/repository/branches/${encodeURIComponent(name)}`, { token });
    const main = (await show('main')).body;
    assert.equal(main.protected, true);
    assert.equal(main.default, true);
    assert.equal(main.can_push, false, 'a Developer may not push to main');
    assert.equal((await show('main', 'operator-token')).body.can_push, true);
    const prod = (await show('deploy/prod')).body;
    assert.equal(prod.protected, true);
    assert.equal(prod.developers_can_merge, true);
    assert.equal(prod.developers_can_push, false);
    assert.equal(prod.can_push, false);
    assert.equal((await show('deploy/prod', 'gitops-bot-token')).body.can_push, true, 'allowed_to_push');
    const open = (await show('feature/open')).body;
    assert.equal(open.protected, false);
    assert.equal(open.can_push, true);
    assert.equal(open.merged, true, 'nothing beyond the default branch');
    const listed = await client(sb, 'reviewer').Branches.all(OPS);
    assert.deepEqual(
      listed.filter((b) => b.protected).map((b) => b.name),
      ['deploy/prod', 'main'],
    );
  });

  test('GET protected_branches/:name: GitLab entity; 404 when not protected; Reporter or better', async () => {
    const r = await api(sb, `/projects/${P}/protected_branches/deploy%2Fprod`, { token: 'argocd-token' });
    assert.equal(r.status, 200);
    const bot = await client(sb, 'gitops-bot').Users.showCurrentUser();
    const id = r.body.id;
    assert.ok(Number.isInteger(id));
    assert.deepEqual(r.body, {
      id,
      name: 'deploy/prod',
      push_access_levels: [
        {
          id: r.body.push_access_levels[0].id,
          access_level: 60,
          access_level_description: 'Administrators',
          user_id: null,
          group_id: null,
        },
        {
          id: r.body.push_access_levels[1].id,
          access_level: 40,
          access_level_description: 'gitops-bot',
          user_id: bot.id,
          group_id: null,
        },
      ],
      merge_access_levels: [
        {
          id: r.body.merge_access_levels[0].id,
          access_level: 30,
          access_level_description: 'Developers + Maintainers',
          user_id: null,
          group_id: null,
        },
      ],
      allow_force_push: false,
      code_owner_approval_required: false,
    });
    const main = await api(sb, `/projects/${P}/protected_branches/main`, { token: 'argocd-token' });
    assert.equal(main.status, 200);
    assert.equal(main.body.name, 'main');
    assert.deepEqual(
      main.body.push_access_levels.map((a: { access_level: number }) => a.access_level),
      [40],
    );
    assert.equal(main.body.push_access_levels[0].access_level_description, 'Maintainers');
    const again = await api(sb, `/projects/${P}/protected_branches/main`, { token: 'argocd-token' });
    assert.equal(again.body.id, main.body.id, 'a stable id');
    const none = await api(sb, `/projects/${P}/protected_branches/feature%2Fopen`, { token: 'argocd-token' });
    assert.deepEqual([none.status, none.body], [404, { message: '404 Not found' }]);
    const list = await api(sb, `/projects/${P}/protected_branches`, { token: 'argocd-token' });
    assert.deepEqual(
      list.body.map((b: { id: number; name: string }) => [b.id, b.name]),
      [
        [main.body.id, 'main'],
        [id, 'deploy/prod'],
      ],
    );
    // re-protecting keeps the id (the sandbox replaces the rule, as tests use it)
    await protect({ name: 'deploy/prod', push_access_level: 40, merge_access_level: 40 });
    const replaced = await api(sb, `/projects/${P}/protected_branches/deploy%2Fprod`, {
      token: 'argocd-token',
    });
    assert.equal(replaced.body.id, id);
    assert.equal(replaced.body.push_access_levels.length, 1);
    assert.equal(
      (await api(sb, `/projects/${P}/protected_branches/main`, { token: 'developer-token' })).status,
      404,
    );
  });
});

describe('comments on commits', () => {
  test('POST and GET: author, note, created_at; a Note Hook with noteable_type Commit', async () => {
    const op = client(sb, 'operator');
    const c = await op.Commits.create(OPS, 'main', 'Commented\n\nwith a body', [
      { action: 'create', filePath: 'commented.txt', content: 'x' },
    ]);
    await sb.idle();
    const mark = hooks.received.length;
    const posted = await api(sb, `/projects/${P}/repository/commits/${c.id}/comments`, {
      method: 'POST',
      token: 'argocd-token',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ note: 'deployed to prod' }),
    });
    assert.equal(posted.status, 201);
    const argocd = await client(sb, 'argocd').Users.showCurrentUser();
    assert.deepEqual(Object.keys(posted.body), ['note', 'path', 'line', 'line_type', 'author', 'created_at']);
    assert.equal(posted.body.note, 'deployed to prod');
    assert.equal(posted.body.author.id, argocd.id);
    assert.equal(posted.body.author.username, 'argocd');
    assert.equal(posted.body.path, null);
    await op.Commits.createComment(OPS, c.id, 'second');
    const list = await api(sb, `/projects/${P}/repository/commits/${c.id}/comments`, {
      token: 'reviewer-token',
    });
    assert.equal(list.status, 200);
    assert.equal(list.headers.get('x-total'), '2');
    assert.deepEqual(
      list.body.map((n: { note: string; author: { username: string } }) => [n.note, n.author.username]),
      [
        ['deployed to prod', 'argocd'],
        ['second', 'operator'],
      ],
      'oldest first',
    );
    assert.ok(!Number.isNaN(Date.parse(list.body[0].created_at)));
    // by branch name too, as GitLab resolves :sha
    const byRef = await api(sb, `/projects/${P}/repository/commits/main/comments`, {
      token: 'reviewer-token',
    });
    assert.equal(byRef.body.length, 2);

    await sb.idle();
    const notes = hooks.received.slice(mark).filter((r) => r.event === 'Note Hook');
    assert.equal(notes.length, 2);
    const h = notes[0].body;
    assert.equal(h.object_kind, 'note');
    assert.equal(h.user.username, 'argocd');
    assert.equal(h.user.id, argocd.id);
    assert.equal(h.project_id, h.project.id);
    assert.equal(h.object_attributes.noteable_type, 'Commit');
    assert.equal(h.object_attributes.note, 'deployed to prod');
    assert.equal(h.object_attributes.commit_id, c.id);
    assert.equal(h.object_attributes.noteable_id, null);
    assert.equal(h.object_attributes.system, false);
    assert.equal(h.object_attributes.action, 'create');
    assert.equal(h.object_attributes.author_id, argocd.id);
    assert.match(h.object_attributes.url, new RegExp(`/-/commit/${c.id}#note_${h.object_attributes.id}$`));
    assert.equal(h.commit.id, c.id);
    assert.equal(h.commit.message, (await op.Commits.show(OPS, c.id)).message);
    assert.match(h.commit.message, /^Commented\n\nwith a body\n?$/);
    assert.equal(h.commit.title, 'Commented');
    assert.equal(h.commit.author.name, 'Operator');
    assert.match(h.commit.url, new RegExp(`/-/commit/${c.id}$`));
    assert.equal(h.merge_request, undefined);
  });

  test('errors: 400 without note or with path but no line; 404 for an unknown commit', async () => {
    const post = (sha: string, body: object) =>
      api(sb, `/projects/${P}/repository/commits/${sha}/comments`, {
        method: 'POST',
        token: 'operator-token',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    assert.deepEqual((await post('main', {})).body, { error: 'note is missing' });
    assert.deepEqual((await post('main', { note: 'x', path: 'a' })).body, { error: 'line is missing' });
    assert.equal((await post('main', { note: 'x', path: 'a', line: 1, line_type: 'side' })).status, 400);
    const unknown = await post('f'.repeat(40), { note: 'x' });
    assert.deepEqual([unknown.status, unknown.body], [404, { message: '404 Commit Not Found' }]);
    assert.equal(
      (await failure(client(sb, 'operator').Commits.allComments(OPS, 'f'.repeat(40)))).status,
      404,
    );
  });
});

describe('diff_refs', () => {
  test('opened: the latest version; unchanged when the target moves; moves with a push; kept when merged', async () => {
    const bot = client(sb, 'gitops-bot');
    const op = client(sb, 'operator');
    const one = [{ action: 'create' as const, filePath: 'diffrefs-mr/1.txt', content: '1' }];
    const mr = await branchWithMr(bot, 'diffrefs/mr', 'main', 'One', one, 'diff refs');
    const main0 = (await op.Branches.show(OPS, 'main')).commit.id;
    let shown = await op.MergeRequests.show(OPS, mr.iid);
    assert.deepEqual(shown.diff_refs, { base_sha: main0, head_sha: shown.sha, start_sha: main0 });
    // the target moves on: no new version, so diff_refs stay as they were
    const main1 = (
      await op.Commits.create(OPS, 'main', 'Main moves', [
        { action: 'create', filePath: 'refs-main.txt', content: 'm' },
      ])
    ).id;
    const before = shown.diff_refs;
    shown = await op.MergeRequests.show(OPS, mr.iid);
    assert.deepEqual(shown.diff_refs, before);
    // a push to the source: base is the merge base with the target as it is now
    const head = (
      await bot.Commits.create(OPS, 'diffrefs/mr', 'Two', [
        { action: 'create', filePath: 'diffrefs-mr/2.txt', content: '2' },
      ])
    ).id;
    shown = await op.MergeRequests.show(OPS, mr.iid);
    assert.deepEqual(shown.diff_refs, { base_sha: main0, head_sha: head, start_sha: main1 });
    const [v] = await op.MergeRequests.allDiffVersions(OPS, mr.iid);
    assert.deepEqual([v.base_commit_sha, v.head_commit_sha, v.start_commit_sha], [main0, head, main1]);
    // rebased onto the new target by a force reset: the base follows
    const rebased = (
      await bot.Commits.create(
        OPS,
        'diffrefs/mr',
        'Rebased',
        [{ action: 'create', filePath: 'diffrefs-mr/3.txt', content: '3' }],
        { startBranch: 'main', force: true },
      )
    ).id;
    shown = await op.MergeRequests.show(OPS, mr.iid);
    assert.deepEqual(shown.diff_refs, { base_sha: main1, head_sha: rebased, start_sha: main1 });
    const merged = await op.MergeRequests.merge(OPS, mr.iid);
    assert.equal(merged.state, 'merged');
    assert.deepEqual(merged.diff_refs, { base_sha: main1, head_sha: rebased, start_sha: main1 });
    assert.deepEqual((await op.MergeRequests.show(OPS, mr.iid)).diff_refs, merged.diff_refs);
  });
});
