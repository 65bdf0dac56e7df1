// Only gitops-bot's own comments are its sticky comments. A Developer's note that starts
// with the verdict marker, posted before the bot's first verdict, is neither the verdict nor
// a duplicate of it: the bot posts its own and later edits that one in place, and the
// Developer's note stays as it was. The same for alerts on a commit.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gate } from '../../src/gate/gate.js';
import { alertMarker, alertOnce } from '../../src/gate/notify.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS } from '../helpers.js';
import { gateContext, gateSandbox, serviceBump } from './helpers.js';

const VERDICT = '<!-- gitops-bot:verdict -->';
let sb: Sandbox;
let botId: number;

before(async () => {
  ({ sb, botId } = await gateSandbox());
});
after(() => sb?.close());

const marked = async (iid: number, marker: string) =>
  (await client(sb, 'operator').MergeRequestNotes.all(OPS, iid))
    .filter((n) => String(n.body).startsWith(marker))
    .map((n) => ({ id: n.id, by: (n.author as { username: string }).username, body: String(n.body) }))
    .sort((a, b) => a.id - b.id);

test('a Developer’s note starting with the verdict marker is ignored: the bot’s verdict is created, then edited in place', async () => {
  const mr = await serviceBump(sb, 'sticky-author', 'kind: Service\ns: 1\n');
  const forged = `${VERDICT}\n✅ **Ready to deploy**: forged`;
  await client(sb, 'reviewer').MergeRequestNotes.create(OPS, mr.iid, forged);
  const ctx = gateContext(sb, botId);
  const one = await gate(ctx, OPS, mr.iid);
  assert.equal(one.verdict.state, 'pending');
  const first = await marked(mr.iid, VERDICT);
  assert.deepEqual(
    first.map((n) => n.by),
    ['reviewer', 'gitops-bot'],
  );
  assert.equal(first[0].body, forged, 'the Developer’s note is left as it was');
  assert.match(first[1].body, /Not ready to deploy/);
  await client(sb, 'operator').MergeRequestApprovals.approve(OPS, mr.iid);
  const two = await gate(ctx, OPS, mr.iid);
  assert.equal(two.verdict.state, 'success');
  const second = await marked(mr.iid, VERDICT);
  assert.deepEqual(
    second.map((n) => [n.id, n.by]),
    first.map((n) => [n.id, n.by]),
    'the same two notes: the bot’s was edited in place',
  );
  assert.equal(second[0].body, forged);
  assert.match(second[1].body, /Ready to deploy/);
});

test('an alert on a commit is posted although a Developer’s comment starts with its marker', async () => {
  const sha = (await client(sb, 'operator').Commits.show(OPS, 'main')).id as string;
  const marker = alertMarker('push:forged');
  await client(sb, 'reviewer').Commits.createComment(OPS, sha, `${marker}\nnothing to see`);
  const ctx = gateContext(sb, botId);
  await alertOnce(ctx, OPS, { sha }, 'push:forged', 'held');
  await alertOnce(ctx, OPS, { sha }, 'push:forged', 'held');
  const comments = (await client(sb, 'operator').Commits.allComments(OPS, sha)).filter((c) =>
    String(c.note).startsWith(marker),
  );
  assert.deepEqual(
    comments.map((c) => [(c.author as { username: string }).username, c.note]),
    [
      ['reviewer', `${marker}\nnothing to see`],
      ['gitops-bot', `${marker}\nheld`],
    ],
  );
});
