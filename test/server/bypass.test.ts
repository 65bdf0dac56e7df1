// Issue 6: every bypass refused, each against the sandbox (which delivers the webhooks)
// and a real `serve`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { createWebhookServer, type WebhookServer } from '../../src/server/webhook.js';
import {
  addHook,
  branchWithMr,
  client,
  OPS,
  protect,
  protectDeployRef,
  STRICT_POLICY,
  sandboxFixture,
} from '../helpers.js';
import { verdictNote } from './helpers.js';

const SECRET = 'hook-secret-1';
const IMAGE = 'registry.example.com/root/helloworld';
const POLICY = `${STRICT_POLICY}  - name: staging
    match: { target_branches: [staging] }
    approvals: { required: 1, users: [operator] }
    escalation: [{ when: major, extra_approvals: 1 }]
  - name: frozen
    match: { target_branches: [frozen] }
    approvals: { required: 1, users: [operator] }
    freeze: [{ days: [mon, tue, wed, thu, fri, sat, sun], reason: release freeze }]
  - name: grouped
    match: { target_branches: [grouped] }
    approvals: { required: 1, groups: [operators] }
`;

let sb: Sandbox;
let srv: WebhookServer;
let hookUrl: string;
const op = () => client(sb, 'operator');

const settle = () => sb.settle(srv);

async function statusOf(sha: string): Promise<string | undefined> {
  const list = await op().Commits.allStatuses(OPS, sha);
  return list.find((s) => s.name === 'gitops-bot/approval')?.status;
}

