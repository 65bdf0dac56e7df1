// A rollback restores what ran, not just its tag: when the files pin digests, the rollback MR
// writes the tag and the digest the healthy deployment's commit held (a tag can be pushed
// again; the digest cannot). Deployments as the feedback loop writes them (the bot's own).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GitLabGate } from '../../src/gitlab/client.js';
import { rollback } from '../../src/rollback/rollback.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { type Client, client, OPS, sandboxFixture } from '../helpers.js';

const IMAGE = 'registry.example.com/root/helloworld';
const D34 = `sha256:${'b'.repeat(64)}`;
const D35 = `sha256:${'c'.repeat(64)}`;
let sb: Sandbox;
let op: Client;
let bot: GitLabGate;

/** main runs `ref`; the bot records its deployment in production/helloworld as `status`. */
async function runs(ref: string, status: 'success' | 'failed'): Promise<void> {
  const text = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await op.Commits.create(OPS, 'main', `deploy ${ref}`, [
    {
      action: 'update',
      filePath: 'deployment.yml',
      content: text.replace(/helloworld:\S+/, `helloworld:${ref}`),
    },
  ]);
  const sha = (await op.Branches.show(OPS, 'main')).commit.id;
  await bot.createDeployment(OPS, { environment: 'production/helloworld', sha, ref: 'main', status });
}

before(async () => {
  sb = await sandboxFixture();
  op = client(sb, 'operator');
  bot = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  await runs(`ci-34@${D34}`, 'success');
  await runs(`ci-35@${D35}`, 'failed');
});
after(() => sb?.close());

test('rollback to ci-34 writes ci-34 with the digest that ran healthy', async () => {
  const r = await rollback(
    {
      project: OPS,
      env: 'production',
      app: 'helloworld',
      image: IMAGE,
      files: ['deployment.yml'],
      reason: 'bad',
    },
    { gitlab: bot },
  );
  assert.equal(r.action, 'created');
  assert.deepEqual([r.tag, r.fromTag], ['ci-34', 'ci-35']);
  const file = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', r.branch));
  assert.match(file, new RegExp(`image: ${IMAGE}:ci-34@${D34}\\n`));
});
