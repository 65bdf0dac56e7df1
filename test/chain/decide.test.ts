// The chain's pure decision as a table: given the environments, what the bot deployed
// where, the open MRs, the rejected tags and the time, what to open, or why to wait.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type ChainAppFacts,
  type ChainDecision,
  type ChainStep,
  decideApp,
  decideChain,
  freezeEnd,
  nextCheck,
} from '../../src/chain/decide.js';
import { parsePolicy } from '../../src/policy/schema.js';
import type { Rejection } from '../../src/promote/rejections.js';

const POLICY = parsePolicy(`version: 1
environments:
  - name: staging
    match: { files: ['envs/staging/**'] }
  - name: production
    match: { files: ['envs/production/**'] }
    freeze: [{ days: [fri], from: '16:00', to: '24:00', reason: weekend }]
promotion:
  - { from: staging, to: production, soak: 30m, assignees: [operator] }
`);
const PRODUCTION = POLICY.environments[1];
const IMAGE = 'registry.example.com/root/helloworld';
// Wednesday 2026-11-25, 12:17 UTC; ci-34 healthy in staging since 11:32 (45 min)
const NOW = new Date('2026-11-25T12:17:00.000Z');
const SINCE = '2026-11-25T11:32:00.000Z';
const FRIDAY_EVENING = new Date('2026-11-27T17:00:00.000Z');
const STEP: ChainStep = {
  from: 'staging',
  to: 'production',
  soakMs: 30 * 60_000,
  assignees: ['operator'],
  reviewers: [],
};

function app(
  over: Partial<ChainAppFacts> = {},
  from: Partial<NonNullable<ChainAppFacts['from']>> = {},
): ChainAppFacts {
  return {
    app: 'helloworld',
    image: IMAGE,
    from: { deployment: 7, sha: 'a'.repeat(40), status: 'success', tag: 'ci-34', since: SINCE, ...from },
    toTag: 'ci-33',
    openMr: null,
    rejected: { from: [], to: [] },
    ...over,
  };
}

const rejection = (tag: string, env: string): Rejection => ({
  tag,
  env,
  app: 'helloworld',
  at: '2026-11-25T10:10:00.000Z',
  reason: 'Degraded: ImagePullBackOff',
  iid: 9,
  webUrl: 'http://gitlab.example/root/helloworld-ops/-/merge_requests/9',
});

type Want =
  | { retract: number; reason: RegExp }
  | { open: string; replaces?: number; reason?: RegExp }
  | { wait: RegExp; until?: string | null }
  | { none: RegExp };

