// The rollback rules of the gate, as a table over evaluate(): a rollback GitLab's
// Deployments verified is judged by the environment's `rollback:` rules; anything else by
// the environment's own (the trust rules apply first either way).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { evaluate, type Facts, type RollbackFact } from '../../src/policy/evaluate.js';
import { DEFAULT_POLICY, parsePolicy } from '../../src/policy/schema.js';

const OPERATOR = { id: 4, username: 'operator' };
const MAINTAINER = { id: 7, username: 'maintainer' };
const REVIEWER = { id: 3, username: 'reviewer' };
const BOT = { id: 6, username: 'gitops-bot', bot: true };
const levels = new Map([
  [3, 30],
  [4, 40],
  [6, 30],
  [7, 40],
]);

const WEEKEND = '{ days: [sat, sun], timezone: UTC, reason: weekend }';
const POLICY = parsePolicy(`version: 1
environments:
  - name: production
    match: { target_branches: [main] }
    approvals: { required: 1, users: [operator] }
    escalation: [{ when: major, extra_approvals: 1 }]
    freeze: [${WEEKEND}]
    merge: manual
    rollback: { approvals: { required: 0 }, merge: bot }
  - name: staging
    match: { target_branches: [staging] }
    approvals: { required: 1, users: [operator] }
    freeze: [${WEEKEND}]
    merge: bot
    rollback: { approvals: { required: 1, min_access_level: maintainer } }
  - name: frozen
    match: { target_branches: [frozen] }
    approvals: { required: 1, users: [operator] }
    merge: bot
    rollback: { approvals: { required: 0 }, freeze: [${WEEKEND}] }
  - name: strict
    match: { target_branches: [strict] }
    approvals: { required: 2, users: [operator, maintainer] }
    merge: manual
    rollback: { merge: bot }
  - name: plain
    match: { target_branches: [plain] }
    approvals: { required: 1, users: [operator] }
    freeze: [${WEEKEND}]
    merge: bot
`);
const TRUSTED = {
  source: 'main',
  defaultBranch: 'main',
  defaultProtected: true,
  targetProtected: true,
  notes: [],
};
const WEDNESDAY = new Date('2026-11-25T10:00:00Z');
const SATURDAY = new Date('2026-11-28T10:00:00Z');

const verified = (env: string): RollbackFact => ({
  verified: true,
  env,
  app: 'helloworld',
  tag: 'ci-34',
  fromTag: 'ci-35',
  deployment: 12,
  environment: `${env}/helloworld`,
});
const UNVERIFIED: RollbackFact = {
  verified: false,
  reason: 'GitLab has no successful deployment by gitops-bot in production/helloworld',
};

function facts(over: Partial<Facts> = {}, targetBranch = 'main'): Facts {
  return {
    mr: {
      iid: 1,
      state: 'opened',
      draft: false,
      author: BOT,
      sha: 'abc',
      targetBranch,
      changedPaths: ['deployment.yml'],
    },
    policy: POLICY,
    approvals: [],
    accessLevels: levels,
    pushers: new Set([BOT.id]),
    trust: TRUSTED,
    lastPushAt: '2026-11-24T10:00:00.000Z',
    botUserId: BOT.id,
    now: WEDNESDAY,
    ...over,
  };
}
const approved = (user: { id: number; username: string }) => ({
  user,
  approvedAt: '2026-11-24T11:00:00.000Z',
});

interface Want {
  pass: boolean;
  merge: 'bot' | 'manual';
  rules: 'rollback' | 'environment';
  summary?: RegExp;
  note?: RegExp;
}

