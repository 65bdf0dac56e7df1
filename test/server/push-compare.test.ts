// A push whose compare GitLab cannot give (it fails after the client's retries, or its
// diffs overflow GitLab's limits: `compare_timeout`) may have changed anything: serve
// re-evaluates every open MR it could affect instead of none. `serve` runs in-process
// against the sandbox, which delivers the webhooks and injects the faults.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GitLabGate } from '../../src/gitlab/client.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { createWebhookServer, type WebhookServer } from '../../src/server/webhook.js';
import { addApps, addHook, client, OPS, protect, sandboxFixture } from '../helpers.js';
import { botRequestsDuring, gatedMrs, promoteApp, verdictNote } from './helpers.js';

const SECRET = 'push-compare-secret';
const APPS = 3;
let sb: Sandbox;
let srv: WebhookServer;
const op = () => client(sb, 'operator');
const settle = () => sb.settle(srv);
const mrs: number[] = [];

const policy = (required: number) =>
  `version: 1\nenvironments:\n  - name: prod\n    approvals: { required: ${required} }\n`;

before(async () => {
  sb = await sandboxFixture();
  await protect(sb, { name: 'main', push_access_level: 40, merge_access_level: 30 });
  await addApps(sb, APPS, (i) => `root/app${i}:ci-1`);
  await op().Commits.create(OPS, 'main', 'Policy', [
    { action: 'create', filePath: '.gitops-bot.yml', content: policy(1) },
    { action: 'create', filePath: 'README.md', content: '# ops\n' },
  ]);
  const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  srv = createWebhookServer({
    ctx: { gitlab, botUserId: (await gitlab.currentUser()).id },
    secret: SECRET,
    projects: [OPS],
    worker: false,
  });
  await addHook(sb, `${await srv.listen(0, '127.0.0.1')}/webhook`, SECRET);
  for (let i = 0; i < APPS; i++) mrs.push(await promoteApp(sb, i, 'push-compare'));
  await settle();
  for (const iid of mrs) assert.match(await verdictNote(sb, iid), /0\/1 approvals/);
});
after(async () => {
  await srv?.close();
  await sb?.close();
});

test('a README-only push whose compare fits the limits re-evaluates none (the control: the compare decides)', async () => {
  const reqs = await botRequestsDuring(sb, srv, () =>
    op().Commits.create(OPS, 'main', 'A short README', [
      { action: 'update', filePath: 'README.md', content: '# ops, again\n' },
    ]),
  );
  assert.deepEqual(gatedMrs(reqs), []);
});

test('a policy change whose compare fails (503 on every try) still re-evaluates every open MR', async () => {
  sb.setFaults('rate=1,kinds=503,only=GET /projects/:id/repository/compare');
  const since = new Date().toISOString();
  let reqs: Array<{ method: string; path: string }>;
  // every try of the compare answered 503 (a faulted answer names no user)
  let faulted = 0;
  try {
    reqs = await botRequestsDuring(sb, srv, () =>
      op().Commits.create(OPS, 'main', 'Policy: two approvals', [
        { action: 'update', filePath: '.gitops-bot.yml', content: policy(2) },
      ]),
    );
    faulted = sb.requests.filter((r) => r.path.endsWith('/repository/compare') && r.status === 503).length;
  } finally {
    sb.setFaults(null);
  }
  assert.ok(faulted > 0, 'the compare was faulted');
  assert.equal(
    sb.requests.filter((r) => r.path.endsWith('/repository/compare') && r.status === 200 && r.at >= since)
      .length,
    0,
    'no compare succeeded',
  );
  assert.deepEqual(
    gatedMrs(reqs),
    [...mrs].sort((a, b) => a - b),
  );
  for (const iid of mrs) assert.match(await verdictNote(sb, iid), /0\/2 approvals/);
});

test('a push whose compare overflows GitLab’s diff limits (compare_timeout) re-evaluates every open MR', async () => {
  // A README of 5,000 lines: over a compare's 5,000-line limit, so GitLab lists no file.
  const long = Array.from({ length: 5000 }, (_, i) => `line ${i}`).join('\n');
  const reqs = await botRequestsDuring(sb, srv, () =>
    op().Commits.create(OPS, 'main', 'A long README', [
      { action: 'update', filePath: 'README.md', content: `${long}\n` },
    ]),
  );
  assert.deepEqual(
    gatedMrs(reqs),
    [...mrs].sort((a, b) => a - b),
  );
});
