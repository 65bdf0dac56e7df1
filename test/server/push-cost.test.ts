// Issue 16: a push's cost does not grow with the open MRs. `serve` (in-process, so that its
// clock can be set) runs against the sandbox, which delivers the webhooks; gitops-bot's
// requests are counted at the sandbox. A README-only push to main costs the same few
// requests with 3 and 12 open bot MRs; a policy change re-evaluates them all; a freeze
// window starting re-evaluates the MRs it governs, at its start, with no event.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GitLabGate } from '../../src/gitlab/client.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { createWebhookServer, type WebhookServer } from '../../src/server/webhook.js';
import { addApps, addHook, client, OPS, protect, sandboxFixture, until } from '../helpers.js';
import { botRequestsDuring, gatedMrs, promoteApp, verdictNote } from './helpers.js';

const SECRET = 'push-cost-secret';
let sb: Sandbox;
let srv: WebhookServer;
/** serve's clock runs this far ahead of the real one (the freeze test moves it) */
let skew = 0;
let botId: number;
const op = () => client(sb, 'operator');
const APPS = 12;
const settle = () => sb.settle(srv);
const mrs: number[] = [];

/** `n` more promotions by gitops-bot, each of an app of its own: `n` more open bot MRs into main. */
async function openBotMrs(n: number): Promise<void> {
  for (let k = 0; k < n; k++) mrs.push(await promoteApp(sb, mrs.length, 'push-cost'));
  await settle();
}

let readme = 0;
const pushReadme = () =>
  op().Commits.create(OPS, 'main', `Docs ${++readme}`, [
    { action: readme === 1 ? 'create' : 'update', filePath: 'README.md', content: `# ops ${readme}\n` },
  ]);
const pushPolicy = (text: string, action: 'create' | 'update') =>
  op().Commits.create(OPS, 'main', 'Policy', [{ action, filePath: '.gitops-bot.yml', content: text }]);

before(async () => {
  sb = await sandboxFixture();
  await protect(sb, { name: 'main', push_access_level: 40, merge_access_level: 30 });
  await addApps(sb, APPS, (i) => `root/app${i}:ci-1`);
  const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  botId = (await gitlab.currentUser()).id;
  srv = createWebhookServer({
    ctx: { gitlab, botUserId: botId, now: () => new Date(Date.now() + skew) },
    secret: SECRET,
    projects: [OPS],
    worker: false,
  });
  await addHook(sb, `${await srv.listen(0, '127.0.0.1')}/webhook`, SECRET);
});
after(async () => {
  await srv?.close();
  await sb?.close();
});

test('a README-only push to main costs the same few requests with 3 and 12 open bot MRs, and gates none', async (t) => {
  await openBotMrs(3);
  await pushReadme(); // the README is created: every later push only updates it
  const three = await botRequestsDuring(sb, srv, pushReadme);
  await openBotMrs(9);
  const twelve = await botRequestsDuring(sb, srv, pushReadme);
  t.diagnostic(`requests: ${three.length} with 3 MRs, ${twelve.length} with 12`);
  assert.deepEqual(
    twelve.map((r) => `${r.method} ${r.path}`),
    three.map((r) => `${r.method} ${r.path}`),
  );
  assert.ok(twelve.length <= 5, twelve.map((r) => `${r.method} ${r.path}`).join('\n'));
  assert.deepEqual(gatedMrs(twelve), []);
  assert.ok(
    twelve.every((r) => r.method === 'GET'),
    'no writes',
  );
});

test('a push changing the policy file re-evaluates every open MR', async () => {
  assert.equal(mrs.length, APPS);
  const reqs = await botRequestsDuring(sb, srv, () =>
    pushPolicy('version: 1\nenvironments:\n  - name: prod\n    approvals: { required: 2 }\n', 'create'),
  );
  assert.deepEqual(
    gatedMrs(reqs),
    [...mrs].sort((a, b) => a - b),
  );
  for (const iid of mrs) assert.match(await verdictNote(sb, iid), /0\/2 approvals/);
});

const MIN = 60_000;
/**
 * Sets serve's clock 12 s before a whole minute and returns a policy frozen from that minute
 * on for half an hour (to the end of the day at most: a window does not cross midnight).
 */
function freezeSoon(reason: string): string {
  const start = Math.ceil(Date.now() / MIN) * MIN + MIN;
  skew = start - 12_000 - Date.now();
  const hhmm = (t: number) => new Date(t).toISOString().slice(11, 16);
  const end =
    new Date(start + 30 * MIN).getUTCDate() === new Date(start).getUTCDate()
      ? hhmm(start + 30 * MIN)
      : '24:00';
  return [
    'version: 1',
    'environments:',
    '  - name: prod',
    '    approvals: { required: 2 }',
    `    freeze: [{ days: [mon, tue, wed, thu, fri, sat, sun], from: "${hhmm(start)}", to: "${end}", reason: ${reason} }]`,
    '',
  ].join('\n');
}

/** Waits for every MR's verdict to name the freeze `reason`; the MRs gated meanwhile. */
async function frozenBy(reason: string, from: number): Promise<number[]> {
  await until(
    async () =>
      (await Promise.all(mrs.map((iid) => verdictNote(sb, iid)))).every(
        (n) => n.includes(`freeze window`) && n.includes(reason),
      ),
    `every MR into main to show the freeze window (${reason})`,
    250,
    120,
  );
  await settle();
  return gatedMrs(sb.requests.slice(from).filter((r) => r.user === 'gitops-bot'));
}

test('a freeze window starting re-evaluates the MRs it governs at its start, with no event', async () => {
  assert.equal(mrs.length, APPS);
  // The window starts 12 s from now on serve's clock: the policy change's own
  // re-evaluations finish before it.
  await pushPolicy(freezeSoon('first freeze'), 'update');
  await settle();
  for (const iid of mrs) assert.doesNotMatch(await verdictNote(sb, iid), /freeze window/);
  assert.deepEqual(
    await frozenBy('first freeze', sb.requests.length),
    [...mrs].sort((a, b) => a - b),
  );
});

test('a restarted serve times the freeze windows of the rules it finds, with no event', async () => {
  assert.equal(mrs.length, APPS);
  await srv.close();
  // changed while no serve runs (its hook points nowhere now)
  await pushPolicy(freezeSoon('second freeze'), 'update');
  await sb.idle();
  const from = sb.requests.length;
  srv = createWebhookServer({
    ctx: {
      gitlab: new GitLabGate({ url: sb.url, token: 'gitops-bot-token' }),
      botUserId: botId,
      now: () => new Date(Date.now() + skew),
    },
    secret: SECRET,
    projects: [OPS],
    worker: false,
  });
  await srv.listen(0, '127.0.0.1');
  assert.deepEqual(
    await frozenBy('second freeze', from),
    [...mrs].sort((a, b) => a - b),
  );
});