const rows: Array<[string, Facts, Want]> = [
  [
    'verified rollback under rollback rules: 0 approvals needed, the bot merges',
    facts({ rollback: verified('production') }),
    {
      pass: true,
      merge: 'bot',
      rules: 'rollback',
      summary: /^0\/0 approvals from Maintainers \(rollback rules\)$/,
      note: /Rollback rules of production applied: a rollback from ci-35 to ci-34 ran healthy in production\/helloworld \(deployment #12\)/,
    },
  ],
  [
    'verified rollback, rollback rules need 1 from any Maintainer: not the listed operator only',
    facts({ rollback: verified('staging'), approvals: [approved(MAINTAINER)] }, 'staging'),
    {
      pass: true,
      merge: 'bot',
      rules: 'rollback',
      summary: /^1\/1 approvals from Maintainers \(rollback rules\)$/,
    },
  ],
  [
    'verified rollback, 1 needed, none yet: waits; merge falls back to the environment (bot)',
    facts({ rollback: verified('staging') }, 'staging'),
    {
      pass: false,
      merge: 'bot',
      rules: 'rollback',
      summary: /^0\/1 approvals from Maintainers \(rollback rules\)$/,
    },
  ],
  [
    'verified rollback, 1 needed: a Developer does not count',
    facts({ rollback: verified('staging'), approvals: [approved(REVIEWER)] }, 'staging'),
    { pass: false, merge: 'bot', rules: 'rollback' },
  ],
  [
    'unverified rollback: the normal rules (operator, manual merge), with the reason',
    facts({ rollback: UNVERIFIED }),
    {
      pass: false,
      merge: 'manual',
      rules: 'environment',
      summary: /^0\/1 approvals from operator$/,
      note: /Not judged as a rollback: GitLab has no successful deployment by gitops-bot in production\/helloworld; the rules of production apply/,
    },
  ],
  [
    'unverified rollback approved by the operator: passes by the normal rules',
    facts({ rollback: UNVERIFIED, approvals: [approved(OPERATOR)] }),
    { pass: true, merge: 'manual', rules: 'environment' },
  ],
  [
    'a rollback verified in another environment than the one governing the MR: normal rules',
    facts({ rollback: verified('staging') }),
    {
      pass: false,
      merge: 'manual',
      rules: 'environment',
      note: /its record names the environment staging, and this merge request is governed by production/,
    },
  ],
  [
    'freeze waived for a verified rollback (Saturday, production freezes at weekends)',
    facts({ rollback: verified('production'), now: SATURDAY }),
    { pass: true, merge: 'bot', rules: 'rollback' },
  ],
  [
    'freeze not waived for an unverified rollback',
    facts({ rollback: UNVERIFIED, now: SATURDAY, approvals: [approved(OPERATOR)] }),
    { pass: false, merge: 'manual', rules: 'environment', summary: /freeze window \(sat,sun/ },
  ],
  [
    'freeze not waived for a normal promotion',
    facts({ now: SATURDAY, approvals: [approved(OPERATOR)] }),
    { pass: false, merge: 'manual', rules: 'environment', summary: /freeze window/ },
  ],
  [
    "the rollback rules' own freeze applies to a verified rollback",
    facts({ rollback: verified('frozen'), now: SATURDAY }, 'frozen'),
    { pass: false, merge: 'bot', rules: 'rollback', summary: /\(rollback rules\); freeze window/ },
  ],
  [
    'no rollback rules: a verified rollback is judged by the normal rules, freeze and all',
    facts({ rollback: verified('plain'), now: SATURDAY, approvals: [approved(OPERATOR)] }, 'plain'),
    {
      pass: false,
      merge: 'bot',
      rules: 'environment',
      summary: /freeze window/,
      note: /plain has no rollback rules, so its own rules apply/,
    },
  ],
  [
    'no rollback rules, weekday, no approval: waits for the operator',
    facts({ rollback: verified('plain') }, 'plain'),
    { pass: false, merge: 'bot', rules: 'environment', summary: /^0\/1 approvals from operator$/ },
  ],
  [
    'a verified rollback is not escalated by its bump kind',
    facts({ rollback: verified('production'), bumpKind: 'major' }),
    { pass: true, merge: 'bot', rules: 'rollback' },
  ],
  [
    'trust first: a foreign change blocks a verified rollback',
    facts({
      rollback: verified('production'),
      foreign: { pushedBy: ['reviewer'], files: [{ path: 'evil.yml', hunks: ['+x'] }] },
    }),
    { pass: false, merge: 'manual', rules: 'environment', summary: /@reviewer pushed changes/ },
  ],
  [
    'trust first: an unprotected target blocks a verified rollback',
    facts({ rollback: verified('production'), trust: { ...TRUSTED, targetProtected: false } }),
    { pass: false, merge: 'manual', rules: 'environment', summary: /not protected/ },
  ],
  [
    'a draft rollback waits',
    facts({ rollback: verified('production'), mr: { ...facts().mr, draft: true } }),
    { pass: false, merge: 'bot', rules: 'rollback', summary: /draft/ },
  ],
  [
    "rollback rules without approvals: the environment's approvals (2 of the listed), not 1 of any Maintainer",
    facts({ rollback: verified('strict'), approvals: [approved(MAINTAINER)] }, 'strict'),
    {
      pass: false,
      merge: 'bot',
      rules: 'rollback',
      summary: /^1\/2 approvals from operator, maintainer \(rollback rules\)$/,
    },
  ],
  [
    'rollback rules without approvals: both listed approvers pass it, and the bot merges',
    facts({ rollback: verified('strict'), approvals: [approved(MAINTAINER), approved(OPERATOR)] }, 'strict'),
    { pass: true, merge: 'bot', rules: 'rollback' },
  ],
];

describe('evaluate: rollback rules', () => {
  for (const [name, f, want] of rows)
    test(name, () => {
      const v = evaluate(f, DEFAULT_POLICY);
      assert.equal(v.pass, want.pass, v.summary);
      assert.equal(v.merge, want.merge);
      assert.equal(v.rules ?? 'environment', want.rules);
      if (want.summary) assert.match(v.summary, want.summary);
      if (want.note) assert.match(v.notes.join('\n'), want.note);
    });
});
