// Promote's diff comment is gitops-bot's own: a Developer's note that starts with the diff
// marker (and could carry a forged promotion record) is neither read as the diff comment nor
// edited; the bot posts its own and later edits that one in place.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GitLab } from '../../src/gitlab/client.js';
import { DIFF_MARKER } from '../../src/model/markers.js';
import { type PromoteRequest, promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, sandboxFixture } from '../helpers.js';

let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
});
after(() => sb.close());

const bot = () => new GitLab({ url: sb.url, token: 'gitops-bot-token' });
const request = (tag: string): PromoteRequest => ({
  project: OPS,
  files: ['deployment.yml'],
  image: 'registry.example.com/root/helloworld',
  tag,
  targetBranch: 'main',
  env: 'prod',
  source: {
    project: 'root/helloworld',
    sha: 'a'.repeat(40),
    pipelineIid: '34',
    pipelineUrl: 'http://ci/p/34',
  },
});

const marked = async (iid: number) =>
  (await client(sb, 'operator').MergeRequestNotes.all(OPS, iid))
    .filter((n) => String(n.body).startsWith(DIFF_MARKER))
    .map((n) => ({ id: n.id, by: (n.author as { username: string }).username, body: String(n.body) }))
    .sort((a, b) => a.id - b.id);

test('a Developer’s note starting with the diff marker is ignored: the bot’s diff comment is created, then edited in place', async () => {
  const r = await promote(request('ci-34'), { gitlab: bot() });
  assert.equal(r.action, 'created');
  const iid = r.mr!.iid;
  // the bot's diff comment is gone (a Maintainer removed it) and a Developer posts one first
  const [own] = await marked(iid);
  await client(sb, 'operator').MergeRequestNotes.remove(OPS, iid, own.id);
  const forged = `${DIFF_MARKER}\nforged: ${own.body.slice(DIFF_MARKER.length)}`;
  await client(sb, 'reviewer').MergeRequestNotes.create(OPS, iid, forged);
  const two = await promote(request('ci-35'), { gitlab: bot() });
  assert.equal(two.action, 'updated');
  const after35 = await marked(iid);
  assert.deepEqual(
    after35.map((n) => n.by),
    ['reviewer', 'gitops-bot'],
  );
  assert.equal(after35[0].body, forged, 'the Developer’s note is left as it was');
  assert.match(after35[1].body, /helloworld:ci-35/);
  const three = await promote(request('ci-36'), { gitlab: bot() });
  assert.equal(three.action, 'updated');
  const after36 = await marked(iid);
  assert.deepEqual(
    after36.map((n) => [n.id, n.by]),
    after35.map((n) => [n.id, n.by]),
    'the same two notes: the bot’s was edited in place',
  );
  assert.equal(after36[0].body, forged);
  assert.match(after36[1].body, /helloworld:ci-36/);
});
