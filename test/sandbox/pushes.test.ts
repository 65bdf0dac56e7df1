// Who pushed, as the sandbox records it the way GitLab does: the "added N commits" system
// notes on merge requests, push events (Events API) and the Push Hook, for Commits API
// commits and for `git push` over HTTP. Real git, real HTTP.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import {
  api,
  branchWithMr,
  client,
  failure,
  type hookReceiver,
  OPS,
  run,
  sandboxFixture,
  sandboxWithHooks,
  tempDir,
} from '../helpers.js';

let sb: Sandbox;
let hooks: Awaited<ReturnType<typeof hookReceiver>>;
let close: () => Promise<void>;

before(async () => {
  ({ sb, hooks, close } = await sandboxWithHooks({
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
  }));
});
after(() => close());

const P = encodeURIComponent(OPS);
const web = `/${OPS}/-/merge_requests`;
const short = (sha: string) => sha.slice(0, 8);

/** A push event's push_data for a branch, as GitLab gives it: the fields not named are null. */
const branchPush = (named: { commit_count: number; action: string } & Record<string, unknown>) => ({
  ref_type: 'branch',
  commit_from: null,
  commit_to: null,
  ref: null,
  commit_title: null,
  ref_count: null,
  ...named,
});

/** Where the deliveries so far end, once those under way have arrived. */
async function mark(): Promise<number> {
  await sb.idle();
  return hooks.received.length;
}

/** Deliveries since `since` (from `mark()`), once the sandbox is idle. */
async function hooksSince(since: number, kind: string) {
  await sb.idle();
  return hooks.received.slice(since).filter((r) => r.body.object_kind === kind);
}

async function commit(user: string, branch: string, path: string, message: string, start?: string) {
  const c = await client(sb, user).Commits.create(
    OPS,
    branch,
    message,
    [{ action: 'create', filePath: path, content: `${message}\n` }],
    start ? { startBranch: start } : {},
  );
  return c.id;
}

/** gitops-bot's force reset of `branch` onto main, with one commit creating `path`. */
async function resetOntoMain(branch: string, path: string, message: string, content: string) {
  const c = await client(sb, 'gitops-bot').Commits.create(
    OPS,
    branch,
    message,
    [{ action: 'create', filePath: path, content }],
    { startBranch: 'main', force: true },
  );
  return c.id;
}

async function notes(iid: number, query = 'sort=asc') {
  const r = await api(sb, `/projects/${P}/merge_requests/${iid}/notes?${query}`, { token: 'operator-token' });
  assert.equal(r.status, 200);
  return r.body as Array<{ id: number; body: string; system: boolean; author: { username: string } }>;
}

async function latestVersion(iid: number): Promise<number> {
  return (await client(sb, 'operator').MergeRequests.allDiffVersions(OPS, iid))[0].id;
}

// git over HTTP, the commits written by someone who is not the pusher
const gitEnv = {
  ...process.env,
  GIT_TERMINAL_PROMPT: '0',
  GIT_AUTHOR_NAME: 'Not The Pusher',
  GIT_AUTHOR_EMAIL: 'operator@example.com',
  GIT_COMMITTER_NAME: 'Not The Pusher',
  GIT_COMMITTER_EMAIL: 'operator@example.com',
};
const git = async (cwd: string, ...args: string[]) =>
  (await run('git', args, { cwd, env: gitEnv })).stdout.trim();
