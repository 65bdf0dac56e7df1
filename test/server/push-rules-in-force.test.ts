// Strict mode: the rules in force are the deploy ref's until the head's reach it, and they
// may govern a branch the head's rules no longer name. A push to that branch that changes a
// manifest re-evaluates the MRs into it that change the same manifest (their bump is
// measured from the branch); a push that changes none reads no more rules. `serve` runs
// in-process against the sandbox, which delivers the webhooks.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { needsRulesInForce, type PushFacts } from '../../src/server/push-scope.js';
import { createWebhookServer, type WebhookServer } from '../../src/server/webhook.js';
import {
  addHook,
  client,
  OPS,
  protect,
  protectDeployRef,
  STRICT_POLICY,
  sandboxFixture,
} from '../helpers.js';
import { botRequestsDuring, verdictNote } from './helpers.js';

const SECRET = 'push-rules-in-force-secret';
const IMAGE = 'ghcr.io/acme/api';
/** the rules deployed at deploy/prod: they govern staging too */
const DEPLOYED = `${STRICT_POLICY}  - name: staging
    match: { target_branches: [staging] }
    approvals: { required: 1, users: [operator] }
    escalation: [{ when: major, extra_approvals: 2 }]
`;

let sb: Sandbox;
let srv: WebhookServer;
const op = () => client(sb, 'operator');
const settle = () => sb.settle(srv);
let mr = 0;

const mrReads = (reqs: Array<{ method: string; path: string }>, iid: number) =>
  reqs.filter(
    (r) =>
      r.method === 'GET' && r.path === `/api/v4/projects/${encodeURIComponent(OPS)}/merge_requests/${iid}`,
  );

before(async () => {
  sb = await sandboxFixture();
  const o = op();
  const dep = String(await o.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await o.Commits.create(OPS, 'main', 'Rules, and app a at 1.0.0', [
    { action: 'create', filePath: '.gitops-bot.yml', content: DEPLOYED },
    {
      action: 'create',
      filePath: 'apps/a.yml',
      content: dep.replace('registry.example.com/root/helloworld:ci-33', `${IMAGE}:1.0.0`),
    },
  ]);
  for (const b of ['deploy/prod', 'staging']) await o.Branches.create(OPS, b, 'main');
  await protect(sb, { name: 'main', push_access_level: 40, merge_access_level: 30 });
  await protect(sb, { name: 'staging', push_access_level: 40, merge_access_level: 30 });
  const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  const bot = await gitlab.currentUser();
  await protectDeployRef(sb, bot.id);
  srv = createWebhookServer({ ctx: { gitlab, botUserId: bot.id }, secret: SECRET, projects: [OPS] });
  await addHook(sb, `${await srv.listen(0, '127.0.0.1')}/webhook`, SECRET);
  // A Maintainer pushes rules without staging to main: deploy/prod holds (a direct push),
  // so the deployed rules, with staging, stay in force.
  await o.Commits.create(OPS, 'main', 'Rules: staging is not ours any more', [
    { action: 'update', filePath: '.gitops-bot.yml', content: STRICT_POLICY },
  ]);
  await settle();
  assert.equal(
    String(await o.RepositoryFiles.showRaw(OPS, '.gitops-bot.yml', 'deploy/prod')),
    DEPLOYED,
    'the deployed rules govern staging',
  );
  const r = await promote(
    { project: OPS, files: ['apps/a.yml'], image: IMAGE, tag: '1.1.0', targetBranch: 'staging' },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  mr = r.mr!.iid;
  await settle();
  assert.match(await verdictNote(sb, mr), /0\/1 approvals from operator/);
});
after(async () => {
  await srv?.close();
  await sb?.close();
});

test('a README-only push to staging reads no more rules and re-evaluates nothing', async () => {
  const reqs = await botRequestsDuring(sb, srv, () =>
    op().Commits.create(OPS, 'staging', 'Docs', [
      { action: 'create', filePath: 'README.md', content: '# s\n' },
    ]),
  );
  assert.deepEqual(mrReads(reqs, mr), []);
  // the head's policy only: not the deploy ref's, nor main's protection (rulesInForce reads)
  const policyReads = reqs.filter((r) =>
    r.path.endsWith(`/repository/files/${encodeURIComponent('.gitops-bot.yml')}/raw`),
  );
  assert.equal(policyReads.length, 1, reqs.map((r) => `${r.method} ${r.path}`).join('\n'));
  assert.ok(!reqs.some((r) => r.path.endsWith('/repository/branches/main')));
});

test('a push to staging moving apps/a.yml 1.0.0 → 0.9.0 re-evaluates its MR under the rules in force (the deploy ref’s)', async () => {
  const dep = String(await op().RepositoryFiles.showRaw(OPS, 'apps/a.yml', 'staging'));
  const reqs = await botRequestsDuring(sb, srv, () =>
    op().Commits.create(OPS, 'staging', 'app a back to 0.9.0', [
      { action: 'update', filePath: 'apps/a.yml', content: dep.replace(`${IMAGE}:1.0.0`, `${IMAGE}:0.9.0`) },
    ]),
  );
  assert.ok(mrReads(reqs, mr).length > 0, `!${mr} was gated again`);
  assert.match(await verdictNote(sb, mr), /0\/3 approvals from operator \(major bump: \+2\)/);
});

const BASE: PushFacts = {
  branch: 'staging',
  changedPaths: ['apps/a.yml'],
  defaultBranch: 'main',
  governed: ['main'],
  deployRefs: ['deploy/prod'],
};
const rows: Array<[string, Partial<PushFacts>, boolean]> = [
  ['a manifest changed on a branch the head’s rules do not govern: read the rules in force', {}, true],
  ['the head’s rules govern the branch already', { governed: ['main', 'staging'] }, false],
  ['no manifest changed: no MR reads the branch’s files', { changedPaths: ['README.md'] }, false],
  ['nothing changed', { changedPaths: [] }, false],
  ['what changed is not known: every MR into the branch is listed anyway', { changedPaths: null }, false],
  [
    'the policy copy changed: every MR into the branch is listed anyway',
    { changedPaths: ['.gitops-bot.yml', 'apps/a.yml'] },
    false,
  ],
];
for (const [name, facts, want] of rows)
  test(`needsRulesInForce: ${name}`, () => assert.equal(needsRulesInForce({ ...BASE, ...facts }), want));
