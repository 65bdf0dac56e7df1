// `gitops-bot chain` as an operator runs it: --dry-run says what the chain would open or why
// it waits and writes nothing; a real run opens the MR serve would; --json one line.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GitLabGate } from '../../src/gitlab/client.js';
import { recordComment } from '../../src/model/record.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { MAIN_PROTECTION } from '../../src/sandbox/index.js';
import { type Client, client, OPS, protect, sandboxFixture } from '../helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const policy = (soak: string) => `version: 1
environments:
  - name: staging
    match: { files: ['envs/staging/**'] }
  - name: production
    match: { files: ['envs/production/**'] }
    approvals: { required: 1, users: [operator] }
promotion:
  - { from: staging, to: production, when: healthy, soak: ${soak}, assignees: [operator] }
`;

let sb: Sandbox;
let op: Client;
before(async () => {
  sb = await sandboxFixture();
  op = client(sb, 'operator');
  const base = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await op.Commits.create(OPS, 'main', 'two environments', [
    { action: 'create', filePath: '.gitops-bot.yml', content: policy('1h') },
    { action: 'create', filePath: 'envs/staging/deployment.yml', content: base.replace(':ci-33', ':ci-34') },
    { action: 'create', filePath: 'envs/production/deployment.yml', content: base },
  ]);
  await protect(sb, MAIN_PROTECTION);
  // staging runs ci-34: the bot's successful deployment of main's head, as the feedback loop writes it
  const bot = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  const head = (await op.Branches.show(OPS, 'main')).commit.id;
  await bot.createDeployment(OPS, {
    environment: 'staging/helloworld',
    sha: head,
    ref: 'main',
    status: 'success',
  });
});
after(() => sb?.close());

function chain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [CLI, 'chain', '--project', OPS, ...args],
      { env: { PATH: process.env.PATH, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

const productionMrs = () =>
  op.MergeRequests.all({ projectId: OPS, sourceBranch: 'gitops-bot/production/helloworld', state: 'opened' });

test('chain --dry-run: the soak not over yet is a wait with its end; --json says when to look again', async () => {
  const r = await chain(['--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^helloworld staging → production: waiting: soak: ci-34 healthy in staging since \d\d:\d\d \(.*of 1 h\); production at \d\d:\d\d\n$/,
  );
  const j = JSON.parse((await chain(['--dry-run', '--json'])).stdout);
  assert.equal(j.decisions.length, 1);
  assert.ok(Date.parse(j.nextAt) > Date.now() + 50 * 60_000, `nextAt ${j.nextAt}`);
  assert.equal((await productionMrs()).length, 0);
});

test('chain --dry-run after the soak says what it would open and opens nothing; chain opens it, once', async () => {
  const text = String(await op.RepositoryFiles.showRaw(OPS, '.gitops-bot.yml', 'main'));
  await op.Commits.create(OPS, 'main', 'no soak', [
    { action: 'update', filePath: '.gitops-bot.yml', content: text.replace(', soak: 1h', '') },
  ]);
  const dry = await chain(['--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(
    dry.stdout,
    /^would helloworld staging → production: promote ci-34 \(verified in staging since/,
  );
  assert.equal((await productionMrs()).length, 0, 'a dry run writes nothing');
  const real = JSON.parse((await chain(['--json'])).stdout);
  assert.deepEqual(
    real.opened.map((o: { tag: string; action: string }) => [o.tag, o.action]),
    [['ci-34', 'created']],
  );
  const again = await chain([]);
  assert.match(again.stdout, /!\d+ proposes ci-34 already/);
  const [mr] = await productionMrs();
  assert.equal(mr.title, 'Deploy helloworld ci-34 to production');
  assert.match(
    String(mr.description),
    /\| Promoted from \| staging: verified in staging since \d\d:\d\d UTC/,
  );
});

test('a chain MR whose tag is rolled back from staging since: chain closes it with why, and does not reopen it', async () => {
  const [mr] = await productionMrs();
  // ci-34 is rolled back from staging: a merged rollback MR of the bot's staging branch
  const branch = 'gitops-bot/staging/helloworld';
  const text = String(await op.RepositoryFiles.showRaw(OPS, 'envs/staging/deployment.yml', 'main'));
  await op.Branches.create(OPS, branch, 'main');
  await op.Commits.create(OPS, branch, 'Roll back helloworld to ci-33 in staging', [
    { action: 'update', filePath: 'envs/staging/deployment.yml', content: text.replace(':ci-34', ':ci-33') },
  ]);
  const record = recordComment({
    v: 1,
    app: 'helloworld',
    env: 'staging',
    image: 'registry.example.com/root/helloworld',
    tag: 'ci-33',
    target: 'main',
    files: [],
    source: {},
    rollback: {
      fromTag: 'ci-34',
      reason: 'Degraded: ImagePullBackOff',
      waived: 'downgrade',
      by: 'on_degraded',
    },
  });
  const rb = await op.MergeRequests.create(OPS, branch, 'main', 'Roll back helloworld to ci-33 in staging', {
    description: record,
  });
  await op.MergeRequests.merge(OPS, rb.iid);
  const r = await chain([]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(
      `close !${mr.iid} \\(ci-34\\): ci-34 was rolled back from staging at \\d\\d:\\d\\d \\(!${rb.iid}\\)`,
    ),
  );
  const closed = await op.MergeRequests.show(OPS, mr.iid);
  assert.equal(closed.state, 'closed');
  const notes = await op.MergeRequestNotes.all(OPS, mr.iid);
  assert.ok(
    notes.some((n) => /gitops-bot closed this merge request.*rolled back from staging/.test(String(n.body))),
  );
  const again = await chain([]);
  assert.equal((await productionMrs()).length, 0, `not reopened: ${again.stdout}`);
});

test('chain with a bad --policy, or an invalid .gitops-bot.yml: exit 2 naming the file and field', async () => {
  const r = await chain(['--policy', '/nonexistent/rules.yml']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--policy \/nonexistent\/rules\.yml: ENOENT/);
  const text = String(await op.RepositoryFiles.showRaw(OPS, '.gitops-bot.yml', 'main'));
  await op.Commits.create(OPS, 'main', 'a typo', [
    {
      action: 'update',
      filePath: '.gitops-bot.yml',
      content: text.replace('when: healthy', 'when: healthy, soak: soon'),
    },
  ]);
  const bad = await chain(['--json']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /promotion\[0\]\.soak: expected a duration such as 90s/);
  assert.equal(JSON.parse(bad.stdout).exit, 2, '--json: the failure as one line too');
});