async function clone(token: string): Promise<string> {
  const dir = await tempDir();
  await git(dir, 'clone', '-q', `${sb.url.replace('http://', `http://oauth2:${token}@`)}/${OPS}.git`, 'ops');
  return join(dir, 'ops');
}
async function gitCommit(wt: string, file: string, message: string): Promise<string> {
  await writeFile(join(wt, file), `${message}\n`);
  await git(wt, 'add', file);
  await git(wt, 'commit', '-qm', message);
  return git(wt, 'rev-parse', 'HEAD');
}

/** gitops-bot's MR `title` from `branch` (one commit creating `base` off main), and a reviewer's
 * clone with that branch checked out. */
async function botMrInReviewerClone(branch: string, base: string, title: string) {
  await commit('gitops-bot', branch, base, 'Base', 'main');
  const mr = await client(sb, 'gitops-bot').MergeRequests.create(OPS, branch, 'main', title);
  const wt = await clone('reviewer-token');
  await git(wt, 'checkout', '-q', branch);
  return { mr, wt };
}

describe('push system notes on merge requests', () => {
  test('a Commits API commit: "added 1 commit" by the API user, none at creation', async () => {
    const c1 = await commit('gitops-bot', 'push/api', 'push-api/1.txt', 'First', 'main');
    const mr = await client(sb, 'gitops-bot').MergeRequests.create(OPS, 'push/api', 'main', 'api push');
    assert.deepEqual(await notes(mr.iid), [], 'no system note at MR creation');
    const since = await mark();
    const c2 = await commit('reviewer', 'push/api', 'push-api/2.txt', 'Second <b>&"\'');
    const list = await notes(mr.iid);
    assert.equal(list.length, 1);
    const n = list[0] as any;
    assert.equal(n.system, true);
    assert.equal(n.author.username, 'reviewer', 'the pusher, not the MR author');
    assert.equal(n.noteable_type, 'MergeRequest');
    assert.equal(
      n.body,
      `added 1 commit\n\n<ul><li>${short(c2)} - Second &lt;b&gt;&amp;&quot;&#39;</li></ul>\n\n` +
        `[Compare with previous version](${web}/${mr.iid}/diffs?diff_id=${await latestVersion(mr.iid)}&start_sha=${c1})`,
    );
    // the Merge Request Hook for the push still fires (update, oldrev), by the pusher
    const mrHooks = await hooksSince(since, 'merge_request');
    const update = mrHooks.find((h) => h.body.object_attributes.iid === mr.iid);
    assert.equal(update?.body.object_attributes.action, 'update');
    assert.equal(update?.body.object_attributes.oldrev, c1);
    assert.equal(update?.body.user.username, 'reviewer');
    // GitLab sends no Note Hook for a system note
    assert.deepEqual(await hooksSince(since, 'note'), []);
  });

  test('interleaved with comments by time, sort and order_by, activity_filter, user_notes_count', async () => {
    await commit('gitops-bot', 'push/mix', 'push-mix/1.txt', 'One', 'main');
    const mr = await client(sb, 'gitops-bot').MergeRequests.create(OPS, 'push/mix', 'main', 'mix');
    const op = client(sb, 'operator');
    const since = await mark();
    await op.MergeRequestNotes.create(OPS, mr.iid, 'first comment');
    await commit('reviewer', 'push/mix', 'push-mix/2.txt', 'Two');
    await op.MergeRequestNotes.create(OPS, mr.iid, 'second comment');
    const asc = await notes(mr.iid);
    assert.deepEqual(
      asc.map((n) => [n.system, n.author.username, n.body.split('\n')[0]]),
      [
        [false, 'operator', 'first comment'],
        [true, 'reviewer', 'added 1 commit'],
        [false, 'operator', 'second comment'],
      ],
    );
    const desc = await notes(mr.iid, '');
    assert.deepEqual(
      desc.map((n) => n.id),
      asc.map((n) => n.id).reverse(),
      'newest first by default',
    );
    const byUpdate = await notes(mr.iid, 'order_by=updated_at&sort=asc');
    assert.deepEqual(
      byUpdate.map((n) => n.id),
      asc.map((n) => n.id),
    );
    assert.deepEqual(
      (await notes(mr.iid, 'activity_filter=only_activity')).map((n) => n.system),
      [true],
    );
    assert.deepEqual(
      (await notes(mr.iid, 'activity_filter=only_comments')).map((n) => n.system),
      [false, false],
    );
    for (const q of ['sort=up', 'order_by=id', 'activity_filter=some']) {
      const r = await api(sb, `/projects/${P}/merge_requests/${mr.iid}/notes?${q}`, {
        token: 'operator-token',
      });
      assert.equal(r.status, 400, q);
      assert.match(r.body.error, /does not have a valid value/);
    }
    assert.equal((await op.MergeRequests.show(OPS, mr.iid)).user_notes_count, 2, 'system notes not counted');
    // the Note Hook fired for the two comments only
    const noteHooks = await hooksSince(since, 'note');
    assert.deepEqual(
      noteHooks.map((h) => h.body.object_attributes.note),
      ['first comment', 'second comment'],
    );
  });

  test('system notes cannot be edited or deleted, even by their author or an admin', async () => {
    await commit('gitops-bot', 'push/locked', 'push-locked/1.txt', 'One', 'main');
    const mr = await client(sb, 'gitops-bot').MergeRequests.create(OPS, 'push/locked', 'main', 'locked');
    await commit('reviewer', 'push/locked', 'push-locked/2.txt', 'Two');
    const [n] = await notes(mr.iid);
    for (const who of ['reviewer', 'root']) {
      const c = client(sb, who);
      assert.equal((await failure(c.MergeRequestNotes.edit(OPS, mr.iid, n.id, { body: 'x' }))).status, 403);
      assert.equal((await failure(c.MergeRequestNotes.remove(OPS, mr.iid, n.id))).status, 403);
    }
    assert.equal((await notes(mr.iid))[0].body, n.body);
  });

  test('a force reset onto the moved target: the target commits are listed as "from branch"', async () => {
    const c1 = await commit('gitops-bot', 'push/reset', 'push-reset/1.txt', 'Bot one', 'main');
    const mr = await client(sb, 'gitops-bot').MergeRequests.create(OPS, 'push/reset', 'main', 'reset');
    const m1 = await commit('operator', 'main', 'push-reset/main.txt', 'Main moves on');
    // as gitops-bot rewrites its branch: one commit on the target, force
    const c2 = await resetOntoMain('push/reset', 'push-reset/1.txt', 'Bot again', 'again\n');
    const [n] = await notes(mr.iid);
    assert.equal(n.author.username, 'gitops-bot');
    assert.equal(
      n.body,
      `added 2 commits\n\n<ul><li>${short(m1)} - 1 commit from branch <code>main</code></li>` +
        `<li>${short(c2)} - Bot again</li></ul>\n\n` +
        `[Compare with previous version](${web}/${mr.iid}/diffs?diff_id=${await latestVersion(mr.iid)}&start_sha=${c1})`,
    );
    const m2 = await commit('operator', 'main', 'push-reset/main2.txt', 'Main again');
    const m3 = await commit('operator', 'main', 'push-reset/main3.txt', 'Main thrice');
    await resetOntoMain('push/reset', 'push-reset/1.txt', 'Bot thrice', 'thrice\n');
    const latest = (await notes(mr.iid)).at(-1)!;
    assert.match(
      latest.body,
      new RegExp(
        `^added 3 commits\n\n<ul><li>${short(c2)}\\.\\.\\.${short(m3)} - 2 commits from branch <code>main</code></li>`,
      ),
    );
    assert.ok(!latest.body.includes(short(m2)), 'the range, not each target commit');
  });

  test('git push by a token: the note names the token user, not the commit author', async () => {
    const { mr, wt } = await botMrInReviewerClone('push/git', 'push-git/0.txt', 'git push');
    const old = await git(wt, 'rev-parse', 'HEAD');
    const a = await gitCommit(wt, 'push-git-a.txt', 'Pushed a');
    const b = await gitCommit(wt, 'push-git-b.txt', 'Pushed b');
    const since = await mark();
    await git(wt, 'push', '-q', 'origin', 'HEAD:push/git');
    // the push is processed before git push returns
    const [n] = await notes(mr.iid);
    assert.equal(n.author.username, 'reviewer');
    assert.equal(
      n.body,
      `added 2 commits\n\n<ul><li>${short(a)} - Pushed a</li><li>${short(b)} - Pushed b</li></ul>\n\n` +
        `[Compare with previous version](${web}/${mr.iid}/diffs?diff_id=${await latestVersion(mr.iid)}&start_sha=${old})`,
    );
    const [pushHook] = (await hooksSince(since, 'push')).filter((h) => h.body.ref === 'refs/heads/push/git');
    assert.equal(pushHook.body.user_username, 'reviewer');
    assert.equal(pushHook.body.user_name, 'Reviewer');
    assert.equal(pushHook.body.user_id, (await client(sb, 'reviewer').Users.showCurrentUser()).id);
    assert.deepEqual(
      pushHook.body.commits.map((c: { id: string; author: { name: string } }) => [c.id, c.author.name]),
      [
        [a, 'Not The Pusher'],
        [b, 'Not The Pusher'],
      ],
      'oldest first; the author is whatever git wrote',
    );
    const update = (await hooksSince(since, 'merge_request')).find(
      (h) => h.body.object_attributes.iid === mr.iid,
    );
    assert.equal(update?.body.object_attributes.oldrev, old);
    assert.equal(update?.body.user.username, 'reviewer');
  });

  test('git force push: the new commits are listed; a reset to an ancestor adds none', async () => {
    const { mr, wt } = await botMrInReviewerClone('push/force', 'push-force/0.txt', 'force');
    const base = await git(wt, 'rev-parse', 'HEAD');
    await gitCommit(wt, 'push-force-1.txt', 'Will be dropped');
    const dropped = await git(wt, 'rev-parse', 'HEAD');
    await git(wt, 'push', '-q', 'origin', 'HEAD:push/force');
    // rewrite: drop that commit, two new ones instead
    await git(wt, 'reset', '-q', '--hard', base);
    const x = await gitCommit(wt, 'push-force-2.txt', 'Rewritten x');
    const y = await gitCommit(wt, 'push-force-3.txt', 'Rewritten y');
    await git(wt, 'push', '-q', '--force', 'origin', 'HEAD:push/force');
    let list = await notes(mr.iid);
    assert.equal(list.length, 2);
    assert.equal(
      list[1].body,
      `added 2 commits\n\n<ul><li>${short(x)} - Rewritten x</li><li>${short(y)} - Rewritten y</li></ul>\n\n` +
        `[Compare with previous version](${web}/${mr.iid}/diffs?diff_id=${await latestVersion(mr.iid)}&start_sha=${dropped})`,
    );
    assert.equal(list[1].author.username, 'reviewer');
    // back to an ancestor: the MR moves (and its hook fires) but no commits were added
    const since = await mark();
    await git(wt, 'push', '-q', '--force', 'origin', `${base}:push/force`);
    list = await notes(mr.iid);
    assert.equal(list.length, 2, 'no note without commits');
    assert.equal((await client(sb, 'operator').MergeRequests.show(OPS, mr.iid)).sha, base);
    const update = (await hooksSince(since, 'merge_request')).find(
      (h) => h.body.object_attributes.iid === mr.iid,
    );
    assert.equal(update?.body.object_attributes.oldrev, y);
  });

  test('more than 10 commits: the last 10, after "K earlier commits"', async () => {
    const { mr, wt } = await botMrInReviewerClone('push/many', 'push-many/0.txt', 'many');
    const old = await git(wt, 'rev-parse', 'HEAD');
    const shas: string[] = [];
    for (let i = 1; i <= 12; i++) shas.push(await gitCommit(wt, `push-many-${i}.txt`, `Commit ${i}`));
    await git(wt, 'push', '-q', 'origin', 'HEAD:push/many');
    const [n] = await notes(mr.iid);
    const items = shas
      .slice(2)
      .map((s, i) => `<li>${short(s)} - Commit ${i + 3}</li>`)
      .join('');
    assert.equal(
      n.body,
      `added 12 commits\n\n<ul><li>${short(old)}...${short(shas[1])} - 2 earlier commits</li>${items}</ul>\n\n` +
        `[Compare with previous version](${web}/${mr.iid}/diffs?diff_id=${await latestVersion(mr.iid)}&start_sha=${old})`,
    );
  });

  test('a long title is cut as Commit#title does', async () => {
    await commit('gitops-bot', 'push/long', 'push-long/0.txt', 'Base', 'main');
    const mr = await client(sb, 'gitops-bot').MergeRequests.create(OPS, 'push/long', 'main', 'long');
    const title = `${'word '.repeat(24)}end`; // 123 characters
    const c = await commit('reviewer', 'push/long', 'push-long/1.txt', `${title}\n\nbody`);
    const [n] = await notes(mr.iid);
    // cut at the last space within 80 characters, then "…"
    assert.ok(n.body.includes(`<li>${short(c)} - ${'word '.repeat(16).trimEnd()}…</li>`), n.body);
  });
});

describe('push events (GET /projects/:id/events)', () => {
  type Ev = {
    id: number;
    action_name: string;
    author_username: string;
    author: { username: string };
    push_data: Record<string, unknown>;
  };
  const events = async (query = '', token = 'operator-token') =>
    api(sb, `/projects/${P}/events${query ? `?${query}` : ''}`, { token });

  test('Commits API commit, branch create and delete: GitLab event entities', async () => {
    const sha = await commit('reviewer', 'ev/api', 'ev-api/1.txt', `${'t'.repeat(80)}\n\nbody`, 'main');
    const r = await events('per_page=1');
    assert.equal(r.status, 200);
    const [e] = r.body as Ev[];
    const reviewer = await client(sb, 'reviewer').Users.showCurrentUser();
    assert.deepEqual(Object.keys(e), [
      'id',
      'project_id',
      'action_name',
      'target_id',
      'target_iid',
      'target_type',
      'author_id',
      'target_title',
      'created_at',
      'author',
      'imported',
      'imported_from',
      'push_data',
      'author_username',
    ]);
    assert.equal(e.action_name, 'pushed new');
    assert.equal((e as any).author_id, reviewer.id);
    assert.equal(e.author_username, 'reviewer');
    assert.equal(e.author.username, 'reviewer');
    assert.equal((e as any).target_type, null);
    assert.deepEqual(
      e.push_data,
      branchPush({
        commit_count: 1,
        action: 'created',
        commit_to: sha,
        ref: 'ev/api',
        commit_title: `${'t'.repeat(67)}...`,
      }),
    );
    const next = await commit('gitops-bot', 'ev/api', 'ev-api/2.txt', 'Next');
    const [pushed] = (await events('per_page=1')).body as Ev[];
    assert.equal(pushed.action_name, 'pushed to');
    assert.equal(pushed.author_username, 'gitops-bot');
    assert.deepEqual(
      pushed.push_data,
      branchPush({
        commit_count: 1,
        action: 'pushed',
        commit_from: sha,
        commit_to: next,
        ref: 'ev/api',
        commit_title: 'Next',
      }),
    );
    await client(sb, 'reviewer').Branches.create(OPS, 'ev/copy', 'main');
    const [created] = (await events('per_page=1')).body as Ev[];
    assert.equal(created.action_name, 'pushed new');
    assert.equal(created.push_data.commit_count, 0, 'nothing the default branch lacks');
    assert.equal(created.push_data.commit_title, null);
    await client(sb, 'reviewer').Branches.remove(OPS, 'ev/api');
    const [deleted] = (await events('per_page=1')).body as Ev[];
    assert.equal(deleted.action_name, 'deleted');
    assert.deepEqual(
      deleted.push_data,
      branchPush({ commit_count: 0, action: 'removed', commit_from: next, ref: 'ev/api' }),
    );
  });

  test('git push: the author is the token user; merges count as pushes by the merger', async () => {
    const wt = await clone('reviewer-token');
    await git(wt, 'checkout', '-q', '-b', 'ev/git');
    const a = await gitCommit(wt, 'ev-git-a.txt', 'Git a');
    const b = await gitCommit(wt, 'ev-git-b.txt', 'Git b');
    await git(wt, 'push', '-q', 'origin', 'ev/git');
    const [e] = (await events('per_page=1')).body as Ev[];
    assert.equal(e.author_username, 'reviewer');
    assert.deepEqual(
      e.push_data,
      branchPush({ commit_count: 2, action: 'created', commit_to: b, ref: 'ev/git', commit_title: 'Git b' }),
    );
    const op = client(sb, 'operator');
    const mr = await op.MergeRequests.create(OPS, 'ev/git', 'main', 'merge me');
    const merged = await op.MergeRequests.merge(OPS, mr.iid, { shouldRemoveSourceBranch: true });
    const [removed, toMain] = (await events('per_page=2')).body as Ev[];
    assert.equal(toMain.author_username, 'operator');
    assert.equal(toMain.action_name, 'pushed to');
    assert.equal(toMain.push_data.ref, 'main');
    assert.equal(toMain.push_data.commit_to, merged.merge_commit_sha);
    assert.equal(toMain.push_data.commit_count, 3, 'the merge commit and the two merged');
    assert.ok(a);
    assert.equal(removed.action_name, 'deleted');
    assert.equal(removed.push_data.ref, 'ev/git');
  });

  test('filters, sort, pagination headers, validation', async () => {
    const all = (await events('per_page=100')).body as Ev[];
    assert.ok(all.length >= 5);
    const ids = all.map((e) => e.id);
    assert.deepEqual(
      ids,
      [...ids].sort((x, y) => y - x),
      'newest first by default',
    );
    const asc = (await events('per_page=100&sort=asc')).body as Ev[];
    assert.deepEqual(
      asc.map((e) => e.id),
      [...ids].reverse(),
    );
    assert.equal(((await events('per_page=100&action=pushed')).body as Ev[]).length, all.length);
    assert.deepEqual((await events('action=merged')).body, [], 'only push events are recorded');
    assert.deepEqual((await events('target_type=merge_request')).body, [], 'a push has no target');
    const today = new Date().toISOString().slice(0, 10);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    assert.equal(((await events(`per_page=100&before=${tomorrow}`)).body as Ev[]).length, all.length);
    assert.deepEqual((await events(`before=${today}`)).body, [], 'before: earlier days only');
    assert.equal(((await events(`per_page=100&after=${yesterday}`)).body as Ev[]).length, all.length);
    assert.deepEqual((await events(`after=${today}`)).body, [], 'after: later days only');
    const page = await events('per_page=2&page=2');
    assert.deepEqual(
      (page.body as Ev[]).map((e) => e.id),
      ids.slice(2, 4),
    );
    assert.equal(page.headers.get('x-total'), String(all.length));
    assert.equal(page.headers.get('x-page'), '2');
    assert.equal(page.headers.get('x-next-page'), all.length > 4 ? '3' : '');
    assert.match(page.headers.get('link') ?? '', /rel="prev".*rel="first".*rel="last"/);
    for (const [q, error] of [
      ['action=pushed_to', 'action does not have a valid value'],
      ['target_type=commit', 'target_type does not have a valid value'],
      ['sort=newest', 'sort does not have a valid value'],
      ['before=yesterday', 'before is invalid'],
      ['after=2024-02-30', 'after is invalid'],
    ]) {
      const r = await events(q);
      assert.deepEqual([r.status, r.body], [400, { error }], q);
    }
  });

  test('who may read them: members from Reporter up; a Guest sees none; others get 404', async () => {
    assert.equal((await events('', 'argocd-token')).status, 200, 'Reporter');
    assert.ok(((await events('', 'argocd-token')).body as Ev[]).length > 0);
    assert.equal((await events('', 'developer-token')).status, 404, 'not a member');
    assert.equal((await events('', '')).status, 404, 'anonymous');
    // a Guest: the page is counted, but pushes are not visible to it (download_code)
    const made = await fetch(`${sb.url}/-/sandbox/users`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': 'root-token', 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'guest' }),
    });
    const guest = (await made.json()) as { id: number };
    const added = await api(sb, `/projects/${P}/members`, {
      method: 'POST',
      token: 'operator-token',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user_id: guest.id, access_level: 10 }),
    });
    assert.equal(added.status, 201);
    const r = await events('', 'guest-token');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, []);
    assert.ok(Number(r.headers.get('x-total')) > 0);
  });

  test('one git push of more than three new branches: one bulk event, no push hooks', async () => {
    const wt = await clone('reviewer-token');
    const since = await mark();
    await git(wt, 'push', '-q', 'origin', ...[1, 2, 3, 4].map((i) => `HEAD:refs/heads/bulk/${i}`));
    const [e] = (await events('per_page=1')).body as Ev[];
    assert.equal(e.action_name, 'pushed new');
    assert.equal(e.author_username, 'reviewer');
    assert.deepEqual(e.push_data, branchPush({ commit_count: 0, action: 'created', ref_count: 4 }));
    assert.deepEqual(await hooksSince(since, 'push'), [], 'push_event_hooks_limit');
    // three at once are still single events with hooks
    await git(wt, 'push', '-q', 'origin', ...[5, 6, 7].map((i) => `HEAD:refs/heads/bulk/${i}`));
    const three = (await events('per_page=3')).body as Ev[];
    assert.deepEqual(three.map((x) => x.push_data.ref).sort(), ['bulk/5', 'bulk/6', 'bulk/7']);
    assert.equal((await hooksSince(since, 'push')).length, 3);
  });
});

