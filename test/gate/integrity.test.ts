// "What is approved is what was shown": which changes of gitops-bot's own MR its record
// does not account for, recomputed from the base with setImage.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { foreignFiles } from '../../src/gate/integrity.js';
import { isPushNote, noteCommits, pushesAfter } from '../../src/gitlab/push-notes.js';
import type { PromotionRecord } from '../../src/model/record.js';

const BASE = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: helloworld
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: web
          image: registry.example.com/root/helloworld:ci-33
`;
const BUMPED = BASE.replace(':ci-33', ':ci-34');
const RECORD: PromotionRecord = {
  v: 1,
  app: 'helloworld',
  env: 'main',
  image: 'registry.example.com/root/helloworld',
  tag: 'ci-34',
  target: 'main',
  files: [{ path: 'deployment.yml', base: 'x', before: ['…:ci-33'], after: ['…:ci-34'] }],
  source: {},
};

describe('foreignFiles', () => {
  test('exactly the recorded edit: nothing foreign', () => {
    assert.deepEqual(foreignFiles(RECORD, [{ path: 'deployment.yml', base: BASE, head: BUMPED }]), []);
  });
  test('one more change in the recorded file: that hunk is foreign', () => {
    const head = BUMPED.replace('replicas: 1', 'replicas: 1\n  hostNetwork: true');
    const [f] = foreignFiles(RECORD, [{ path: 'deployment.yml', base: BASE, head }]);
    assert.equal(f.path, 'deployment.yml');
    assert.equal(f.hunks.length, 1);
    assert.match(f.hunks[0], /^@@ .* @@\n(.*\n)*\+ {2}hostNetwork: true/);
    assert.doesNotMatch(f.hunks[0], /ci-34/, 'the recorded edit is not reported');
  });
  test('another image in the recorded file', () => {
    const head = BASE.replace('registry.example.com/root/helloworld:ci-33', 'attacker/evil:1');
    const [f] = foreignFiles(RECORD, [{ path: 'deployment.yml', base: BASE, head }]);
    assert.match(f.hunks[0], /-.*helloworld:ci-34\n\+.*attacker\/evil:1/);
  });
  test('a file the record does not name', () => {
    const [f] = foreignFiles(RECORD, [
      { path: 'deployment.yml', base: BASE, head: BUMPED },
      { path: 'evil.yml', base: null, head: 'privileged: true\n' },
    ]);
    assert.equal(f.path, 'evil.yml');
    assert.match(f.hunks[0], /\+privileged: true/);
  });
  test('a deleted file', () => {
    const [f] = foreignFiles(RECORD, [{ path: 'policy.yml', base: 'a: 1\n', head: null }]);
    assert.equal(f.path, 'policy.yml');
  });
});

describe('who pushed, from GitLab system notes', () => {
  const note = (username: string, at: string) => ({ username, at, body: 'added 1 commit' });
  test('pushes after gitops-bot’s latest are foreign; earlier ones were discarded by its reset', () => {
    const notes = [
      note('reviewer', '2026-12-01T10:00:00Z'),
      note('gitops-bot', '2026-12-01T11:00:00Z'),
      note('operator', '2026-12-01T12:00:00Z'),
    ];
    assert.deepEqual(pushesAfter(notes, 'gitops-bot'), ['operator']);
    assert.deepEqual(pushesAfter(notes.slice(0, 2), 'gitops-bot'), []);
  });
  test('GitLab’s note format', () => {
    const body =
      'added 2 commits\n\n<ul><li>abc12345 - One</li><li>def67890 - Two</li></ul>\n\n[Compare with previous version](x)';
    assert.ok(isPushNote(body));
    assert.ok(!isPushNote('I added 2 commits'));
    assert.deepEqual(noteCommits(body), ['abc12345', 'def67890']);
    // GitLab's summary lines are not commits pushed to the MR.
    const reset =
      'added 2 commits\n\n<ul><li>ab12cd34 - 1 commit from branch <code>main</code></li><li>0123abcd...4567cdef - 12 earlier commits</li><li>fedc9876 - Deploy</li></ul>';
    assert.deepEqual(noteCommits(reset), ['fedc9876']);
  });
});
