import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RepositoryCompareSchema } from '@gitbeaker/rest';
import type { Sandbox } from '../../src/sandbox/index.js';
import { api, client, failure, OPS, sandboxFixture } from '../helpers.js';

let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
});
after(() => sb.close());

const ops = () => client(sb, 'reviewer');

describe('auth', () => {
  test('401 without a valid token, in GitLab shape', async () => {
    const none = await api(sb, '/user');
    assert.equal(none.status, 401);
    assert.deepEqual(none.body, { message: '401 Unauthorized' });
    const bad = await api(sb, '/user', { token: 'nope' });
    assert.equal(bad.status, 401);
  });

  test('PRIVATE-TOKEN, Bearer and JOB-TOKEN headers', async () => {
    assert.equal((await api(sb, '/user', { token: 'operator-token' })).body.username, 'operator');
    const bearer = await api(sb, '/user', { headers: { Authorization: 'Bearer argocd-token' } });
    assert.equal(bearer.body.username, 'argocd');
    const job = await fetch(`${sb.url}/-/sandbox/job-tokens`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': 'root-token', 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'reviewer', project: 'root/helloworld' }),
    });
    const { token } = (await job.json()) as { token: string };
    const headers = { 'JOB-TOKEN': token };
    const read = await api(sb, `/projects/${encodeURIComponent(OPS)}/repository/files/deployment.yml/raw`, {
      headers,
    });
    assert.equal(read.status, 200);
    assert.match(String(read.body), /helloworld:ci-33/);
    // CI_JOB_TOKEN cannot write to another project (nor call non-allowlisted endpoints).
    const write = await api(sb, `/projects/${encodeURIComponent(OPS)}/repository/commits`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ branch: 'x', commit_message: 'x', actions: [] }),
    });
    assert.equal(write.status, 401);
  });

  test('404 for projects the user cannot see; admin sees all', async () => {
    const dev = client(sb, 'developer');
    assert.deepEqual(await failure(dev.Projects.show(OPS)), {
      status: 404,
      message: '404 Project Not Found',
    });
    const root = client(sb, 'root');
    assert.equal((await root.Projects.show(OPS)).path_with_namespace, OPS);
  });
});

describe('instance, users, projects, members', () => {
  test('version, user, users?username=', async () => {
    const c = ops();
    assert.match((await c.Metadata.show()).version, /sandbox/);
    assert.match((await api(sb, '/version', { token: 'reviewer-token' })).body.version, /sandbox/);
    assert.equal((await c.Users.showCurrentUser()).username, 'reviewer');
    const found = await c.Users.all({ username: 'OPERATOR' });
    assert.equal(found.length, 1);
    assert.equal(found[0].username, 'operator');
    assert.deepEqual(await c.Users.all({ username: 'nobody' }), []);
  });

  test('project by path and by id, with the fields the bot reads', async () => {
    const c = ops();
    const byPath = await c.Projects.show(OPS);
    const byId = await c.Projects.show(byPath.id);
    assert.equal(byId.id, byPath.id);
    assert.equal(byPath.default_branch, 'main');
    assert.equal(byPath.http_url_to_repo, `${sb.url}/${OPS}.git`);
    assert.equal(byPath.only_allow_merge_if_pipeline_succeeds, false);
  });

  test('members/all carries the story roles', async () => {
    const members = await ops().ProjectMembers.all(OPS, { includeInherited: true });
    const levels = Object.fromEntries(members.map((m) => [m.username, m.access_level]));
    assert.deepEqual(levels, { root: 50, reviewer: 30, operator: 40, argocd: 20, 'gitops-bot': 30 });
    const app = await client(sb, 'root').ProjectMembers.all('root/helloworld', { includeInherited: true });
    assert.deepEqual(Object.fromEntries(app.map((m) => [m.username, m.access_level])), {
      root: 50,
      developer: 30,
      reviewer: 40,
      'gitops-bot': 20, // reads the app's history for "what is being deployed"
    });
    const one = await ops().ProjectMembers.show(OPS, members.find((m) => m.username === 'operator')!.id, {
      includeInherited: true,
    });
    assert.equal(one.access_level, 40);
  });

  test('groups: the story has operators; a private group is a 404 to outsiders', async () => {
    const members = await ops().GroupMembers.all('operators', { includeInherited: true });
    assert.deepEqual(members.map((m) => m.username).sort(), ['operator', 'root']);
    const root = client(sb, 'root');
    const g = await root.Groups.create('Secret', 'secret', { visibility: 'private' });
    assert.equal((await failure(ops().Groups.show('secret'))).status, 404);
    assert.equal((await failure(ops().GroupMembers.all(g.id))).status, 404);
    await root.GroupMembers.add(g.id, 30, { userId: 3 });
    assert.equal((await failure(root.GroupMembers.add(g.id, 30, { userId: 3 }))).status, 409);
    assert.equal((await ops().GroupMembers.all('secret')).length, 2);
    assert.equal((await failure(ops().Groups.create('x', 'x'))).status, 403);
  });
});

