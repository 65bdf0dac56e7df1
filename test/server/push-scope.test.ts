// Which open MRs a push re-evaluates (src/server/push-scope.ts): one row per kind of push.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  affectedMergeRequests,
  listingFor,
  type OpenMr,
  type PushFacts,
} from '../../src/server/push-scope.js';

const MAIN: PushFacts = {
  branch: 'main',
  changedPaths: ['README.md'],
  defaultBranch: 'main',
  governed: ['main', 'staging'],
  deployRefs: ['deploy/prod'],
};
const MRS: OpenMr[] = [
  { iid: 1, targetBranch: 'main', sha: 'a1', changedPaths: ['apps/a.yml'] },
  { iid: 2, targetBranch: 'main', sha: 'b2', changedPaths: ['apps/b.yml'] },
  { iid: 3, targetBranch: 'main', sha: 'c3', changedPaths: null },
  { iid: 4, targetBranch: 'staging', sha: 'd4', changedPaths: ['apps/a.yml'] },
  { iid: 5, targetBranch: 'unruled', sha: 'e5', changedPaths: ['apps/a.yml'] },
];

const rows: Array<[string, Partial<PushFacts>, 'none' | 'target' | 'project', number[]]> = [
  ['README-only push to main: nothing to evaluate, no MR listed', {}, 'none', []],
  ['a push changing no file (same tree) to main', { changedPaths: [] }, 'none', []],
  [
    'policy changed on main: every open MR, whatever its target',
    { changedPaths: ['.gitops-bot.yml'] },
    'project',
    [1, 2, 3, 4, 5],
  ],
  [
    'what changed on main is not known: treated as a policy change',
    { changedPaths: null },
    'project',
    [1, 2, 3, 4, 5],
  ],
  [
    'policy changed at the deploy ref (the rules in force)',
    { branch: 'deploy/prod', changedPaths: ['.gitops-bot.yml'] },
    'project',
    [1, 2, 3, 4, 5],
  ],
  [
    'the deploy ref moved over commits that keep its policy',
    { branch: 'deploy/prod', changedPaths: ['apps/a.yml'] },
    'none',
    [],
  ],
  [
    'a manifest changed on main: the MRs into main that change it, and those whose files are unknown',
    { changedPaths: ['apps/a.yml', 'README.md'] },
    'target',
    [1, 3],
  ],
  ['a manifest no MR changes', { changedPaths: ['apps/z.yml'] }, 'target', [3]],
  [
    'a manifest changed on staging (governed): its MRs that change it',
    { branch: 'staging', changedPaths: ['apps/a.yml'] },
    'target',
    [4],
  ],
  [
    'a manifest changed on a branch no rule governs: its MRs are blocked whatever it holds',
    { branch: 'unruled', changedPaths: ['apps/a.yml'] },
    'none',
    [],
  ],
  [
    'the policy copy on a non-default target changed: its MRs (their verdict names it)',
    { branch: 'unruled', changedPaths: ['.gitops-bot.yml'] },
    'target',
    [5],
  ],
  [
    'a governed target deleted or created (nothing known): every MR into it',
    { branch: 'staging', changedPaths: null },
    'target',
    [4],
  ],
  [
    'the deploy ref deleted (nothing known): every open MR (the rules in force are read there)',
    { branch: 'deploy/prod', changedPaths: null },
    'project',
    [1, 2, 3, 4, 5],
  ],
  ['a push to an MR source branch', { branch: 'feature', changedPaths: ['apps/a.yml'] }, 'none', []],
];

for (const [name, over, list, iids] of rows) {
  test(name, () => {
    const push = { ...MAIN, ...over };
    assert.equal(listingFor(push).list, list);
    const got = affectedMergeRequests(push, MRS);
    assert.deepEqual(
      got.map((a) => a.iid),
      iids,
    );
    for (const a of got) assert.ok(a.reason.length > 0, `a reason for !${a.iid}`);
  });
}

test('the reason names what the MR and the push both change', () => {
  const [a] = affectedMergeRequests({ ...MAIN, changedPaths: ['apps/a.yml'] }, MRS);
  assert.match(a.reason, /main changed apps\/a\.yml, which !1 changes/);
});
