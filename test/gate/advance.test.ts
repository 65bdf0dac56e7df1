// The deploy_ref decision as a table: each row is a first-parent chain after the current
// deploy_ref, with the evidence for each commit, and where deploy_ref may go.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  acceptedSha,
  type Bypass,
  decide,
  type Evidence,
  isRevertOf,
  startWalk,
  step,
} from '../../src/gate/advance.js';

const bypass = (sha: string, kind: Bypass['kind'] = 'push'): Bypass => ({
  sha,
  kind,
  ...(kind === 'merge' ? { iid: 7 } : {}),
  who: 'reviewer',
  why: 'no merge request produced it',
  accepted: { by: [], required: 1 },
});
const ok = (iid = 1): Evidence => ({ accounted: true, how: 'merge', iid });
const bad = (sha: string, kind: Bypass['kind'] = 'push'): Evidence => ({
  accounted: false,
  bypass: bypass(sha, kind),
});
const accepted = (sha: string): Evidence => ({ accounted: true, how: 'accepted', bypass: bypass(sha) });

type Row = [string, Array<[string, Evidence, string[]?]>, { action: string; to?: string; held?: string[] }];
const rows: Row[] = [
  ['one approved merge: move to it', [['m1', ok()]], { action: 'move', to: 'm1', held: [] }],
  [
    'two approved merges: move to the newest',
    [
      ['m1', ok()],
      ['m2', ok(2)],
    ],
    { action: 'move', to: 'm2' },
  ],
  ['a direct push: hold', [['p1', bad('p1')]], { action: 'hold', held: ['p1'] }],
  [
    'a bypass merge, then an honest one: the honest one does not carry the bypass along',
    [
      ['b1', bad('b1', 'merge')],
      ['m2', ok(2)],
    ],
    { action: 'hold', held: ['b1'] },
  ],
  [
    'an honest merge, then a bypass: move to the honest one only',
    [
      ['m1', ok()],
      ['b2', bad('b2')],
    ],
    { action: 'move', to: 'm1', held: ['b2'] },
  ],
  [
    'an accepted bypass counts as accounted',
    [
      ['p1', accepted('p1')],
      ['m2', ok(2)],
    ],
    { action: 'move', to: 'm2' },
  ],
  [
    'a bypass reverted by an approved merge: move past both',
    [
      ['p1', bad('p1')],
      ['r2', ok(2), ['p1']],
    ],
    { action: 'move', to: 'r2', held: [] },
  ],
  [
    'a revert of one bypass leaves the other holding',
    [
      ['p1', bad('p1')],
      ['p2', bad('p2')],
      ['r3', ok(3), ['p1']],
    ],
    { action: 'hold', held: ['p2'] },
  ],
];

describe('decide where deploy_ref goes', () => {
  for (const [name, chain, want] of rows) {
    test(name, () => {
      let s = startWalk('base');
      for (const [sha, e, reverts] of chain) s = step(s, sha, e, reverts ?? []);
      const d = decide('base', 'base', chain.at(-1)![0], s);
      assert.equal(d.action, want.action);
      if (want.to) assert.equal(d.action === 'move' && d.to, want.to);
      if (want.held && d.action !== 'already')
        assert.deepEqual(
          d.held.map((b) => b.sha),
          want.held,
        );
    });
  }
  test('deploy_ref already at the target head', () => {
    assert.equal(decide('h', 'h', 'h', startWalk('h')).action, 'already');
  });
  test('an accepted bypass is reported, so its alert can say so', () => {
    const s = step(startWalk('base'), 'p1', accepted('p1'));
    assert.deepEqual(
      s.accepted.map((b) => b.sha),
      ['p1'],
    );
  });
});

describe('isRevertOf', () => {
  const bypassed = [
    { path: 'deployment.yml', diff: '@@ -1,2 +1,2 @@\n-image: a:1\n+image: evil:1\n replicas: 1' },
  ];
  test('the exact inverse is a revert', () => {
    assert.ok(
      isRevertOf(
        [{ path: 'deployment.yml', diff: '@@ -5,2 +5,2 @@\n-image: evil:1\n+image: a:1' }],
        bypassed,
      ),
    );
  });
  test('another change to the same file is not', () => {
    assert.ok(
      !isRevertOf([{ path: 'deployment.yml', diff: '@@ -1 +1 @@\n-image: evil:1\n+image: b:2' }], bypassed),
    );
  });
  test('a change to another file is not', () => {
    assert.ok(!isRevertOf([{ path: 'other.yml', diff: '-image: evil:1\n+image: a:1' }], bypassed));
  });
});

describe('acceptedSha', () => {
  test('reads the sha of /gitops-bot accept', () => {
    assert.equal(acceptedSha('/gitops-bot accept ABCDEF12'), 'abcdef12');
    assert.equal(acceptedSha('  /gitops-bot accept abcdef1234567890 \n'), 'abcdef1234567890');
  });
  test('anything else is no acceptance', () => {
    assert.equal(acceptedSha('/gitops-bot accept abc'), null); // too short to name a commit
    assert.equal(acceptedSha('please /gitops-bot accept abcdef12'), null);
    assert.equal(acceptedSha('/gitops-bot recheck'), null);
  });
});
