// One sticky comment per marker, however many gates run at once: two gates on one MR,
// concurrently, twenty times over, leave exactly one verdict comment.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gate } from '../../src/gate/gate.js';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, sandboxFixture } from '../helpers.js';

let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
});
after(() => sb?.close());

test('two gates on one MR at the same time leave one verdict comment (20 trials)', async () => {
  const r = await promote(
    { project: OPS, files: ['deployment.yml'], image: 'registry.example.com/root/helloworld', tag: 'ci-34' },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  const iid = r.mr!.iid;
  const botUserId = (await new GitLabGate({ url: sb.url, token: 'gitops-bot-token' }).currentUser()).id;
  const verdicts = async () =>
    (await client(sb, 'operator').MergeRequestNotes.all(OPS, iid)).filter((n) =>
      String(n.body).startsWith('<!-- gitops-bot:verdict'),
    );
  for (let trial = 0; trial < 20; trial++) {
    for (const n of await verdicts()) await client(sb, 'root').MergeRequestNotes.remove(OPS, iid, n.id);
    const run = () =>
      gate({ gitlab: new GitLabGate({ url: sb.url, token: 'gitops-bot-token' }), botUserId }, OPS, iid);
    await Promise.all([run(), run()]);
    assert.equal((await verdicts()).length, 1, `trial ${trial}`);
  }
});
