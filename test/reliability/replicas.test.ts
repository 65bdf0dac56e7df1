// Issue 7: two `serve` replicas fed the same webhook stream (both are project hooks), plus
// duplicate deliveries, end where one replica would: one verdict comment, one merge, one
// move of deploy_ref, and no alert.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { createWebhookServer, type WebhookServer } from '../../src/server/webhook.js';
import { client, OPS, sandboxFixture, strictOps } from '../helpers.js';

let sb: Sandbox;
const replicas: WebhookServer[] = [];
const moves: string[] = [];
const alerts: string[] = [];

before(async () => {
  sb = await sandboxFixture();
  await strictOps(sb);
  const op = client(sb, 'operator');
  for (let i = 0; i < 2; i++) {
    const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
    const bot = await gitlab.currentUser();
    const srv = createWebhookServer({
      ctx: {
        gitlab,
        botUserId: bot.id,
        onDeployRefMove: (_p, _r, sha) => moves.push(sha),
        onAlert: (kind, _p, detail) => alerts.push(`${kind}: ${detail}`),
      },
      secret: 's',
      projects: [OPS],
    });
    replicas.push(srv);
    const url = await srv.listen(0, '127.0.0.1');
    await op.ProjectHooks.add(OPS, `${url}/webhook`, {
      token: 's',
      pushEvents: true,
      mergeRequestsEvents: true,
      noteEvents: true,
    });
  }
});
after(async () => {
  for (const r of replicas) await r.close();
  await sb?.close();
});

test('two replicas and duplicate deliveries: one comment, one merge, one deploy_ref move', async () => {
  const r = await promote(
    { project: OPS, files: ['deployment.yml'], image: 'registry.example.com/root/helloworld', tag: 'ci-34' },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  const iid = r.mr!.iid;
  await sb.settle(...replicas);
  const op = client(sb, 'operator');
  const mr = await op.MergeRequests.show(OPS, iid);
  await op.MergeRequestApprovals.approve(OPS, iid, { sha: mr.sha });
  await sb.settle(...replicas);
  // every delivery so far, once more
  for (const d of [...sb.webhooks.deliveries]) sb.webhooks.resend(d.id);
  await sb.settle(...replicas);

  const merged = await op.MergeRequests.show(OPS, iid);
  assert.equal(merged.state, 'merged');
  assert.equal((merged.merged_by as { username: string }).username, 'gitops-bot');
  const notes = await op.MergeRequestNotes.all(OPS, iid);
  assert.equal(
    notes.filter((n) => n.body.startsWith('<!-- gitops-bot:verdict')).length,
    1,
    'one verdict comment',
  );
  assert.equal(notes.filter((n) => n.body.includes('gitops-bot:alert')).length, 0, 'no alert');
  assert.deepEqual(alerts, []);
  assert.equal((await op.Branches.show(OPS, 'deploy/prod')).commit.id, merged.merge_commit_sha);
  assert.equal(new Set(moves).size, 1, `deploy_ref moved to one commit: ${moves}`);
  const mergeCommits = (await op.Commits.all(OPS, { refName: 'main' })).filter(
    (c) => c.parent_ids?.length === 2,
  );
  assert.equal(mergeCommits.length, 1, 'one merge');
});
