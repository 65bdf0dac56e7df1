// Paths GitLab refuses, with GitLab's status and message: Rails' file_path validator
// (Gitlab::PathTraversal: `..`, newline, absolute; 400 "<param> should be a valid file path"),
// then Gitaly's UserCommitFiles (`//` and `.git` entries; 400 "invalid path: '<path>'"), which
// also cleans `.` segments. What does get committed keeps `git fsck --strict` clean.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { api, OPS, run, sandboxFixture } from '../helpers.js';

let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
});
after(() => sb.close());

const P = `/projects/${encodeURIComponent(OPS)}`;

function commit(branch: string, actions: Array<Record<string, unknown>>) {
  return api(sb, `${P}/repository/commits`, {
    method: 'POST',
    token: 'operator-token',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ branch, start_branch: 'main', commit_message: 'paths', actions }),
  });
}

const create = (file_path: string) => ({ action: 'create', file_path, content: 'x\n' });

async function branchExists(branch: string): Promise<boolean> {
  return (
    (await api(sb, `${P}/repository/branches/${encodeURIComponent(branch)}`, { token: 'operator-token' }))
      .status === 200
  );
}

async function fsckClean(): Promise<void> {
  const project = sb.core.store.project(OPS)!;
  const { stdout, stderr } = await run('git', ['fsck', '--full', '--strict'], {
    cwd: sb.core.repoDir(project),
  });
  assert.equal(`${stdout}${stderr}`.replace(/^Checking.*$/gm, '').trim(), '');
}

describe('commit actions: what GitLab refuses', () => {
  const refused: Array<[string, Record<string, unknown>, Record<string, string>]> = [
    [
      'a .git component deep in the path',
      create('apps/.git/config'),
      { message: "invalid path: 'apps/.git/config'" },
    ],
    [
      'a leading .git component',
      create('.git/hooks/post-update'),
      { message: "invalid path: '.git/hooks/post-update'" },
    ],
    [
      '.git in another case (git refuses it too)',
      create('x/.GIT/config'),
      { message: "invalid path: 'x/.GIT/config'" },
    ],
    ['.git reached through a . segment', create('./.git/config'), { message: "invalid path: '.git/config'" }],
    ['a .. segment', create('apps/../x.yml'), { error: 'actions[0][file_path] should be a valid file path' }],
    ['a leading ..', create('../x.yml'), { error: 'actions[0][file_path] should be a valid file path' }],
    [
      'a URL-encoded ..',
      create('%2e%2e/x.yml'),
      { error: 'actions[0][file_path] should be a valid file path' },
    ],
    ['a newline', create('a\nb.yml'), { error: 'actions[0][file_path] should be a valid file path' }],
    [
      'an absolute path',
      create('/etc/x.yml'),
      { error: 'actions[0][file_path] should be a valid file path' },
    ],
    ['an empty segment', create('apps//x.yml'), { message: "invalid path: 'apps//x.yml'" }],
    [
      'a move from a .git path',
      { action: 'move', file_path: 'ok.yml', previous_path: '.git/config' },
      { message: "invalid path: '.git/config'" },
    ],
  ];
  for (const [what, action, body] of refused) {
    test(`400 for ${what}, and nothing committed`, async () => {
      const branch = `paths-${what.replace(/[^a-z]+/g, '-')}`;
      const res = await commit(branch, [create('fine.yml'), action]);
      const expected = Object.fromEntries(
        Object.entries(body).map(([k, v]) => [k, v.replace('actions[0]', 'actions[1]')]),
      );
      assert.deepEqual({ status: res.status, body: res.body }, { status: 400, body: expected });
      assert.equal(await branchExists(branch), false, 'the branch was not created');
    });
  }

  test('. segments are cleaned, as Gitaly does: a/./b.yml is committed as a/b.yml', async () => {
    const res = await commit('paths-dot', [create('apps/./b.yml'), create('./top.yml')]);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const tree = await api(sb, `${P}/repository/tree?ref=paths-dot&recursive=true`, {
      token: 'operator-token',
    });
    const paths = (tree.body as Array<{ path: string }>).map((e) => e.path);
    assert.ok(paths.includes('apps/b.yml') && paths.includes('top.yml'), paths.join(' '));
    assert.ok(!paths.some((p) => p.split('/').includes('.')), paths.join(' '));
    await fsckClean();
  });
});

describe('reads: 400, not 500', () => {
  test('a tree path that climbs out of the repository', async () => {
    for (const path of ['..', '../etc', 'apps/../../etc']) {
      const res = await api(sb, `${P}/repository/tree?ref=main&path=${encodeURIComponent(path)}`, {
        token: 'operator-token',
      });
      assert.deepEqual(
        { path, status: res.status, body: res.body },
        { path, status: 400, body: { message: '400 Bad request - invalid revision or path' } },
      );
    }
  });

  test('a tree path that stays inside but does not exist is still 404', async () => {
    const res = await api(sb, `${P}/repository/tree?ref=main&path=nowhere`, { token: 'operator-token' });
    assert.equal(res.status, 404);
  });

  test('a file_path with a newline (raw and JSON)', async () => {
    for (const suffix of ['?ref=main', '/raw?ref=main']) {
      const res = await api(sb, `${P}/repository/files/${encodeURIComponent('deploy\nment.yml')}${suffix}`, {
        token: 'operator-token',
      });
      assert.deepEqual(
        { status: res.status, body: res.body },
        { status: 400, body: { error: 'file_path should be a valid file path' } },
      );
    }
  });
});
