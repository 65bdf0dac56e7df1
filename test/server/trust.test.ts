// Issue 14: the gate trusts only what a Developer cannot write. Each attack below is played
// by `reviewer` (Developer on the ops project) or by a Maintainer's direct push, through real
// git pushes and the API, against the sandbox (which delivers the webhooks) and `serve` in
// strict mode. None may put anything of the attacker's on deploy/prod, and the alert or
// verdict must say what happened.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gate } from '../../src/gate/gate.js';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { createWebhookServer, type WebhookServer } from '../../src/server/webhook.js';
import {
  addHook,
  client,
  OPS,
  protect,
  protectDeployRef,
  run,
  STRICT_POLICY,
  sandboxFixture,
  tempDir,
} from '../helpers.js';
import { verdictNote } from './helpers.js';

const SECRET = 'trust-secret';
const IMAGE = 'registry.example.com/root/helloworld';
let sb: Sandbox;
let srv: WebhookServer;
let botId: number;
const op = () => client(sb, 'operator');
const rv = () => client(sb, 'reviewer');
const settle = () => sb.settle(srv);
const head = async (branch: string) => (await op().Branches.show(OPS, branch)).commit.id as string;
const deployed = async () => String(await op().RepositoryFiles.showRaw(OPS, 'deployment.yml', 'deploy/prod'));