const rows: Array<[string, ChainAppFacts, Want, Date?]> = [
  [
    'healthy in staging past the soak: open the production MR, verified since 11:32 (45 min)',
    app(),
    { open: 'ci-34', reason: /^verified in staging since 11:32 \(45 min\)$/ },
  ],
  [
    'soak not over: wait until since + soak',
    app({}, { since: '2026-11-25T12:00:00.000Z' }),
    {
      wait: /^soak: ci-34 healthy in staging since 12:00 \(17 min of 30 min\); production at 12:30$/,
      until: '2026-11-25T12:30:00.000Z',
    },
  ],
  ['soak over to the millisecond: open', app({}, { since: '2026-11-25T11:47:00.000Z' }), { open: 'ci-34' }],
  [
    'production frozen: wait until the freeze ends (Friday 24:00)',
    app(),
    { wait: /^production is frozen \(fri 16:00-24:00 UTC\): weekend$/, until: '2026-11-28T00:00:00.000Z' },
    FRIDAY_EVENING,
  ],
  [
    'soak and freeze: the soak first (the freeze is looked at when it is over)',
    app({}, { since: '2026-11-27T16:50:00.000Z' }),
    { wait: /^soak: /, until: '2026-11-27T17:20:00.000Z' },
    FRIDAY_EVENING,
  ],
  [
    'still deploying in staging: wait for the outcome (no time: the report brings it)',
    app({}, { status: 'running' }),
    { wait: /^helloworld is still deploying in staging \(#7, running\)$/, until: null },
  ],
  ['failed in staging: nothing', app({}, { status: 'failed' }), { none: /failed \(#7\)/ }],
  [
    'never deployed in staging by the bot: nothing (never skip an environment)',
    app({ from: null }),
    { none: /has not deployed helloworld in staging/ },
  ],
  [
    'no tag readable at the deployment: nothing',
    app({}, { tag: null }),
    { none: /no image of helloworld at aaaaaaaa/ },
  ],
  [
    'production runs it already: nothing',
    app({ toTag: 'ci-34' }),
    { none: /^production runs ci-34 already$/ },
  ],
  [
    'production runs a newer tag: no downgrade by chain',
    app({ toTag: 'ci-35' }),
    { none: /ci-34 is older than ci-35/ },
  ],
  ['production has no tag of the image yet: open', app({ toTag: null }), { open: 'ci-34' }],
  [
    'rejected in production: nothing',
    app({ rejected: { from: [], to: [rejection('ci-34', 'production')] } }),
    { none: /^rejected: ci-34 was rolled back from production at 10:10 \(!9\): Degraded: ImagePullBackOff$/ },
  ],
  [
    'rejected in staging: nothing',
    app({ rejected: { from: [rejection('ci-34', 'staging')], to: [] } }),
    { none: /^rejected: ci-34 was rolled back from staging/ },
  ],
  [
    'another tag rejected: no effect',
    app({ rejected: { from: [], to: [rejection('ci-32', 'production')] } }),
    { open: 'ci-34' },
  ],
  [
    'the open MR proposes it already: nothing (a duplicate event, a second replica)',
    app({ openMr: { iid: 5, tag: 'ci-34', rollback: false } }),
    { none: /^!5 proposes ci-34 already$/ },
  ],
  [
    'the open MR proposes a newer tag: nothing',
    app({ openMr: { iid: 5, tag: 'ci-36', rollback: false } }),
    { none: /!5 proposes ci-36, newer than ci-34/ },
  ],
  [
    'the open MR proposes an older tag: update it',
    app({ openMr: { iid: 5, tag: 'ci-33', rollback: false } }),
    { open: 'ci-34', replaces: 5 },
  ],
  [
    'the open MR proposes an unordered tag: left alone',
    app({ openMr: { iid: 5, tag: 'hotfix', rollback: false } }),
    { none: /cannot be ordered/ },
  ],
  [
    'a rollback MR is open in production: wait, never replace it',
    app({ openMr: { iid: 5, tag: 'ci-32', rollback: true } }),
    { wait: /a rollback of helloworld is open in production \(!5\)/, until: null },
  ],
  [
    'the MR of this tag was closed by a person: not proposed again',
    app({ closedMr: { iid: 4, tag: 'ci-34' } }),
    { none: /^!4 proposing ci-34 was closed: not proposed again/ },
  ],
  [
    'a closed MR of an older tag: the newer one is proposed',
    app({ closedMr: { iid: 4, tag: 'ci-33' } }),
    { open: 'ci-34' },
  ],
  [
    'production runs a tag that cannot be ordered (a commit SHA): nothing, never a guess at "newer"',
    app({ toTag: 'sha-2222bbb' }),
    { none: /^ci-34 cannot be ordered against sha-2222bbb, which production runs/ },
  ],
  [
    "the chain's open MR proposes a tag rolled back from staging since: close it, saying why",
    app({
      openMr: { iid: 5, tag: 'ci-35', rollback: false, chain: true },
      rejected: { from: [rejection('ci-35', 'staging')], to: [] },
    }),
    { retract: 5, reason: /^ci-35 was rolled back from staging at 10:10 \(!9\)/ },
  ],
  [
    'an open MR a pipeline (not the chain) made for that tag: the chain leaves it alone',
    app({
      openMr: { iid: 5, tag: 'ci-35', rollback: false },
      rejected: { from: [rejection('ci-35', 'staging')], to: [] },
    }),
    { none: /^!5 proposes ci-35, newer than ci-34$/ },
  ],
  [
    'facts unreadable: nothing, with why',
    app({ problem: 'several images could be helloworld' }),
    { none: /^several images/ },
  ],
];

function check(d: ChainDecision, want: Want): void {
  if ('retract' in want) {
    assert.ok('retract' in d, `expected retract, got ${JSON.stringify(d)}`);
    assert.equal(d.retract.iid, want.retract);
    assert.match(d.retract.reason, want.reason);
  } else if ('open' in want) {
    assert.ok('open' in d, `expected open, got ${JSON.stringify(d)}`);
    assert.equal(d.open.tag, want.open);
    assert.equal(d.open.image, IMAGE);
    assert.equal(d.replaces, want.replaces);
    if (want.reason) assert.match(d.reason, want.reason);
  } else if ('wait' in want) {
    assert.ok('wait' in d, `expected wait, got ${JSON.stringify(d)}`);
    assert.match(d.wait, want.wait);
    if (want.until !== undefined) assert.equal(d.until, want.until ?? undefined);
  } else {
    assert.ok('none' in d, `expected none, got ${JSON.stringify(d)}`);
    assert.match(d.none, want.none);
  }
}

describe('decideChain', () => {
  for (const [name, facts, want, now] of rows)
    test(name, () => check(decideApp(STEP, PRODUCTION, facts, now ?? NOW, 'main'), want));

  test('no soak: open as soon as healthy', () => {
    const d = decideApp(
      { ...STEP, soakMs: 0 },
      PRODUCTION,
      app({}, { since: NOW.toISOString() }),
      NOW,
      'main',
    );
    assert.ok('open' in d);
    assert.equal(d.open.since, NOW.toISOString());
  });

  test('the environment `to` missing from the policy: nothing', () => {
    check(decideApp(STEP, null, app(), NOW, 'main'), { none: /no environment production/ });
  });

  test('every step and app; the next check is the earliest wait', () => {
    const ds = decideChain({
      now: NOW,
      defaultBranch: 'main',
      steps: [
        {
          step: STEP,
          toEnv: PRODUCTION,
          apps: [
            app(),
            app({ app: 'web' }, { since: '2026-11-25T12:10:00.000Z' }),
            app({ app: 'api' }, { since: '2026-11-25T12:05:00.000Z' }),
            app({ app: 'db' }, { status: 'running' }),
          ],
        },
      ],
    });
    assert.deepEqual(
      ds.map((d) => [d.app, 'open' in d ? 'open' : 'wait' in d ? 'wait' : 'none']),
      [
        ['helloworld', 'open'],
        ['web', 'wait'],
        ['api', 'wait'],
        ['db', 'wait'],
      ],
    );
    assert.equal(nextCheck(ds), '2026-11-25T12:35:00.000Z');
    assert.equal(nextCheck([]), null);
  });

  test('the decision is the same whenever it is made again (stateless: restart, duplicate, replica)', () => {
    const facts = {
      now: NOW,
      defaultBranch: 'main',
      steps: [{ step: STEP, toEnv: PRODUCTION, apps: [app()] }],
    };
    assert.deepEqual(decideChain(facts), decideChain(structuredClone(facts)));
  });

  test('freezeEnd: the end of the active window', () => {
    assert.equal(freezeEnd(PRODUCTION, 'main', FRIDAY_EVENING), '2026-11-28T00:00:00.000Z');
  });
});