describe('repository files and tree', () => {
  test('GET with base64 content, blob_id and last_commit_id', async () => {
    const f = await ops().RepositoryFiles.show(OPS, 'deployment.yml', 'main');
    assert.match(
      Buffer.from(f.content, 'base64').toString(),
      /image: registry.example.com\/root\/helloworld:ci-33/,
    );
    assert.match(f.blob_id, /^[0-9a-f]{40}$/);
    assert.match(f.last_commit_id, /^[0-9a-f]{40}$/);
    assert.equal(f.encoding, 'base64');
  });

  test('HEAD returns metadata headers only', async () => {
    const r = await fetch(
      `${sb.apiUrl}/projects/${encodeURIComponent(OPS)}/repository/files/deployment.yml?ref=main`,
      {
        method: 'HEAD',
        headers: { 'PRIVATE-TOKEN': 'reviewer-token' },
      },
    );
    assert.equal(r.status, 200);
    assert.match(r.headers.get('x-gitlab-blob-id')!, /^[0-9a-f]{40}$/);
    assert.match(r.headers.get('x-gitlab-last-commit-id')!, /^[0-9a-f]{40}$/);
    assert.equal(await r.text(), '');
  });

  test('raw, with ref optional', async () => {
    const raw = await ops().RepositoryFiles.showRaw(OPS, 'service.yml', 'main');
    assert.match(String(raw), /kind: Service/);
    const r = await api(sb, `/projects/${encodeURIComponent(OPS)}/repository/files/service.yml/raw`, {
      token: 'reviewer-token',
    });
    assert.equal(r.status, 200);
  });

  test('errors: missing ref, missing file, bad ref, traversal', async () => {
    const p = `/projects/${encodeURIComponent(OPS)}/repository/files`;
    const noRef = await api(sb, `${p}/deployment.yml`, { token: 'reviewer-token' });
    assert.deepEqual([noRef.status, noRef.body], [400, { error: 'ref is missing' }]);
    assert.deepEqual(await failure(ops().RepositoryFiles.show(OPS, 'nope.yml', 'main')), {
      status: 404,
      message: '404 File Not Found',
    });
    assert.equal(
      (await failure(ops().RepositoryFiles.show(OPS, 'deployment.yml', 'no-such-ref'))).status,
      404,
    );
    const trav = await api(sb, `${p}/${encodeURIComponent('../../etc/passwd')}?ref=main`, {
      token: 'reviewer-token',
    });
    assert.equal(trav.status, 400);
  });

  test('tree lists files, recursively too', async () => {
    const tree = await ops().Repositories.allRepositoryTrees(OPS, { ref: 'main' });
    assert.deepEqual(tree.map((t) => t.path).sort(), ['deployment.yml', 'ingress.yml', 'service.yml']);
  });
});