async function promoteTo(target: string, tag: string, file = 'deployment.yml', image = IMAGE) {
  const r = await promote(
    { project: OPS, files: [file], image, tag, targetBranch: target, assignees: ['operator'] },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  await settle();
  return op().MergeRequests.show(OPS, r.mr!.iid);
}

const deployRef = async () => (await op().Branches.show(OPS, 'deploy/prod')).commit.id;

before(async () => {
  sb = await sandboxFixture();
  const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  const bot = await gitlab.currentUser();
  srv = createWebhookServer({ ctx: { gitlab, botUserId: bot.id }, secret: SECRET, projects: [OPS] });
  hookUrl = `${await srv.listen(0, '127.0.0.1')}/webhook`;
  const o = op();
  const dep = String(await o.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await o.Commits.create(OPS, 'main', 'Approval policy', [
    { action: 'create', filePath: '.gitops-bot.yml', content: POLICY },
    {
      action: 'create',
      filePath: 'semver.yml',
      content: dep.replace(`${IMAGE}:ci-33`, 'ghcr.io/acme/api:1.2.3'),
    },
  ]);
  for (const b of ['deploy/prod', 'staging', 'frozen', 'grouped']) await o.Branches.create(OPS, b, 'main');
  // Developers (the bot) may merge into main; only gitops-bot may push deploy/prod.
  await protect(sb, { name: 'main', push_access_level: 40, merge_access_level: 30 });
  // gitops-bot governs protected branches only.
  for (const name of ['staging', 'frozen', 'grouped'])
    await protect(sb, { name, push_access_level: 40, merge_access_level: 30 });
  await protectDeployRef(sb, bot.id);
  await addHook(sb, hookUrl, SECRET);
});
after(async () => {
  await srv?.close();
  await sb?.close();
});

describe('the approval rules, enforced through webhooks', () => {
  test("operator's approval counts: the bot merges at the evaluated head and moves deploy_ref", async () => {
    const mr = await promoteTo('main', 'ci-34');
    assert.equal(await statusOf(mr.sha), 'pending');
    assert.match(await verdictNote(sb, mr.iid), /0\/1 approvals from operator/);
    await op().MergeRequestApprovals.approve(OPS, mr.iid, { sha: mr.sha });
    await settle();
    const merged = await op().MergeRequests.show(OPS, mr.iid);
    assert.equal(merged.state, 'merged');
    assert.equal((merged.merged_by as { username: string }).username, 'gitops-bot');
    assert.equal(await deployRef(), merged.merge_commit_sha);
  });

  test('reviewer (a Developer, not an eligible approver) approves: not counted', async () => {
    const mr = await promoteTo('staging', 'ci-35');
    await client(sb, 'reviewer').MergeRequestApprovals.approve(OPS, mr.iid);
    await settle();
    assert.equal(await statusOf(mr.sha), 'pending');
    assert.match(
      await verdictNote(sb, mr.iid),
      /@reviewer \| not counted: not among the approvers of staging/,
    );
  });

  test('an approval given before a new push stops counting', async () => {
    const first = await promoteTo('staging', 'ci-36');
    await op().MergeRequestApprovals.approve(OPS, first.iid);
    await settle();
    assert.equal(await statusOf(first.sha), 'success');
    const second = await promoteTo('staging', 'ci-37');
    assert.equal(second.iid, first.iid);
    assert.equal(await statusOf(second.sha), 'pending');
    assert.match(
      await verdictNote(sb, second.iid),
      /@operator \| not counted: approved before the latest push/,
    );
  });

  test('the author approves their own MR: not counted (even where GitLab allows it)', async () => {
    const o = op();
    await fetch(`${sb.apiUrl}/projects/${encodeURIComponent(OPS)}/approvals`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': 'operator-token', 'Content-Type': 'application/json' },
      body: JSON.stringify({ merge_requests_author_approval: true }),
    });
    const mr = await branchWithMr(
      o,
      'own',
      'staging',
      'replicas',
      [{ action: 'update', filePath: 'service.yml', content: 'kind: Service\n' }],
      'Operator edits the service',
    );
    await o.MergeRequestApprovals.approve(OPS, mr.iid);
    await settle();
    assert.equal(await statusOf(mr.sha), 'pending');
    assert.match(await verdictNote(sb, mr.iid), /@operator \| not counted: the author of the merge request/);
  });

  test('gitops-bot approves a proposal: never counted', async () => {
    const r = client(sb, 'reviewer');
    const mr = await branchWithMr(
      r,
      'by-reviewer',
      'staging',
      'x',
      [{ action: 'update', filePath: 'service.yml', content: 'kind: Service # x\n' }],
      'Reviewer edits the service',
    );
    await client(sb, 'gitops-bot').MergeRequestApprovals.approve(OPS, mr.iid);
    await settle();
    assert.equal(await statusOf(mr.sha), 'pending');
    assert.match(await verdictNote(sb, mr.iid), /@gitops-bot \| not counted: gitops-bot cannot approve/);
  });

  test("an MR that edits .gitops-bot.yml to need 0 approvals is judged by the default branch's policy", async () => {
    const r = client(sb, 'reviewer');
    await r.Commits.create(
      OPS,
      'weaken',
      'No approvals needed',
      [
        {
          action: 'update',
          filePath: '.gitops-bot.yml',
          content: POLICY.replace(/required: 1/g, 'required: 0'),
        },
      ],
      { startBranch: 'staging' },
    );
    const mr = await r.MergeRequests.create(OPS, 'weaken', 'staging', 'Weaken the policy');
    await settle();
    assert.equal(await statusOf(mr.sha), 'pending');
    assert.match(await verdictNote(sb, mr.iid), /0\/1 approvals from operator/);
  });

  test('a major bump with one approval where two are needed', async () => {
    const mr = await promoteTo('staging', '2.0.0', 'semver.yml', 'ghcr.io/acme/api');
    await op().MergeRequestApprovals.approve(OPS, mr.iid);
    await settle();
    assert.equal(await statusOf(mr.sha), 'pending');
    assert.match(await verdictNote(sb, mr.iid), /1\/2 approvals from operator \(major bump: \+1\)/);
  });

  test('approvals.groups: a member of the operators group counts, others do not', async () => {
    const mr = await promoteTo('grouped', 'ci-36');
    await client(sb, 'reviewer').MergeRequestApprovals.approve(OPS, mr.iid);
    await settle();
    assert.equal(await statusOf(mr.sha), 'pending');
    assert.match(
      await verdictNote(sb, mr.iid),
      /@reviewer \| not counted: not among the approvers of grouped \(members of operators\)/,
    );
    await op().MergeRequestApprovals.approve(OPS, mr.iid);
    await settle();
    assert.equal(await statusOf(mr.sha), 'success');
  });

  test('a freeze window blocks even an approved MR', async () => {
    const mr = await promoteTo('frozen', 'ci-38');
    await op().MergeRequestApprovals.approve(OPS, mr.iid);
    await settle();
    assert.equal(await statusOf(mr.sha), 'pending');
    assert.match(await verdictNote(sb, mr.iid), /freeze window .*: release freeze/);
  });

  test('a Maintainer merges without approval: deploy_ref does not move, an alert is posted', async () => {
    const before = await deployRef();
    const mr = await promoteTo('main', 'ci-39');
    await op().MergeRequests.merge(OPS, mr.iid);
    await settle();
    assert.equal(await deployRef(), before);
    const notes = await op().MergeRequestNotes.all(OPS, mr.iid);
    assert.ok(notes.some((n) => /Not deployed.*merged by operator without passing the rules/.test(n.body)));
    const metrics = await srv.registry.getSingleMetricAsString('gitops_bot_bypass_alerts_total');
    assert.match(metrics, /kind="merge"} [1-9]/);
  });

  test('a forged "success" status by a Developer does not satisfy the gate', async () => {
    const before = await deployRef();
    await client(sb, 'root').Projects.edit(OPS, { onlyAllowMergeIfPipelineSucceeds: true });
    const mr = await promoteTo('main', 'ci-40');
    await client(sb, 'reviewer').Commits.editStatus(OPS, mr.sha, 'success', { name: 'gitops-bot/approval' });
    await op().MergeRequests.merge(OPS, mr.iid, { sha: mr.sha }); // GitLab lets it through
    await settle();
    assert.equal(await deployRef(), before, 'the forged status moved nothing');
    const notes = await op().MergeRequestNotes.all(OPS, mr.iid);
    assert.ok(notes.some((n) => /Not deployed/.test(n.body)));
    await client(sb, 'root').Projects.edit(OPS, { onlyAllowMergeIfPipelineSucceeds: false });
  });

  test('a direct push to the target branch is never deployed; the commit gets an alert', async () => {
    const before = await deployRef();
    const c = await op().Commits.create(OPS, 'main', 'Hotfix by hand', [
      { action: 'update', filePath: 'service.yml', content: 'kind: Service # hotfix\n' },
    ]);
    await settle();
    assert.equal(await deployRef(), before);
    const comments = await op().Commits.allComments(OPS, c.id);
    assert.ok(
      comments.some((x) => /pushed to main directly, not through a merge request/.test(String(x.note))),
    );
  });

  test('a push to a branch no MR targets: no alert, and no open MR is evaluated again', async () => {
    const o = op();
    await o.Branches.create(OPS, 'scratch', 'main');
    await settle();
    const before = sb.requests.length;
    const c = await o.Commits.create(OPS, 'scratch', 'Try something', [
      { action: 'create', filePath: 'scratch.txt', content: 'x' },
    ]);
    await settle();
    const bot = sb.requests.slice(before).filter((r) => r.user === 'gitops-bot');
    assert.ok(
      bot.length <= 3,
      `${bot.length} requests: ${bot.map((r) => `${r.method} ${r.path}`).join(', ')}`,
    );
    assert.equal((await o.Commits.allComments(OPS, c.id)).length, 0);
  });

  test('a webhook with a wrong or missing token: 401, nothing done', async () => {
    const body = JSON.stringify({
      object_kind: 'merge_request',
      project: { path_with_namespace: OPS },
      object_attributes: { iid: 1, action: 'update' },
    });
    const statuses = sb.core.store.data.statuses.length;
    for (const headers of [{}, { 'X-Gitlab-Token': 'wrong' }] as Array<Record<string, string>>) {
      const r = await fetch(hookUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Gitlab-Event': 'Merge Request Hook', ...headers },
        body,
      });
      assert.equal(r.status, 401);
    }
    await settle();
    assert.equal(sb.core.store.data.statuses.length, statuses);
  });

  test('the same delivery twice has one effect', async () => {
    const mr = await promoteTo('staging', 'ci-41');
    const delivery = sb.webhooks.deliveries.filter((d) => d.event === 'Merge Request Hook').at(-1)!;
    const notesBefore = (await op().MergeRequestNotes.all(OPS, mr.iid)).length;
    const requestsBefore = sb.requests.length;
    await fetch(`${sb.url}/-/sandbox/hooks/deliveries/${delivery.id}/resend`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': 'root-token' },
    });
    await settle();
    assert.equal((await op().MergeRequestNotes.all(OPS, mr.iid)).length, notesBefore);
    const botRequests = sb.requests.slice(requestsBefore).filter((r) => r.user === 'gitops-bot').length;
    assert.equal(botRequests, 0, 'the duplicate was dropped before any work');
    const metrics = await srv.registry.getSingleMetricAsString('gitops_bot_webhook_deliveries_total');
    assert.match(metrics, /result="duplicate"} [1-9]/);
  });

  test('/gitops-bot recheck evaluates again; healthz and metrics answer', async () => {
    const mr = await promoteTo('staging', 'ci-42');
    await op().MergeRequestNotes.create(OPS, mr.iid, '/gitops-bot recheck');
    await settle();
    assert.equal(await statusOf(mr.sha), 'pending');
    const base = hookUrl.replace('/webhook', '');
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const m = await (await fetch(`${base}/metrics`)).text();
    assert.match(m, /gitops_bot_gate_verdicts_total\{state="pending"\}/);
    const big = await fetch(hookUrl, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Gitlab-Token': SECRET,
        'X-Gitlab-Event': 'Note Hook',
      },
      body: `{"x":"${'a'.repeat(2 * 1024 * 1024)}"}`,
    });
    assert.equal(big.status, 413);
    const bad = await fetch(hookUrl, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Gitlab-Token': SECRET,
        'X-Gitlab-Event': 'Note Hook',
      },
      body: '{not json',
    });
    assert.equal(bad.status, 400);
  });
});

