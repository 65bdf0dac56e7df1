import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, failure, OPS, run, sandboxFixture } from '../helpers.js';

let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
});
after(() => sb.close());

test('50 concurrent commits with the same last_commit_id: exactly one wins, git fsck is clean', async () => {
  const c = client(sb, 'gitops-bot');
  const branch = 'gitops-bot/race';
  await c.Branches.create(OPS, branch, 'main');
  const f = await c.RepositoryFiles.show(OPS, 'deployment.yml', branch);
  const base = Buffer.from(f.content, 'base64').toString();
  const results = await Promise.allSettled(
    Array.from({ length: 50 }, (_, i) =>
      c.Commits.create(OPS, branch, `ci-${100 + i}`, [
        {
          action: 'update',
          filePath: 'deployment.yml',
          content: base.replace('ci-33', `ci-${100 + i}`),
          lastCommitId: f.last_commit_id,
        },
      ]),
    ),
  );
  const ok = results.filter((r) => r.status === 'fulfilled');
  assert.equal(ok.length, 1, 'exactly one commit succeeds');
  for (const r of results) {
    if (r.status === 'fulfilled') continue;
    const err = await failure(Promise.reject(r.reason));
    assert.deepEqual(err, {
      status: 400,
      message: 'The file has changed since you started editing it: deployment.yml',
    });
  }
  const winner = (ok[0] as PromiseFulfilledResult<{ id: string }>).value.id;
  assert.equal((await c.Branches.show(OPS, branch)).commit.id, winner);
  const project = sb.core.store.project(OPS)!;
  const { stdout, stderr } = await run('git', ['fsck', '--full', '--strict'], {
    cwd: sb.core.repoDir(project),
  });
  assert.equal(`${stdout}${stderr}`.replace(/^Checking.*$/gm, '').trim(), '');
  const count = await run('git', ['rev-list', '--count', branch], { cwd: join(sb.core.repoDir(project)) });
  assert.equal(count.stdout.trim(), '2');
});

test('concurrent commits without last_commit_id all land; none is lost', async () => {
  const c = client(sb, 'gitops-bot');
  const branch = 'gitops-bot/many';
  await c.Branches.create(OPS, branch, 'main');
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      c.Commits.create(OPS, branch, `file ${i}`, [
        { action: 'create', filePath: `f/${i}.txt`, content: String(i) },
      ]),
    ),
  );
  const tree = await c.Repositories.allRepositoryTrees(OPS, { ref: branch, path: 'f' });
  assert.equal(tree.length, 20);
});