describe('commits', () => {
  test('create with actions, start_branch, then show, list with ref_name and path', async () => {
    const c = ops();
    const head = await c.RepositoryFiles.show(OPS, 'deployment.yml', 'main');
    const content = Buffer.from(head.content, 'base64').toString().replace('ci-33', 'ci-34');
    const commit = await c.Commits.create(
      OPS,
      'feature/commits-1',
      'Deploy ci-34',
      [{ action: 'update', filePath: 'deployment.yml', content, lastCommitId: head.last_commit_id }],
      { startBranch: 'main' },
    );
    assert.match(commit.id, /^[0-9a-f]{40}$/);
    assert.equal(commit.title, 'Deploy ci-34');
    assert.deepEqual(commit.parent_ids, [head.commit_id]);
    assert.equal(commit.author_name, 'Reviewer');
    const shown = await c.Commits.show(OPS, commit.id);
    assert.equal(shown.id, commit.id);
    const list = await c.Commits.all(OPS, { refName: 'feature/commits-1', path: 'deployment.yml' });
    assert.equal(list[0].id, commit.id);
    assert.equal(list.length, 2);
    const raw = await api(sb, `/projects/${encodeURIComponent(OPS)}/repository/commits?ref_name=main`, {
      token: 'reviewer-token',
    });
    assert.equal(raw.headers.get('x-total'), null, 'the Commits API does not count');
    assert.equal(raw.headers.get('x-page'), '1');
    assert.deepEqual(await failure(c.Commits.show(OPS, 'f'.repeat(40))), {
      status: 404,
      message: '404 Commit Not Found',
    });
  });

  test('stale last_commit_id answers 400 with the path', async () => {
    const c = ops();
    const old = await c.RepositoryFiles.show(OPS, 'service.yml', 'main');
    await c.Commits.create(
      OPS,
      'feature/stale',
      'one',
      [{ action: 'update', filePath: 'service.yml', content: 'a: 1\n' }],
      {
        startBranch: 'main',
      },
    );
    const err = await failure(
      c.Commits.create(OPS, 'feature/stale', 'two', [
        { action: 'update', filePath: 'service.yml', content: 'a: 2\n', lastCommitId: old.last_commit_id },
      ]),
    );
    assert.deepEqual(err, {
      status: 400,
      message: 'The file has changed since you started editing it: service.yml',
    });
  });

  test('commit errors: existing branch, both starts, create existing, not on a branch', async () => {
    const c = ops();
    const act = [{ action: 'create' as const, filePath: 'new.txt', content: 'x' }];
    await c.Commits.create(OPS, 'feature/exists', 'x', act, { startBranch: 'main' });
    const main = (await c.Branches.show(OPS, 'main')).commit.id;
    assert.deepEqual(
      await failure(
        c.Commits.create(OPS, 'feature/exists', 'y', act, {
          startSha: (await c.Commits.all(OPS, { refName: 'main' }))[0].id,
        }),
      ),
      {
        status: 400,
        message:
          "A branch called 'feature/exists' already exists. Switch to that branch in order to make changes",
      },
    );
    assert.deepEqual(
      await failure(c.Commits.create(OPS, 'b2', 'y', act, { startBranch: 'main', startSha: main })),
      {
        status: 400,
        message: "You can't pass both start_branch and start_sha",
      },
    );
    assert.deepEqual(await failure(c.Commits.create(OPS, 'feature/exists', 'y', act)), {
      status: 400,
      message: 'A file with this name already exists',
    });
    assert.deepEqual(await failure(c.Commits.create(OPS, 'no-such-branch', 'y', act)), {
      status: 400,
      message: 'You can only create or edit files when you are on a branch',
    });
  });

  test('force overwrites the branch from start_branch; delete, move and chmod actions', async () => {
    const c = ops();
    await c.Commits.create(
      OPS,
      'feature/force',
      'a',
      [{ action: 'create', filePath: 'a.txt', content: 'a' }],
      {
        startBranch: 'main',
      },
    );
    const forced = await c.Commits.create(
      OPS,
      'feature/force',
      'b',
      [
        { action: 'move', filePath: 'svc.yml', previousPath: 'service.yml' },
        { action: 'delete', filePath: 'ingress.yml' },
        { action: 'chmod', filePath: 'deployment.yml', execute_filemode: true },
      ],
      { startBranch: 'main', force: true },
    );
    const mainHead = (await c.Branches.show(OPS, 'main')).commit.id;
    assert.deepEqual(forced.parent_ids, [mainHead]);
    const tree = await c.Repositories.allRepositoryTrees(OPS, { ref: 'feature/force' });
    const byPath = Object.fromEntries(tree.map((t) => [t.path, t.mode]));
    assert.deepEqual(byPath, { 'deployment.yml': '100755', 'svc.yml': '100644' });
  });

  test('a Developer cannot commit to the protected default branch; a Reporter cannot commit at all', async () => {
    const act = [{ action: 'create' as const, filePath: 'p.txt', content: 'x' }];
    assert.deepEqual(await failure(ops().Commits.create(OPS, 'main', 'x', act)), {
      status: 403,
      message: 'You are not allowed to push into this branch',
    });
    assert.equal(
      (await failure(client(sb, 'argocd').Commits.create(OPS, 'r', 'x', act, { startBranch: 'main' })))
        .status,
      403,
    );
  });

  test('compare and commit statuses', async () => {
    const c = ops();
    await c.Commits.create(
      OPS,
      'feature/cmp',
      'cmp',
      [{ action: 'create', filePath: 'cmp.txt', content: 'hello\n' }],
      {
        startBranch: 'main',
      },
    );
    const cmp = (await c.Repositories.compare(
      OPS,
      'main',
      'feature/cmp',
    )) as Required<RepositoryCompareSchema>;
    assert.equal(cmp.commits.length, 1);
    assert.equal(cmp.diffs[0].new_path, 'cmp.txt');
    assert.equal(cmp.diffs[0].new_file, true);
    assert.match(cmp.diffs[0].diff, /^@@ -0,0 \+1 @@\n\+hello\n/);
    const sha = cmp.commits[0].id;
    const st = await c.Commits.editStatus(OPS, sha, 'pending', {
      name: 'gitops-bot/approval',
      description: '0/1',
    });
    assert.equal(st.status, 'pending');
    await c.Commits.editStatus(OPS, sha, 'success', { name: 'gitops-bot/approval' });
    const list = await c.Commits.allStatuses(OPS, sha);
    assert.equal(list.length, 1);
    assert.equal(list[0].status, 'success');
    const bad = await api(sb, `/projects/${encodeURIComponent(OPS)}/statuses/${sha}`, {
      method: 'POST',
      token: 'reviewer-token',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ state: 'bogus' }),
    });
    assert.equal(bad.status, 400);
    assert.equal((await failure(client(sb, 'argocd').Commits.editStatus(OPS, sha, 'success'))).status, 403);
  });
});