test('gitops-bot serve (the CLI, jobs on a worker thread) evaluates on /gitops-bot recheck', async () => {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'serve', '--listen', '127.0.0.1:0', '--project', OPS], {
    env: {
      ...process.env,
      GITLAB_URL: sb.url,
      GITOPS_BOT_TOKEN: 'gitops-bot-token',
      GITOPS_BOT_WEBHOOK_SECRET: 'cli-secret',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const url = await new Promise<string>((resolve) => {
      child.stdout.on('data', (b: Buffer) => {
        const m = /listening on (\S+) as gitops-bot/.exec(b.toString());
        if (m) resolve(m[1]);
      });
    });
    const mr = await promoteTo('staging', 'ci-50');
    const before = await verdictNote(sb, mr.iid);
    const body = {
      object_kind: 'note',
      project: { id: 2, path_with_namespace: OPS },
      object_attributes: { note: '/gitops-bot recheck', noteable_type: 'MergeRequest' },
      merge_request: { iid: mr.iid },
    };
    // An earlier test approved this MR before its latest push: approve afresh.
    await op()
      .MergeRequestApprovals.unapprove(OPS, mr.iid)
      .catch(() => undefined);
    await op().MergeRequestApprovals.approve(OPS, mr.iid);
    await settle();
    const res = await fetch(`${url}/webhook`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Gitlab-Token': 'cli-secret',
        'X-Gitlab-Event': 'Note Hook',
      },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 202);
    for (let i = 0; i < 100 && (await statusOf(mr.sha)) !== 'success'; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(await statusOf(mr.sha), 'success');
    assert.notEqual(await verdictNote(sb, mr.iid), before);
    // The CLI's own metrics prove the verdict came through its worker thread.
    let metrics = '';
    for (let i = 0; i < 100; i++) {
      metrics = await (await fetch(`${url}/metrics`)).text();
      if (/gitops_bot_gate_verdicts_total\{state="success"\} 1/.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(metrics, /gitops_bot_gate_verdicts_total\{state="success"\} 1/);
  } finally {
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});
