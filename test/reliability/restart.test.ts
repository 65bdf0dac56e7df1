// Issue 7: `serve` killed mid-work (SIGKILL, its git children too) and started again
// converges on the next event: here a `/gitops-bot recheck` comment.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GitLab } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { addHook, client, OPS, sandboxFixture, strictOps, until } from '../helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
let sb: Sandbox;
const children: ChildProcess[] = [];
const op = () => client(sb, 'operator');

async function startServe(port: number): Promise<{ child: ChildProcess; url: string }> {
  // its own process group, so that killing it kills the git it may be running
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--project', OPS], {
    env: {
      ...process.env,
      GITLAB_URL: sb.url,
      GITOPS_BOT_TOKEN: 'gitops-bot-token',
      GITOPS_BOT_WEBHOOK_SECRET: 's',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  children.push(child);
  const url = await new Promise<string>((resolve) => {
    child.stdout!.on('data', (b: Buffer) => {
      const m = /listening on (\S+)/.exec(b.toString());
      if (m) resolve(m[1]);
    });
  });
  return { child, url };
}

before(async () => {
  sb = await sandboxFixture();
  await strictOps(sb);
});
after(async () => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    process.kill(-c.pid!, 'SIGKILL');
    await exited;
  }
  await sb?.close();
});

test('serve killed between the merge and the deploy_ref move converges after a restart', async () => {
  const first = await startServe(0);
  const port = Number(new URL(first.url).port);
  await addHook(sb, `${first.url}/webhook`, 's');
  const r = await promote(
    { project: OPS, files: ['deployment.yml'], image: 'registry.example.com/root/helloworld', tag: 'ci-34' },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  const iid = r.mr!.iid;
  const deployBefore = (await op().Branches.show(OPS, 'deploy/prod')).commit.id;
  const mr = await op().MergeRequests.show(OPS, iid);
  await until(async () => (await op().Commits.allStatuses(OPS, mr.sha)).length > 0, 'the first verdict');
  // Hold serve in the window: a sandbox fault that starts with the merge. The merge is
  // performed, and from then on every API answer, the merge's own included, is held back, so
  // serve can neither hear that it merged nor read what it needs to move deploy_ref (its
  // jobs for the merge's webhooks included). The kill then provably falls between the merge
  // and the deploy_ref move.
  sb.setFaults('rate=1,kinds=hold,slow_ms=60000,after=PUT /projects/:id/merge_requests/:iid/merge');
  await op().MergeRequestApprovals.approve(OPS, iid, { sha: mr.sha });
  await until(
    async () => sb.core.store.mergeRequest(mr.project_id, iid)?.state === 'merged',
    'the merge',
    1,
    10_000,
  );
  // serve's merge is held, and its jobs for the merge's webhooks run into the hold too
  await until(async () => (sb.faults().hold ?? 0) >= 2, 'serve to be held by the faults', 5, 10_000);
  process.kill(-first.child.pid!, 'SIGKILL');
  await new Promise((r) => first.child.once('exit', r));
  sb.setFaults(null);
  await sb.settle();
  const merged = await op().MergeRequests.show(OPS, iid);
  assert.equal(merged.state, 'merged', 'the merge had landed when serve was killed');
  assert.equal(
    (await op().Branches.show(OPS, 'deploy/prod')).commit.id,
    deployBefore,
    'deploy_ref had not moved when serve was killed',
  );

  await startServe(port);
  await op().MergeRequestNotes.create(OPS, iid, '/gitops-bot recheck');
  await until(
    async () => (await op().Branches.show(OPS, 'deploy/prod')).commit.id === merged.merge_commit_sha,
    'deploy_ref to reach the merge commit',
    25,
  );
  assert.equal((merged.merged_by as { username: string }).username, 'gitops-bot');
  const notes = await op().MergeRequestNotes.all(OPS, iid);
  assert.equal(notes.filter((n) => n.body.startsWith('<!-- gitops-bot:verdict')).length, 1);
  assert.equal(notes.filter((n) => n.body.includes('gitops-bot:alert')).length, 0, 'no alert');
});
