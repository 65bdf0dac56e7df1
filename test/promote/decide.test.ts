// decide: one row per outcome, the race outcomes the chaos test has produced included. Each
// row is an observation as observe() would return it after a given history, and what a run
// must do with it: the action, the reason and the writes apply() is to perform.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MergeRequest } from '../../src/gitlab/client.js';
import type { PromotionRecord } from '../../src/model/record.js';
import { type DecideRequest, decide, type Write } from '../../src/promote/decide.js';
import { inStep, type Observation } from '../../src/promote/observe.js';
import { planEdits } from '../../src/promote/plan.js';
import type { Rejection } from '../../src/promote/rejections.js';
import type { Scope } from '../../src/promote/types.js';

const IMAGE = 'registry.example.com/root/helloworld';
const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: helloworld
spec:
  template:
    spec:
      containers:
        - name: helloworld
          image: registry.example.com/root/helloworld:ci-33
`;
const scope: Scope = {
  project: 'root/helloworld-ops',
  target: 'main',
  app: 'helloworld',
  env: 'prod',
  branch: 'gitops-bot/prod/helloworld',
  image: { image: IMAGE },
};
/** main runs `deployed` (the story: ci-33) */
const files = (deployed = 'ci-33') => [
  { path: 'deployment.yml', text: DEPLOYMENT.replace(':ci-33', `:${deployed}`), lastCommitId: 'main-1' },
];
const plan = (tag: string, deployed?: string) => planEdits({}, files(deployed), scope, { image: IMAGE, tag });
/** the record a run proposing `tag` wrote, describing its commit `commit` */
const proposal = (tag: string, commit?: string): PromotionRecord => ({
  ...plan(tag).record,
  ...(commit ? { commit } : {}),
});

interface Seen {
  deployed?: string;
  /** the open MR: its head, the description's record (tag and the commit it describes), comments */
  mr?: { sha: string; described?: [tag: string, commit: string]; notes?: number; rollback?: boolean };
  /** the branch head GitLab showed after a lost swap (absent: the MR's sha) */
  knownHead?: string | null;
  /** what observe read when the MR was out of step: the head's record, who pushed after the bot */
  branch?: { tag?: string; foreign?: string[] };
}

/** The observation observe() makes of `seen` for a run that promotes `tag`. */
function observation(tag: string, seen: Seen): Observation {
  const mr: MergeRequest | null = seen.mr
    ? {
        iid: 7,
        webUrl: 'http://gitlab/root/helloworld-ops/-/merge_requests/7',
        sha: seen.mr.sha,
        title: '',
        description: '',
        sourceBranch: scope.branch,
        targetBranch: 'main',
        userNotesCount: seen.mr.notes ?? 1,
        assignees: [],
        reviewers: [],
        labels: ['gitops-bot'],
        authorUsername: 'gitops-bot',
      }
    : null;
  const described = seen.mr?.described ? proposal(...seen.mr.described) : null;
  if (described && seen.mr?.rollback)
    described.rollback = { fromTag: 'ci-35', reason: 'Degraded', waived: 'downgrade', by: 'command' };
  const head = seen.knownHead !== undefined ? seen.knownHead : (mr?.sha ?? null);
  const consistent = inStep(mr, described, head);
  const p = plan(tag, seen.deployed);
  const obs: Observation = { scope, files: files(seen.deployed), plan: p, mr, head, described, consistent };
  if (mr && !consistent && p.diffs.length)
    obs.branch = {
      record: seen.branch?.tag ? proposal(seen.branch.tag) : null,
      foreign: seen.branch?.foreign ?? [],
    };
  return obs;
}

/** The writes, with the proposal of a repair as its tag. */
const shape = (ws: Write[]) =>
  ws.map((w) => (w.kind === 'repair' ? { kind: w.kind, tag: w.proposal.tag } : w));

/** the writes of a new MR and of an update: one commit swapped in for `expected`, then the MR */
const create = (expected: string | null) => [{ kind: 'commit', expected }, { kind: 'open-mr' }];
const update = (expected: string) => [
  { kind: 'commit', expected },
  { kind: 'update-mr', iid: 7 },
];

/** A row's outcome: the open MR updated, swapping one commit in for `expected`. */
const updated = (expected: string) => ({
  action: 'updated',
  reason: 'updated the open merge request',
  writes: update(expected),
});
/** A row refusing `tag` as older than `newest`, already proposed in !7, and repairing the MR to `newest`. */
const refusedRepair = (tag: string, newest: string) => ({
  tag,
  action: 'refused',
  reason: new RegExp(`^${tag} is older than ${newest}, already proposed in !7`),
  writes: [{ kind: 'repair', tag: newest }],
});

const ROLLBACK = { fromTag: 'ci-35', reason: 'Degraded', waived: 'downgrade', by: 'command' } as const;

const rows: Array<{
  name: string;
  tag: string;
  req?: Partial<DecideRequest>;
  /** tags rolled back from this environment (rejections.ts) */
  rejected?: string[];
  seen: Seen;
  action: string;
  reason: string | RegExp;
  writes: Array<Record<string, unknown>>;
}> = [
  {
    name: 'no MR yet: open one, the branch must not exist',
    tag: 'ci-34',
    seen: {},
    action: 'created',
    reason: 'opened a merge request',
    writes: create(null),
  },
  {
    name: 'the target already runs the tag: noop, nothing written',
    tag: 'ci-33',
    seen: { mr: { sha: 'h1', described: ['ci-34', 'h1'] } },
    action: 'noop',
    reason: 'already deployed',
    writes: [],
  },
  {
    name: 'the same proposal again: noop',
    tag: 'ci-34',
    seen: { mr: { sha: 'h1', described: ['ci-34', 'h1'] } },
    action: 'noop',
    reason: 'already proposed',
    writes: [],
  },
  {
    name: 'the same proposal, its diff comment missing (a run stopped after opening the MR): finish it',
    tag: 'ci-34',
    seen: { mr: { sha: 'h1', described: ['ci-34', 'h1'], notes: 0 } },
    action: 'noop',
    reason: 'already proposed',
    writes: [{ kind: 'finish-comment', iid: 7, commit: 'h1' }],
  },
  {
    name: 'a newer tag: update the MR, swapping the branch from its head',
    tag: 'ci-35',
    seen: { mr: { sha: 'h1', described: ['ci-34', 'h1'] } },
    ...updated('h1'),
  },
  {
    name: 'an older tag than the one proposed: refused, nothing written',
    tag: 'ci-34',
    seen: { mr: { sha: 'h1', described: ['ci-35', 'h1'] } },
    action: 'refused',
    reason: /^ci-34 is older than ci-35, already proposed in !7 \(pass --allow-downgrade/,
    writes: [],
  },
  {
    name: 'an older tag than the one deployed: refused',
    tag: 'ci-32',
    seen: { deployed: 'ci-33' },
    action: 'refused',
    reason: /^ci-32 is older than ci-33, which the target branch already runs/,
    writes: [],
  },
  {
    name: '--allow-downgrade: an older tag than the one proposed updates the MR',
    tag: 'ci-34',
    req: { allowDowngrade: true },
    seen: { mr: { sha: 'h1', described: ['ci-35', 'h1'] } },
    ...updated('h1'),
  },
  {
    name: 'race: an older run overwrote the branch of a newer proposal (the description still shows it): refused, repair to the newest',
    seen: { mr: { sha: 'h2', described: ['ci-37', 'h1'] }, branch: { tag: 'ci-36' } },
    ...refusedRepair('ci-35', 'ci-37'),
  },
  {
    name: 'race: the branch is newer than the description (a run stopped before editing it): refused, repair to the branch',
    seen: { mr: { sha: 'h2', described: ['ci-34', 'h1'] }, branch: { tag: 'ci-36' } },
    ...refusedRepair('ci-35', 'ci-36'),
  },
  {
    name: 'race: out of step, but this run is newer than both: update from the branch head',
    tag: 'ci-38',
    seen: { mr: { sha: 'h2', described: ['ci-37', 'h1'] }, branch: { tag: 'ci-36' } },
    ...updated('h2'),
  },
  {
    name: 'race: the branch moved after our read (lost swap) to a newer proposal: observed again, refused, repair',
    seen: { mr: { sha: 'h1', described: ['ci-35', 'h1'] }, knownHead: 'h2', branch: { tag: 'ci-37' } },
    ...refusedRepair('ci-36', 'ci-37'),
  },
  {
    name: 'race: the branch moved after our read to an older proposal: observed again, swap from the new head',
    tag: 'ci-38',
    seen: { mr: { sha: 'h1', described: ['ci-35', 'h1'] }, knownHead: 'h2', branch: { tag: 'ci-37' } },
    ...updated('h2'),
  },
  {
    name: 'race: a branch without MR (a run stopped after its commit): adopt it, swapping from its head',
    tag: 'ci-34',
    seen: { knownHead: 'h9' },
    action: 'created',
    reason: 'opened a merge request',
    writes: create('h9'),
  },
  {
    name: 'foreign commits on the MR (their trailer is not trusted): the update discards them and says who pushed',
    tag: 'ci-36',
    seen: { mr: { sha: 'h2', described: ['ci-35', 'h1'] }, branch: { foreign: ['reviewer'] } },
    action: 'updated',
    reason: 'updated the open merge request; discarded foreign commits pushed by reviewer',
    writes: update('h2'),
  },
  {
    name: 'dry run, no MR: would-create, nothing applied',
    tag: 'ci-34',
    req: { dryRun: true },
    seen: {},
    action: 'would-create',
    reason: 'dry run: nothing written',
    writes: create(null),
  },
  {
    name: 'dry run, an open MR: would-update',
    tag: 'ci-35',
    req: { dryRun: true },
    seen: { mr: { sha: 'h1', described: ['ci-34', 'h1'] } },
    action: 'would-update',
    reason: 'dry run: nothing written',
    writes: update('h1'),
  },
  {
    name: 'dry run of an older tag: refused as for real',
    tag: 'ci-34',
    req: { dryRun: true },
    seen: { mr: { sha: 'h1', described: ['ci-35', 'h1'] } },
    action: 'refused',
    reason: /^ci-34 is older than ci-35/,
    writes: [],
  },
  {
    name: 'a tag rolled back from this environment: refused with where, when and why',
    tag: 'ci-35',
    rejected: ['ci-35'],
    seen: {},
    action: 'refused',
    reason:
      /^ci-35 was rolled back from prod at 12:10 \(!3\): Degraded: ImagePullBackOff \(pass --allow-rejected/,
    writes: [],
  },
  {
    name: '--allow-rejected: the rejected tag is proposed',
    tag: 'ci-35',
    rejected: ['ci-35'],
    req: { allowRejected: true },
    seen: {},
    action: 'created',
    reason: 'opened a merge request',
    writes: create(null),
  },
  {
    name: 'a newer tag than the rejected one is not affected',
    tag: 'ci-36',
    rejected: ['ci-35'],
    seen: {},
    action: 'created',
    reason: 'opened a merge request',
    writes: create(null),
  },
  {
    name: 'a rollback to an older tag than the one deployed: the downgrade guard is waived for it',
    tag: 'ci-32',
    req: { rollback: ROLLBACK },
    seen: { deployed: 'ci-33' },
    action: 'created',
    reason: 'opened a merge request',
    writes: create(null),
  },
  {
    name: 'a rollback replaces an open promotion of a newer tag (same MR)',
    tag: 'ci-32',
    req: { rollback: ROLLBACK },
    seen: { mr: { sha: 'h1', described: ['ci-35', 'h1'] } },
    ...updated('h1'),
  },
  {
    name: 'a promotion does not replace an open rollback',
    tag: 'ci-36',
    seen: { mr: { sha: 'h1', described: ['ci-32', 'h1'], rollback: true } },
    action: 'refused',
    reason: /^!7 rolls helloworld back to ci-32 in prod \(Degraded\); merge or close it first/,
    writes: [],
  },
  {
    name: '--allow-rejected: a promotion replaces the open rollback',
    tag: 'ci-36',
    req: { allowRejected: true },
    seen: { mr: { sha: 'h1', described: ['ci-32', 'h1'], rollback: true } },
    ...updated('h1'),
  },
];

const rejection = (tag: string): Rejection => ({
  tag,
  env: 'prod',
  app: 'helloworld',
  at: '2026-12-03T12:10:00Z',
  reason: 'Degraded: ImagePullBackOff',
  iid: 3,
  webUrl: 'http://gitlab/-/merge_requests/3',
});

describe('decide', () => {
  for (const row of rows) {
    test(row.name, () => {
      const d = decide(
        observation(row.tag, row.seen),
        { image: IMAGE, tag: row.tag, ...row.req },
        (row.rejected ?? []).map(rejection),
      );
      assert.equal(d.action, row.action);
      if (typeof row.reason === 'string') assert.equal(d.reason, row.reason);
      else assert.match(d.reason, row.reason);
      assert.deepEqual(shape(d.writes), row.writes);
    });
  }

  test('the foreign row is real: the same commits pushed by the bot itself would be trusted', () => {
    // With the trailer trusted (nobody but the bot pushed), a head claiming ci-37 refuses ci-36.
    const d = decide(
      observation('ci-36', { mr: { sha: 'h2', described: ['ci-35', 'h1'] }, branch: { tag: 'ci-37' } }),
      { image: IMAGE, tag: 'ci-36' },
    );
    assert.equal(d.action, 'refused');
  });

  test('the already-proposed noop names the MR head as the commit', () => {
    const d = decide(observation('ci-34', { mr: { sha: 'h1', described: ['ci-34', 'h1'] } }), {
      image: IMAGE,
      tag: 'ci-34',
    });
    assert.equal(d.commit, 'h1');
  });
});