async function notesOf(iid: number): Promise<string[]> {
  return (await op().MergeRequestNotes.all(OPS, iid)).map((n) => String(n.body));
}
async function statusOf(sha: string): Promise<string | undefined> {
  const list = await op().Commits.allStatuses(OPS, sha);
  return list.find((s) => s.name === 'gitops-bot/approval')?.status;
}
/** operator approves afresh (GitLab answers 401 to a second approval by the same user). */
async function approve(iid: number, sha?: string) {
  await op()
    .MergeRequestApprovals.unapprove(OPS, iid)
    .catch(() => undefined);
  await op().MergeRequestApprovals.approve(OPS, iid, sha ? { sha } : {});
}
async function promoteTag(tag: string) {
  const r = await promote(
    {
      project: OPS,
      files: ['deployment.yml'],
      image: IMAGE,
      tag,
      targetBranch: 'main',
      assignees: ['operator'],
    },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  await settle();
  return { result: r, mr: await op().MergeRequests.show(OPS, r.mr!.iid) };
}

/** The reviewer's branch off main with service.yml set to `content`, and its MR. */
async function serviceMr(branch: string, title: string, content: string) {
  const r = rv();
  await r.Commits.create(OPS, branch, title, [{ action: 'update', filePath: 'service.yml', content }], {
    startBranch: 'main',
  });
  return r.MergeRequests.create(OPS, branch, 'main', title);
}

/** A clone of the ops repo as `user`, with git identity `name <email>` (free text in git). */
async function cloneAs(
  user: string,
  name: string,
  email: string,
): Promise<(...args: string[]) => Promise<string>> {
  const dir = await tempDir();
  const env = {
    ...process.env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: name,
    GIT_AUTHOR_EMAIL: email,
    GIT_COMMITTER_NAME: name,
    GIT_COMMITTER_EMAIL: email,
  };
  const remote = `${sb.url.replace('http://', `http://oauth2:${user}-token@`)}/${OPS}.git`;
  await run('git', ['clone', '-q', remote, 'ops'], { cwd: dir, env });
  const wt = join(dir, 'ops');
  return async (...args: string[]) => (await run('git', args, { cwd: wt, env })).stdout;
}

async function editFile(git: (...a: string[]) => Promise<string>, path: string, edit: (s: string) => string) {
  const root = (await git('rev-parse', '--show-toplevel')).trim();
  const { readFile } = await import('node:fs/promises');
  await writeFile(join(root, path), edit(await readFile(join(root, path), 'utf8')));
}

before(async () => {
  sb = await sandboxFixture();
  const o = op();
  await o.Commits.create(OPS, 'main', 'Policy', [
    {
      action: 'create',
      filePath: '.gitops-bot.yml',
      content: `${STRICT_POLICY}  - name: staging\n    match: { target_branches: [staging] }\n    approvals: { required: 0 }\n    merge: bot\n`,
    },
  ]);
  await o.Branches.create(OPS, 'deploy/prod', 'main');
  await o.Branches.create(OPS, 'staging', 'main'); // named by the policy, left unprotected
  await protect(sb, { name: 'main', push_access_level: 40, merge_access_level: 30 });
  const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  botId = (await gitlab.currentUser()).id;
  await protectDeployRef(sb, botId);
  srv = createWebhookServer({ ctx: { gitlab, botUserId: botId }, secret: SECRET, projects: [OPS] });
  const url = `${await srv.listen(0, '127.0.0.1')}/webhook`;
  await addHook(sb, url, SECRET);
});
after(async () => {
  await srv?.close();
  await sb?.close();
});

describe('trust only what a Developer cannot write', () => {
  test('control: an honest promotion approved by operator is merged and deployed', async (t) => {
    const { mr } = await promoteTag('ci-34');
    // The gate's request budget, on the bot's own MR into main in strict mode (unchanged
    // verdict: the status and the comment are already there).
    const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
    const { verdict: pending, requests } = await gate({ gitlab, botUserId: botId }, OPS, mr.iid);
    assert.equal(pending.state, 'pending');
    t.diagnostic(`gate requests: ${requests}`);
    assert.ok(requests <= 20, `${requests} requests`);
    await approve(mr.iid, mr.sha);
    await settle();
    const merged = await op().MergeRequests.show(OPS, mr.iid);
    assert.equal(merged.state, 'merged');
    assert.equal(await head('deploy/prod'), merged.merge_commit_sha);
    assert.match(await deployed(), /helloworld:ci-34/);
    assert.match(await verdictNote(sb, mr.iid), /rules read from `main`; evaluated at `[0-9a-f]{8}`/);
  });

  test('attack 1: a policy on a branch the attacker created is ignored; the MR is never merged', async () => {
    const before = await head('deploy/prod');
    const r = rv();
    await r.Branches.create(OPS, 'evil-base', 'main');
    await r.Commits.create(OPS, 'evil-base', 'My rules', [
      {
        action: 'update',
        filePath: '.gitops-bot.yml',
        content: STRICT_POLICY.replace('[main]', '[evil-base]').replace('required: 1', 'required: 0'),
      },
    ]);
    await r.Commits.create(
      OPS,
      'evil-head',
      'Evil image',
      [
        {
          action: 'update',
          filePath: 'deployment.yml',
          content: (await deployed()).replace(`${IMAGE}:ci-34`, 'attacker/evil:1'),
        },
      ],
      { startBranch: 'evil-base' },
    );
    const mr = await r.MergeRequests.create(OPS, 'evil-head', 'evil-base', 'Deploy evil');
    await settle();
    assert.equal((await op().MergeRequests.show(OPS, mr.iid)).state, 'opened');
    assert.equal(await head('deploy/prod'), before);
    assert.doesNotMatch(await deployed(), /attacker/);
    const note = await verdictNote(sb, mr.iid);
    assert.match(
      note,
      /target branch evil-base is not governed by the rules on main \(they govern main, staging\)/,
    );
    assert.match(
      note,
      /The \.gitops-bot\.yml on evil-base is ignored: gitops-bot reads its rules only from main/,
    );
    assert.equal(await statusOf(mr.sha), 'failed');
  });

  test('attack 1b: a branch the trusted policy names but nobody protected is refused', async () => {
    const r = rv();
    await r.Commits.create(OPS, 'to-staging', 'x', [{ action: 'create', filePath: 'x.txt', content: 'x' }], {
      startBranch: 'staging',
    });
    const mr = await r.MergeRequests.create(OPS, 'to-staging', 'staging', 'x');
    await settle();
    assert.match(
      await verdictNote(sb, mr.iid),
      /target branch staging is not protected, so a Developer could push to it: gitops-bot does not deploy from unprotected branches/,
    );
    assert.equal(
      (await op().MergeRequests.show(OPS, mr.iid)).state,
      'opened',
      'required: 0, merge: bot, still not merged',
    );
  });

  test('attack 2: a commit smuggled into the bot MR makes it foreign; approval does not merge it; promote discards it', async () => {
    const before = await head('deploy/prod');
    const { mr } = await promoteTag('ci-35');
    // reviewer pushes with git, posing as gitops-bot in the commit's identity fields.
    const git = await cloneAs('reviewer', 'gitops-bot', 'gitops-bot@example.com');
    await git('checkout', '-q', mr.source_branch);
    await editFile(git, 'deployment.yml', (t) =>
      t.replace(/(\n\s+)image: /, '$1securityContext: { privileged: true }$1image: '),
    );
    await git('commit', '-qam', 'Deploy helloworld ci-35 to main');
    await git('push', '-q', 'origin', mr.source_branch);
    await settle();
    const smuggled = await op().MergeRequests.show(OPS, mr.iid);
    assert.notEqual(smuggled.sha, mr.sha);
    await approve(mr.iid, smuggled.sha);
    await settle();
    assert.equal((await op().MergeRequests.show(OPS, mr.iid)).state, 'opened');
    assert.equal(await head('deploy/prod'), before);
    assert.equal(await statusOf(smuggled.sha), 'failed');
    const note = await verdictNote(sb, mr.iid);
    assert.match(note, /@reviewer pushed changes gitops-bot did not write: deployment\.yml \(1 hunk\)/);
    assert.match(note, /\+.*privileged: true/, 'the real diff at the evaluated head is shown');
    assert.match(note, new RegExp(`evaluated at \`${smuggled.sha.slice(0, 8)}\``));
    // The next promotion resets the branch onto main with one commit of its own, and says so.
    const { result, mr: after } = await promoteTag('ci-36');
    assert.equal(result.action, 'updated');
    assert.match(result.reason, /discarded foreign commits pushed by reviewer/);
    assert.doesNotMatch(
      String(await op().RepositoryFiles.showRaw(OPS, 'deployment.yml', after.sha)),
      /privileged/,
    );
    assert.match(await verdictNote(sb, mr.iid), /0\/1 approvals from operator/);
  });

  test('attack 2b: the same through the Commits API with the bot as author', async () => {
    const { mr } = await promoteTag('ci-37');
    const text = String(await rv().RepositoryFiles.showRaw(OPS, 'deployment.yml', mr.source_branch));
    await rv().Commits.create(
      OPS,
      mr.source_branch,
      'Deploy helloworld ci-37 to main',
      [
        {
          action: 'update',
          filePath: 'deployment.yml',
          content: text.replace('replicas: 1', 'replicas: 50'),
        },
      ],
      { authorName: 'gitops-bot', authorEmail: 'gitops-bot@example.com' } as never,
    );
    await settle();
    await approve(mr.iid);
    await settle();
    assert.equal((await op().MergeRequests.show(OPS, mr.iid)).state, 'opened');
    assert.match(
      await verdictNote(sb, mr.iid),
      /@reviewer pushed changes gitops-bot did not write: deployment\.yml/,
    );
    // Leave a clean MR for the next tests.
    await op().MergeRequestApprovals.unapprove(OPS, mr.iid);
    assert.match((await promoteTag('ci-38')).result.reason, /discarded foreign commits pushed by reviewer/);
  });

  test('attack 4: who pushed is taken from GitLab, not from git identities', async () => {
    const mr = await serviceMr('replicas', 'Two replicas', 'kind: Service # 2\n');
    // operator pushes a commit to the MR posing as gitops-bot, then approves.
    const git = await cloneAs('operator', 'gitops-bot', 'gitops-bot@example.com');
    await git('checkout', '-q', 'replicas');
    await editFile(git, 'service.yml', (t) => `${t}# tuned\n`);
    await git('commit', '-qam', 'Tune');
    await git('push', '-q', 'origin', 'replicas');
    await settle();
    await approve(mr.iid);
    await settle();
    assert.match(
      await verdictNote(sb, mr.iid),
      /@operator \| not counted: pushed commits to the merge request/,
    );
    assert.equal((await op().MergeRequests.show(OPS, mr.iid)).state, 'opened');
    await op().MergeRequests.edit(OPS, mr.iid, { stateEvent: 'close' });
  });

  test('attack 4b: a commit written in the operator’s name by someone else does not cost his approval', async () => {
    const r = rv();
    const git = await cloneAs('reviewer', 'Operator', 'operator@example.com');
    await git('checkout', '-q', '-b', 'ingress', 'origin/main');
    await editFile(git, 'ingress.yml', (t) => `${t}# host\n`);
    await git('commit', '-qam', 'Ingress host');
    await git('push', '-q', 'origin', 'ingress');
    const mr = await r.MergeRequests.create(OPS, 'ingress', 'main', 'Ingress host');
    await approve(mr.iid);
    await settle();
    const merged = await op().MergeRequests.show(OPS, mr.iid);
    assert.equal(merged.state, 'merged', await verdictNote(sb, mr.iid));
    assert.equal(await head('deploy/prod'), merged.merge_commit_sha);
  });

  test('attack 3: a bypassing merge holds deploy_ref; the next honest promotion does not carry it along', async () => {
    const before = await head('deploy/prod');
    const r = rv();
    const bypass = await serviceMr('hostnet', 'Host network', 'kind: Service # hostNetwork\n');
    await r.MergeRequests.merge(OPS, bypass.iid); // reviewer may merge into main
    await settle();
    const bypassSha = String((await op().MergeRequests.show(OPS, bypass.iid)).merge_commit_sha);
    assert.equal(await head('deploy/prod'), before);
    const alert = (await notesOf(bypass.iid)).find((n) => n.includes('Not deployed')) ?? '';
    assert.match(
      alert,
      /!\d+ was merged by reviewer without passing the rules \(0\/1 approvals from operator\)/,
    );
    assert.match(
      alert,
      new RegExp(
        `deploy/prod stays at ${before.slice(0, 8)} and will not move past ${bypassSha.slice(0, 8)}`,
      ),
    );
    assert.match(
      alert,
      /revert .* through a merge request that passes the rules, or have 1 eligible approver \(operator\) comment `\/gitops-bot accept/,
    );
    // The next honest promotion, approved and merged by the bot, does not move deploy_ref.
    const { mr } = await promoteTag('ci-39');
    await approve(mr.iid);
    await settle();
    assert.equal((await op().MergeRequests.show(OPS, mr.iid)).state, 'merged');
    assert.equal(await head('deploy/prod'), before, 'the bypassed commit did not ride along');
    assert.ok(
      (await notesOf(mr.iid)).some((n) => /Approved and merged, not deployed yet.*held .* by /.test(n)),
    );
    // The bypasser cannot accept his own merge; the operator can.
    await r.MergeRequestNotes.create(OPS, bypass.iid, `/gitops-bot accept ${bypassSha.slice(0, 8)}`);
    await settle();
    assert.equal(await head('deploy/prod'), before);
    await op().MergeRequestNotes.create(OPS, bypass.iid, `/gitops-bot accept ${bypassSha.slice(0, 8)}`);
    await settle();
    assert.equal(await head('deploy/prod'), await head('main'));
    assert.ok((await notesOf(bypass.iid)).some((n) => /Accepted.*accepted by operator/.test(n)));
  });

  test('attack 3b: a Maintainer’s direct push that weakens the policy is not in force until reverted', async () => {
    const before = await head('deploy/prod');
    const weak = await op().Commits.create(OPS, 'main', 'No approvals', [
      {
        action: 'update',
        filePath: '.gitops-bot.yml',
        content: String(await op().RepositoryFiles.showRaw(OPS, '.gitops-bot.yml', 'main')).replace(
          'required: 1',
          'required: 0',
        ),
      },
    ]);
    await settle();
    assert.equal(await head('deploy/prod'), before);
    const comments = await op().Commits.allComments(OPS, weak.id);
    assert.ok(
      comments.some((c) =>
        /pushed to main directly, not through a merge request, by operator/.test(String(c.note)),
      ),
    );
    // A new promotion is still judged by the rules as deployed.
    const { mr } = await promoteTag('ci-40');
    const note = await verdictNote(sb, mr.iid);
    assert.match(note, /0\/1 approvals from operator/);
    assert.match(note, /rules read from `main as deployed at deploy\/prod`/);
    assert.match(note, /have not reached deploy\/prod through approved history/);
    // The way out: a revert through an MR that passes the rules.
    const git = await cloneAs('reviewer', 'reviewer', 'reviewer@example.com');
    await git('checkout', '-q', '-b', 'revert-weak', 'origin/main');
    await git('revert', '--no-edit', weak.id);
    await git('push', '-q', 'origin', 'revert-weak');
    const revert = await rv().MergeRequests.create(OPS, 'revert-weak', 'main', 'Revert "No approvals"');
    await approve(revert.iid);
    await settle();
    assert.equal((await op().MergeRequests.show(OPS, revert.iid)).state, 'merged');
    assert.equal(await head('deploy/prod'), await head('main'));
  });
});

test('gitops-bot gate --policy FILE: rules from a file outside the repo; a bad file is exit 2 naming it', async () => {
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  const dir = await tempDir();
  const env = { ...process.env, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' };
  const { mr } = await promoteTag('ci-41');
  const good = join(dir, 'rules.yml');
  await writeFile(
    good,
    'version: 1\nenvironments:\n  - name: outside\n    match: { target_branches: [main] }\n    approvals: { required: 2, users: [operator, root] }\n',
  );
  const gateCli = (file: string) =>
    run(
      process.execPath,
      [cli, 'gate', '--project', OPS, '--mr', String(mr.iid), '--policy', file, '--json'],
      {
        env,
      },
    ).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  const r = await gateCli(good);
  assert.equal(r.code, 6, r.stderr);
  assert.match(JSON.parse(r.stdout).verdict.summary, /^0\/2 approvals from operator, root$/);
  assert.match(
    await verdictNote(sb, mr.iid),
    new RegExp(`rules read from \`--policy ${good.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\``),
  );
  const bad = join(dir, 'bad.yml');
  await writeFile(bad, 'version: 1\nenvironments: []\n');
  const b = await gateCli(bad);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /bad\.yml: environments: Too small/);
});
