// The sandbox's commit statuses as GitLab's CreateCommitStatusService keeps them: the caller's
// own pending/running status moves on, anyone else's is never touched; the newest status of a
// name in a pipeline is the latest, older ones retried; each pipeline lists its own latest.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, failure, OPS, sandboxFixture } from '../helpers.js';

let sb: Sandbox;
let sha: string;
type Listed = { id: number; status: string; author: { username: string }; pipeline_id: number };

before(async () => {
  sb = await sandboxFixture();
  sha = (await client(sb, 'operator').Commits.show(OPS, 'main')).id as string;
});
after(() => sb?.close());

const list = async (name: string, all = false) =>
  (await client(sb, 'operator').Commits.allStatuses(OPS, sha, { name, all })) as unknown as Listed[];

test('another user’s status of the same name makes a new status; the older one is retried, still pending', async () => {
  await client(sb, 'gitops-bot').Commits.editStatus(OPS, sha, 'pending', { name: 'u/one' });
  await client(sb, 'reviewer').Commits.editStatus(OPS, sha, 'success', { name: 'u/one' });
  const all = await list('u/one', true);
  assert.deepEqual(
    all.map((s) => [s.author.username, s.status]),
    [
      ['gitops-bot', 'pending'],
      ['reviewer', 'success'],
    ],
  );
  assert.deepEqual(
    (await list('u/one')).map((s) => s.author.username),
    ['reviewer'],
  );
  // GitLab finds the bot's own (retried) pending record and refuses pending again
  const refused = await failure(
    client(sb, 'gitops-bot').Commits.editStatus(OPS, sha, 'pending', { name: 'u/one' }),
  );
  assert.equal(refused.status, 400);
  assert.match(refused.message, /Cannot transition status via :enqueue from :pending/);
  // failed moves that record on; pending then makes a new one, the latest
  await client(sb, 'gitops-bot').Commits.editStatus(OPS, sha, 'failed', { name: 'u/one' });
  await client(sb, 'gitops-bot').Commits.editStatus(OPS, sha, 'pending', { name: 'u/one' });
  const latest = await list('u/one');
  assert.deepEqual(
    latest.map((s) => [s.author.username, s.status]),
    [['gitops-bot', 'pending']],
  );
});

test('a status with another ref makes another pipeline; the list holds the latest of each, ascending by id', async () => {
  await client(sb, 'gitops-bot').Commits.editStatus(OPS, sha, 'pending', { name: 'u/two' });
  await client(sb, 'reviewer').Commits.editStatus(OPS, sha, 'success', { name: 'u/two', ref: 'other' });
  const latest = await list('u/two');
  assert.equal(latest.length, 2);
  assert.notEqual(latest[0].pipeline_id, latest[1].pipeline_id);
  assert.ok(latest[0].id < latest[1].id);
  assert.deepEqual(
    latest.map((s) => s.status),
    ['pending', 'success'],
  );
});

test('pipeline_id naming no pipeline of the commit: 404', async () => {
  const r = await failure(
    client(sb, 'gitops-bot').Commits.editStatus(OPS, sha, 'pending', { name: 'u/three', pipelineId: 999999 }),
  );
  assert.equal(r.status, 404);
});