describe('branches', () => {
  test('list, create, delete, with errors', async () => {
    const c = ops();
    const created = await c.Branches.create(OPS, 'feature/br', 'main');
    assert.equal(created.name, 'feature/br');
    assert.ok((await c.Branches.all(OPS)).some((b) => b.name === 'feature/br'));
    assert.deepEqual(await failure(c.Branches.create(OPS, 'feature/br', 'main')), {
      status: 400,
      message: 'Branch already exists',
    });
    assert.equal((await failure(c.Branches.create(OPS, 'bad..name', 'main'))).status, 400);
    assert.equal((await failure(c.Branches.create(OPS, 'x', 'no-such-ref'))).status, 400);
    await c.Branches.remove(OPS, 'feature/br');
    assert.deepEqual(await failure(c.Branches.show(OPS, 'feature/br')), {
      status: 404,
      message: '404 Branch Not Found',
    });
    assert.equal((await failure(c.Branches.remove(OPS, 'main'))).status, 400);
  });
});

describe('pagination and rate-limit headers', () => {
  test('Link and x-* headers; gitbeaker .all() follows them', async () => {
    const c = ops();
    for (let i = 0; i < 5; i++) await c.Branches.create(OPS, `page/${i}`, 'main');
    const r = await api(sb, `/projects/${encodeURIComponent(OPS)}/repository/branches?per_page=2&page=2`, {
      token: 'reviewer-token',
    });
    assert.equal(r.body.length, 2);
    assert.equal(r.headers.get('x-page'), '2');
    assert.equal(r.headers.get('x-per-page'), '2');
    assert.equal(r.headers.get('x-prev-page'), '1');
    assert.equal(r.headers.get('x-next-page'), '3');
    const total = Number(r.headers.get('x-total'));
    assert.equal(r.headers.get('x-total-pages'), String(Math.ceil(total / 2)));
    assert.match(r.headers.get('link')!, /rel="next".*rel="first".*rel="last"/);
    // RateLimit-* headers come with a rate limit only, as GitLab's: test/sandbox/rate-limit.test.ts
    const all = await c.Branches.all(OPS, { perPage: 2 });
    assert.equal(all.length, total);
  });

  test('unknown routes answer GitLab 404', async () => {
    const r = await api(sb, '/nope', { token: 'reviewer-token' });
    assert.deepEqual([r.status, r.body], [404, { error: '404 Not Found' }]);
  });
});

describe('request log', () => {
  test('GET lists method, path, status, milliseconds and user; DELETE resets it', async () => {
    await fetch(`${sb.url}/-/sandbox/requests`, { method: 'DELETE' });
    await ops().Projects.show(OPS);
    await api(sb, '/user');
    const { requests } = (await (await fetch(`${sb.url}/-/sandbox/requests`)).json()) as {
      requests: Array<{ method: string; path: string; status: number; ms: number; user: string | null }>;
    };
    assert.equal(requests.length, 2);
    assert.deepEqual(
      requests.map((r) => [r.method, r.path, r.status, r.user]),
      [
        ['GET', `/api/v4/projects/${encodeURIComponent(OPS)}`, 200, 'reviewer'],
        ['GET', '/api/v4/user', 401, null],
      ],
    );
    assert.ok(requests.every((r) => typeof r.ms === 'number'));
  });
});
