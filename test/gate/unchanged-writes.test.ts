// Issue 16: re-evaluating an MR whose facts did not change writes nothing: no status posted
// again, no comment edited. Counted at the sandbox, from its request log.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gate, STATUS_NAME } from '../../src/gate/gate.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS } from '../helpers.js';
import { gateContext, gateSandbox, serviceBump } from './helpers.js';

let sb: Sandbox;
let botId: number;
/** The bot's requests at the sandbox from `from` on, writes apart. */
const botRequests = (from: number) => {
  const mine = sb.requests.slice(from).filter((r) => r.user === 'gitops-bot');
  return { all: mine.length, writes: mine.filter((r) => r.method !== 'GET' && r.method !== 'HEAD') };
};

before(async () => {
  ({ sb, botId } = await gateSandbox());
});
after(() => sb?.close());

test('gate twice with unchanged facts: the second run makes zero write requests', async () => {
  const mr = await serviceBump(sb, 'unchanged', 'kind: Service\n');
  const ctx = gateContext(sb, botId);
  const first = sb.requests.length;
  const one = await gate(ctx, OPS, mr.iid);
  assert.equal(one.verdict.state, 'pending');
  assert.ok(botRequests(first).writes.length >= 2, 'the first run posts the status and the comment');
  const second = sb.requests.length;
  const two = await gate(ctx, OPS, mr.iid);
  assert.equal(two.verdict.summary, one.verdict.summary);
  assert.deepEqual(botRequests(second).writes, []);
});

test('a status someone else posted under the gate’s name is overwritten, even with the same words', async () => {
  const mr = await serviceBump(sb, 'forged-status', 'kind: Service\nx: 1\n');
  const ctx = gateContext(sb, botId);
  const { verdict, sha } = await gate(ctx, OPS, mr.iid);
  // reviewer (a Developer) posts the gate's own state and words under its name
  await client(sb, 'reviewer').Commits.editStatus(OPS, sha, 'failed', {
    name: STATUS_NAME,
    description: 'x',
  });
  await client(sb, 'reviewer').Commits.editStatus(OPS, sha, verdict.state as never, {
    name: STATUS_NAME,
    description: verdict.summary,
  });
  const from = sb.requests.length;
  await gate(ctx, OPS, mr.iid);
  const post = `POST /api/v4/projects/${encodeURIComponent(OPS)}/statuses/${sha}`;
  const writes = botRequests(from).writes.map((r) => `${r.method} ${r.path}`);
  // GitLab refuses pending again on the bot's own older record (the reviewer's statuses
  // superseded it), so it moves that one on and posts pending anew, the newest status; the
  // comment, gitops-bot's own and unchanged, is not written.
  assert.deepEqual(writes, [post, post, post]);
  const listed = await client(sb, 'operator').Commits.allStatuses(OPS, sha, { name: STATUS_NAME });
  const newest = [...listed].sort((a, b) => Number(b.id) - Number(a.id))[0];
  assert.equal(newest.status, verdict.state);
  assert.equal((newest.author as { id: number }).id, botId);
});

test('a changed verdict is published: the status and the comment are written again', async () => {
  const mr = await serviceBump(sb, 'changed', 'kind: Service\ny: 2\n');
  const ctx = gateContext(sb, botId);
  await gate(ctx, OPS, mr.iid);
  await client(sb, 'operator').MergeRequestApprovals.approve(OPS, mr.iid);
  const from = sb.requests.length;
  const r = await gate(ctx, OPS, mr.iid);
  assert.equal(r.verdict.state, 'success');
  const writes = botRequests(from).writes.map((x) => x.method);
  assert.ok(writes.includes('POST') && writes.includes('PUT'), writes.join(', '));
});
