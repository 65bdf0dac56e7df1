// Which work a delivery asks for, as a table: the project by numeric id only, the path
// GitLab gave for it at startup, never the payload's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { route } from '../../src/server/route.js';

const OPS = { id: 2, path: 'root/helloworld-ops' };
const managed = new Map([[2, OPS]]);
const project = { id: 2, path_with_namespace: 'root/helloworld-ops' };

const rows: Array<[string, string, Record<string, unknown>, unknown]> = [
  [
    'an MR update is a gate',
    'Merge Request Hook',
    { object_kind: 'merge_request', project, object_attributes: { iid: 5, action: 'update' } },
    { type: 'gate', iid: 5, project: OPS.path },
  ],
  [
    'a merge is the after-merge check',
    'Merge Request Hook',
    { object_kind: 'merge_request', project, object_attributes: { iid: 5, action: 'merge' } },
    { type: 'merged', iid: 5, project: OPS.path },
  ],
  [
    'a close is ignored',
    'Merge Request Hook',
    { object_kind: 'merge_request', project, object_attributes: { iid: 5, action: 'close' } },
    'ignored',
  ],
  [
    'an MR without iid is invalid',
    'Merge Request Hook',
    { object_kind: 'merge_request', project, object_attributes: {} },
    'invalid',
  ],
  [
    '/gitops-bot recheck',
    'Note Hook',
    {
      object_kind: 'note',
      project,
      object_attributes: { note: ' /gitops-bot recheck ' },
      merge_request: { iid: 3 },
    },
    { type: 'gate', iid: 3, project: OPS.path },
  ],
  [
    '/gitops-bot accept on a commit',
    'Note Hook',
    {
      object_kind: 'note',
      project,
      object_attributes: { note: '/gitops-bot accept ABCDEF12', noteable_type: 'Commit' },
    },
    { type: 'accept', sha: 'abcdef12', project: OPS.path },
  ],
  [
    'any other comment',
    'Note Hook',
    { object_kind: 'note', project, object_attributes: { note: 'LGTM' }, merge_request: { iid: 3 } },
    'ignored',
  ],
  [
    'a branch push',
    'Push Hook',
    { object_kind: 'push', project, ref: 'refs/heads/main', after: 'abc' },
    { type: 'push', branch: 'main', after: 'abc', project: OPS.path },
  ],
  [
    'a tag push is ignored',
    'Push Hook',
    { object_kind: 'push', project, ref: 'refs/tags/v1', after: 'abc' },
    'ignored',
  ],
  [
    'the managed id with a foreign path acts on the managed project',
    'Push Hook',
    {
      object_kind: 'push',
      project: { id: 2, path_with_namespace: 'attacker/other' },
      ref: 'refs/heads/main',
      after: 'abc',
    },
    { type: 'push', branch: 'main', after: 'abc', project: OPS.path },
  ],
  [
    'a foreign id with the managed path is unmanaged',
    'Push Hook',
    {
      object_kind: 'push',
      project: { id: 9, path_with_namespace: OPS.path },
      ref: 'refs/heads/main',
      after: 'abc',
    },
    'unmanaged',
  ],
  [
    'no id at all is unmanaged',
    'Push Hook',
    { object_kind: 'push', project: { path_with_namespace: OPS.path }, ref: 'refs/heads/main' },
    'unmanaged',
  ],
  ['an event kind it does not handle', 'Pipeline Hook', { object_kind: 'pipeline', project }, 'ignored'],
];

for (const [name, event, body, want] of rows)
  test(`route: ${name}`, () => {
    const r = route(event, body, managed);
    if (typeof want === 'string') assert.deepEqual(r, { result: want });
    else assert.deepEqual(r, { result: 'queued', job: want });
  });

test('route without --project: every project, named by its id', () => {
  const r = route('Push Hook', { object_kind: 'push', project, ref: 'refs/heads/main', after: 'a' }, null);
  assert.deepEqual(r, { result: 'queued', job: { type: 'push', branch: 'main', after: 'a', project: '2' } });
});
