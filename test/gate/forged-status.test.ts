// A Developer may post commit statuses, also under the gate's name. Whatever they post, after
// the next evaluation the newest gitops-bot/approval status on the MR's head is the bot's, in
// the verdict's state: a forged `success` never stands while the verdict is `pending`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gate, STATUS_NAME } from '../../src/gate/gate.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS } from '../helpers.js';
import { gateContext, gateSandbox, serviceBump } from './helpers.js';

let sb: Sandbox;
let botId: number;

/** The newest status of the gate's name on `sha` (highest id), as GitLab lists them. */
async function newest(sha: string) {
  const list = (await client(sb, 'operator').Commits.allStatuses(OPS, sha, { name: STATUS_NAME })) as Array<{
    id: number;
    status: string;
    description: string;
    author: { id: number };
  }>;
  const top = [...list].sort((a, b) => b.id - a.id)[0];
  return { state: top.status, description: top.description, authorId: top.author.id };
}

const botWrites = (from: number) =>
  sb.requests
    .slice(from)
    .filter((r) => r.user === 'gitops-bot' && r.method !== 'GET' && r.method !== 'HEAD')
    .map((r) => `${r.method} ${r.path}`);

before(async () => {
  ({ sb, botId } = await gateSandbox());
});
after(() => sb?.close());

test('a Developer’s success under the gate’s name while the verdict is pending: the bot’s pending is newest again', async () => {
  const mr = await serviceBump(sb, 'forged-success', 'kind: Service\nf: 1\n');
  const ctx = gateContext(sb, botId);
  const { verdict, sha } = await gate(ctx, OPS, mr.iid);
  assert.equal(verdict.state, 'pending');
  await client(sb, 'reviewer').Commits.editStatus(OPS, sha, 'success', {
    name: STATUS_NAME,
    description: 'Ready to deploy',
  });
  assert.equal((await newest(sha)).state, 'success', 'the forgery is the newest status');
  await gate(ctx, OPS, mr.iid);
  assert.deepEqual(await newest(sha), {
    state: 'pending',
    description: verdict.summary.slice(0, 255),
    authorId: botId,
  });
  // and now that it is the bot's own, the next evaluation writes no status
  const from = sb.requests.length;
  await gate(ctx, OPS, mr.iid);
  assert.deepEqual(botWrites(from), []);
});

test('a Developer’s success in another pipeline of the head (another ref): compared with the newest, replaced', async () => {
  const mr = await serviceBump(sb, 'forged-pipeline', 'kind: Service\nf: 2\n');
  const ctx = gateContext(sb, botId);
  const { verdict, sha } = await gate(ctx, OPS, mr.iid);
  // another ref makes another pipeline: the bot's pending stays the latest of the first one
  await client(sb, 'reviewer').Commits.editStatus(OPS, sha, 'success', {
    name: STATUS_NAME,
    description: 'Ready to deploy',
    ref: 'main',
  });
  const listed = await client(sb, 'operator').Commits.allStatuses(OPS, sha, { name: STATUS_NAME });
  assert.equal(listed.length, 2, 'one latest status per pipeline');
  assert.equal((await newest(sha)).state, 'success');
  await gate(ctx, OPS, mr.iid);
  assert.deepEqual(await newest(sha), {
    state: 'pending',
    description: verdict.summary.slice(0, 255),
    authorId: botId,
  });
});
