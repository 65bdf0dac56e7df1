import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, run, sandboxFixture, tempDir } from '../helpers.js';

let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
});
after(() => sb.close());

const remote = (token: string) => `${sb.url.replace('http://', `http://oauth2:${token}@`)}/${OPS}.git`;
const gitEnv = {
  ...process.env,
  GIT_TERMINAL_PROMPT: '0',
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.com',
};
const git = (cwd: string, ...args: string[]) => run('git', args, { cwd, env: gitEnv });

async function cloneAndCommit(token: string): Promise<string> {
  const dir = await tempDir();
  await git(dir, 'clone', '-q', remote(token), 'ops');
  const wt = join(dir, 'ops');
  await writeFile(join(wt, 'README.md'), `pushed with ${token}\n`);
  await git(wt, 'add', 'README.md');
  await git(wt, 'commit', '-qm', 'readme');
  return wt;
}

test('git clone over HTTP with a token as the basic-auth password', async () => {
  const dir = await tempDir();
  await git(dir, 'clone', '-q', remote('argocd-token'), 'ops');
  const { stdout } = await git(join(dir, 'ops'), 'ls-files');
  assert.deepEqual(stdout.trim().split('\n'), ['deployment.yml', 'ingress.yml', 'service.yml']);
});

test('no token: 401; a token without access: not found', async () => {
  const dir = await tempDir();
  const anon = `${sb.url}/${OPS}.git`;
  await assert.rejects(
    git(dir, 'clone', '-q', anon, 'a'),
    /Authentication failed|could not read Username|401/,
  );
  await assert.rejects(git(dir, 'clone', '-q', remote('developer-token'), 'b'), /not found|404/);
});

test('a Developer push to the protected default branch is refused; to a feature branch accepted', async () => {
  const wt = await cloneAndCommit('reviewer-token');
  await assert.rejects(
    git(wt, 'push', '-q', 'origin', 'HEAD:main'),
    /not allowed to push code to protected branches/,
  );
  await git(wt, 'push', '-q', 'origin', 'HEAD:feature/HW-001');
  const branch = await client(sb, 'reviewer').Branches.show(OPS, 'feature/HW-001');
  const { stdout } = await git(wt, 'rev-parse', 'HEAD');
  assert.equal(branch.commit.id, stdout.trim());
});

test('a Maintainer may push to the default branch; a Reporter may not push at all', async () => {
  const wt = await cloneAndCommit('operator-token');
  await git(wt, 'push', '-q', 'origin', 'HEAD:main');
  const main = await client(sb, 'operator').Branches.show(OPS, 'main');
  assert.equal(main.commit.id, (await git(wt, 'rev-parse', 'HEAD')).stdout.trim());
  const ro = await cloneAndCommit('argocd-token');
  await assert.rejects(git(ro, 'push', '-q', 'origin', 'HEAD:feature/ro'), /not allowed to push|403/);
});

test('a push to an MR source branch updates the MR (new version, new sha)', async () => {
  const c = client(sb, 'reviewer');
  const wt = await cloneAndCommit('reviewer-token');
  await git(wt, 'push', '-q', 'origin', 'HEAD:feature/mr-push');
  const mr = await c.MergeRequests.create(OPS, 'feature/mr-push', 'main', 'readme');
  await writeFile(join(wt, 'README.md'), 'second\n');
  await git(wt, 'commit', '-qam', 'second');
  await git(wt, 'push', '-q', 'origin', 'HEAD:feature/mr-push');
  const head = (await git(wt, 'rev-parse', 'HEAD')).stdout.trim();
  assert.equal((await c.MergeRequests.show(OPS, mr.iid)).sha, head);
  assert.equal((await c.MergeRequests.allDiffVersions(OPS, mr.iid)).length, 2);
});

test('a commit through the API right after a push that brought a pack (100+ objects) succeeds', async () => {
  // git keeps a push of 100 objects or more as a pack (transfer.unpackLimit); a long-lived
  // mktree that never rescans the pack directory could not see its trees and answered 500.
  const c = client(sb, 'reviewer');
  const wt = await cloneAndCommit('reviewer-token');
  await mkdir(join(wt, 'bulk'));
  for (let i = 0; i < 120; i++) await writeFile(join(wt, 'bulk', `f${i}.txt`), `file ${i}\n`);
  await git(wt, 'add', 'bulk');
  await git(wt, 'commit', '-qm', 'bulk');
  await git(wt, 'push', '-q', 'origin', 'HEAD:feature/bulk');
  const commit = await c.Commits.create(OPS, 'feature/bulk', 'after the bulk push', [
    { action: 'create', filePath: 'after-bulk.txt', content: 'x\n' },
  ]);
  assert.equal((await c.Branches.show(OPS, 'feature/bulk')).commit.id, commit.id);
  await git(wt, 'fetch', '-q', 'origin', 'feature/bulk');
  await git(wt, 'fsck', '--strict', '--no-progress', 'FETCH_HEAD');
});