describe('Push Hook fidelity', () => {
  test('ref_protected for every protected branch; newest 20 commits, oldest first; the whole count', async () => {
    const op = client(sb, 'operator');
    await op.Branches.create(OPS, 'release/1', 'main');
    await op.Branches.create(OPS, 'feature/hook', 'main');
    const r = await api(sb, `/projects/${P}/protected_branches`, {
      method: 'POST',
      token: 'operator-token',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'release/1', push_access_level: 30, merge_access_level: 40 }),
    });
    assert.equal(r.status, 201);
    const wt = await clone('reviewer-token');
    await git(wt, 'checkout', '-q', 'release/1');
    const shas: string[] = [];
    for (let i = 1; i <= 22; i++) shas.push(await gitCommit(wt, `hook-${i}.txt`, `Hook ${i}`));
    const since = await mark();
    await git(wt, 'push', '-q', 'origin', 'HEAD:release/1', 'HEAD:feature/hook');
    const hooks = await hooksSince(since, 'push');
    const release = hooks.find((h) => h.body.ref === 'refs/heads/release/1')!.body;
    const feature = hooks.find((h) => h.body.ref === 'refs/heads/feature/hook')!.body;
    assert.equal(release.ref_protected, true, 'an explicitly protected branch');
    assert.equal(feature.ref_protected, false);
    assert.equal(release.user_username, 'reviewer');
    assert.equal(release.total_commits_count, 22);
    assert.deepEqual(
      release.commits.map((c: { id: string }) => c.id),
      shas.slice(2),
    );
    assert.deepEqual(Object.keys(release.commits[0]), [
      'id',
      'message',
      'title',
      'timestamp',
      'url',
      'author',
      'added',
      'modified',
      'removed',
    ]);
    await op.Commits.create(OPS, 'main', 'On main', [
      { action: 'create', filePath: 'hook-main.txt', content: 'x' },
    ]);
    const main = (await hooksSince(since, 'push')).find((h) => h.body.ref === 'refs/heads/main')!.body;
    assert.equal(main.ref_protected, true, 'the default branch');
    assert.equal(main.user_username, 'operator');
  });
});

describe('persistence', () => {
  test('push events and system notes survive a restart with the same data folder', async () => {
    const dataDir = await tempDir();
    const first = await sandboxFixture({ dataDir });
    const bot = client(first, 'gitops-bot');
    const one = [{ action: 'create' as const, filePath: 'keep/1.txt', content: '1' }];
    const mr = await branchWithMr(bot, 'keep/me', 'main', 'One', one, 'kept');
    await client(first, 'reviewer').Commits.create(OPS, 'keep/me', 'Two', [
      { action: 'create', filePath: 'keep/2.txt', content: '2' },
    ]);
    // (a restart picks a new port: URLs are compared without it)
    const read = async (s: Sandbox) =>
      JSON.parse(
        JSON.stringify({
          notes: (await api(s, `/projects/${P}/merge_requests/${mr.iid}/notes`, { token: 'operator-token' }))
            .body,
          events: (await api(s, `/projects/${P}/events?per_page=100`, { token: 'operator-token' })).body,
        }).replaceAll(s.url, 'http://sandbox'),
      );
    const seen = await read(first);
    assert.equal(seen.notes.length, 1);
    assert.ok(seen.events.length >= 3);
    await first.close();
    const second = await sandboxFixture({ dataDir });
    try {
      assert.deepEqual(await read(second), seen);
    } finally {
      await second.close();
    }
  });
});
