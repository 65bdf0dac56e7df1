import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { activeFreeze, evaluate, type Facts, globToRegExp } from '../../src/policy/evaluate.js';
import { DEFAULT_POLICY, PolicyError, parsePolicy, policyJsonSchema } from '../../src/policy/schema.js';

const OPERATOR = { id: 4, username: 'operator', name: 'Operator', email: 'operator@example.com' };
const REVIEWER = { id: 3, username: 'reviewer', name: 'Reviewer', email: 'reviewer@example.com' };
const BOT = { id: 6, username: 'gitops-bot', name: 'gitops-bot', bot: true };
const levels = new Map([
  [3, 30],
  [4, 40],
  [6, 30],
]);

const POLICY = parsePolicy(`version: 1
environments:
  - name: production
    match: { target_branches: [main] }
    approvals: { required: 1, users: [operator] }
    escalation: [{ when: major, extra_approvals: 1 }]
    freeze: [{ days: [sat, sun], timezone: Europe/Madrid, reason: weekend }]
    merge: bot
    deploy_ref: deploy/prod
  - name: staging
    match: { target_branches: [staging] }
    approvals: { required: 1, min_access_level: developer }
  - name: grouped
    match: { target_branches: [grouped] }
    approvals: { required: 1, users: [someone], groups: [Operators] }
`);
const TRUSTED = {
  source: 'main',
  defaultBranch: 'main',
  defaultProtected: true,
  targetProtected: true,
  notes: [],
};
const ANY_BRANCH = parsePolicy(
  'version: 1\nenvironments: [{ name: everywhere, approvals: { users: [operator] } }]\n',
);
const FOREIGN = {
  pushedBy: ['reviewer'],
  files: [{ path: 'evil.yml', hunks: ['@@ -0,0 +1,1 @@\n+privileged: true'] }],
};
const GROUPS = new Map([['operators', new Set([OPERATOR.id])]]);

function facts(over: Partial<Facts> = {}, mr: Partial<Facts['mr']> = {}): Facts {
  return {
    mr: {
      iid: 1,
      state: 'opened',
      draft: false,
      author: BOT,
      sha: 'abc',
      targetBranch: 'main',
      changedPaths: ['deployment.yml'],
      ...mr,
    },
    policy: POLICY,
    approvals: [],
    accessLevels: levels,
    pushers: new Set([BOT.id]),
    trust: TRUSTED,
    lastPushAt: '2026-11-24T10:00:00.000Z',
    botUserId: BOT.id,
    now: new Date('2026-11-25T10:00:00Z'), // a Wednesday
    ...over,
  };
}
const approved = (user: Facts['approvals'][number]['user'], at = '2026-11-24T11:00:00.000Z') => ({
  user,
  approvedAt: at,
});

const rows: Array<[string, Facts, { pass: boolean; state: string; summary?: RegExp; reason?: RegExp }]> = [
  ['no approvals', facts(), { pass: false, state: 'pending', summary: /^0\/1 approvals from operator$/ }],
  ['the operator approves', facts({ approvals: [approved(OPERATOR)] }), { pass: true, state: 'success' }],
  [
    'a Developer who is not an approver',
    facts({ approvals: [approved(REVIEWER)] }),
    { pass: false, state: 'pending', reason: /not among the approvers of production/ },
  ],
  [
    'the author approves their own MR',
    facts({ approvals: [approved(OPERATOR)] }, { author: OPERATOR }),
    { pass: false, state: 'pending', reason: /the author of the merge request/ },
  ],
  [
    'gitops-bot approves itself',
    facts({ approvals: [approved(BOT)] }, { author: REVIEWER }),
    { pass: false, state: 'pending', reason: /gitops-bot cannot approve/ },
  ],
  [
    'an approval given before the latest push',
    facts({ approvals: [approved(OPERATOR, '2026-11-24T09:00:00.000Z')] }),
    { pass: false, state: 'pending', reason: /approved before the latest push/ },
  ],
  [
    'someone GitLab recorded as pushing to the MR approves',
    facts({ approvals: [approved(OPERATOR)], pushers: new Set([BOT.id, OPERATOR.id]) }),
    { pass: false, state: 'pending', reason: /pushed commits/ },
  ],
  [
    "a git identity is no push: only GitLab's push records say who pushed",
    facts({ approvals: [approved(OPERATOR)], pushers: new Set([BOT.id]) }),
    { pass: true, state: 'success' },
  ],
  [
    'the default branch is not protected: no rule read from it is trusted',
    facts({ approvals: [approved(OPERATOR)], trust: { ...TRUSTED, defaultProtected: false } }),
    { pass: false, state: 'failed', summary: /^the default branch main is not protected/ },
  ],
  [
    'the target branch is not protected',
    facts({ approvals: [approved(OPERATOR)], trust: { ...TRUSTED, targetProtected: false } }),
    {
      pass: false,
      state: 'failed',
      summary: /^target branch main is not protected, so a Developer could push/,
    },
  ],
  [
    'an environment without target_branches governs the default branch',
    facts({ policy: ANY_BRANCH, approvals: [approved(OPERATOR)] }),
    { pass: true, state: 'success' },
  ],
  [
    'an environment without target_branches does not govern a branch an MR author picks',
    facts({ policy: ANY_BRANCH, approvals: [approved(OPERATOR)] }, { targetBranch: 'evil-base' }),
    {
      pass: false,
      state: 'failed',
      summary: /^target branch evil-base is not governed by the rules on main \(they govern main\)/,
    },
  ],
  [
    "gitops-bot's MR with changes it did not write: approvals cannot pass it",
    facts({ approvals: [approved(OPERATOR)], foreign: FOREIGN }),
    {
      pass: false,
      state: 'failed',
      summary: /^@reviewer pushed changes gitops-bot did not write: evil\.yml \(1 hunk\); approvals cannot/,
    },
  ],
  [
    'a file over the size limit: nothing is judged',
    facts({ approvals: [approved(OPERATOR)], unreadable: 'big.yml at abc is over the 16 MiB limit' }),
    { pass: false, state: 'failed', summary: /big\.yml at abc is over the 16 MiB limit/ },
  ],
  [
    'a major bump needs a second approval',
    facts({ approvals: [approved(OPERATOR)], bumpKind: 'major' }),
    { pass: false, state: 'pending', summary: /^1\/2 approvals from operator \(major bump: \+1\)$/ },
  ],
  [
    'a minor bump does not',
    facts({ approvals: [approved(OPERATOR)], bumpKind: 'minor' }),
    { pass: true, state: 'success' },
  ],
  [
    'inside a freeze window (Saturday in Madrid)',
    facts({ approvals: [approved(OPERATOR)], now: new Date('2026-11-28T12:00:00Z') }),
    {
      pass: false,
      state: 'pending',
      summary: /freeze window \(sat,sun 00:00-24:00 Europe\/Madrid\): weekend/,
    },
  ],
  [
    'a draft',
    facts({ approvals: [approved(OPERATOR)] }, { draft: true }),
    { pass: false, state: 'pending', summary: /draft/ },
  ],
  [
    'an invalid policy blocks',
    facts({ policy: { error: '.gitops-bot.yml: environments: Too small' } }),
    { pass: false, state: 'failed', summary: /^invalid policy/ },
  ],
  [
    'no environment matches the target branch',
    facts({ approvals: [approved(OPERATOR)] }, { targetBranch: 'release' }),
    {
      pass: false,
      state: 'failed',
      summary:
        /^target branch release is not governed by the rules on main \(they govern main, staging, grouped\); gitops-bot never merges into it$/,
    },
  ],
  [
    'staging: a Developer counts',
    facts({ approvals: [approved(REVIEWER)] }, { targetBranch: 'staging' }),
    { pass: true, state: 'success' },
  ],
  [
    'groups: a member of a listed group counts',
    facts({ approvals: [approved(OPERATOR)], groups: GROUPS }, { targetBranch: 'grouped' }),
    { pass: true, state: 'success', summary: /^1\/1 approvals from someone, members of Operators$/ },
  ],
  [
    'groups: a Maintainer outside the listed users and groups does not',
    facts(
      { approvals: [approved(OPERATOR)], groups: new Map([['operators', new Set([99])]]) },
      { targetBranch: 'grouped' },
    ),
    {
      pass: false,
      state: 'pending',
      reason: /not among the approvers of grouped \(someone, members of Operators\)/,
    },
  ],
  [
    'groups: a group the bot cannot read blocks',
    facts(
      { approvals: [approved(OPERATOR)], groups: new Map([['operators', null]]) },
      { targetBranch: 'grouped' },
    ),
    { pass: false, state: 'failed', summary: /approvals\.groups: cannot read group 'Operators'/ },
  ],
  [
    'no policy file: a Maintainer counts',
    facts({ policy: null, approvals: [approved(OPERATOR)] }),
    { pass: true, state: 'success' },
  ],
  [
    'no policy file: a Developer does not',
    facts({ policy: null, approvals: [approved(REVIEWER)] }),
    { pass: false, state: 'pending', reason: /role too low \(Developer; needs Maintainer or higher\)/ },
  ],
];

describe('evaluate: table', () => {
  for (const [name, f, want] of rows) {
    test(name, () => {
      const v = evaluate(f, DEFAULT_POLICY);
      assert.equal(v.pass, want.pass, v.summary);
      assert.equal(v.state, want.state);
      if (want.summary) assert.match(v.summary, want.summary);
      if (want.reason) assert.match(v.approvals.map((a) => a.reason).join('\n'), want.reason);
    });
  }
  test('notes on where the rules came from are carried into the verdict', () => {
    const note = 'The .gitops-bot.yml on staging is ignored';
    const v = evaluate(
      facts({ trust: { ...TRUSTED, notes: [note] } }, { targetBranch: 'staging' }),
      DEFAULT_POLICY,
    );
    assert.deepEqual(v.notes, [note]);
  });
  test('strict-mode facts are carried in the verdict', () => {
    const v = evaluate(facts({ approvals: [approved(OPERATOR)] }), DEFAULT_POLICY);
    assert.equal(v.merge, 'bot');
    assert.equal(v.deployRef, 'deploy/prod');
  });
});

describe('policy file', () => {
  test('invalid policies name the field and the rule', () => {
    const cases: Array<[string, RegExp]> = [
      ['version: 2\nenvironments: [{name: a}]\n', /\.gitops-bot\.yml: version: Invalid input: expected 1/],
      ['version: 1\nenvironments: []\n', /environments: Too small/],
      [
        'version: 1\nenvironments: [{name: a, approvals: {required: -1}}]\n',
        /environments\[0\]\.approvals\.required: Too small/,
      ],
      [
        'version: 1\nenvironments: [{name: a, aprovals: {}}]\n',
        /environments\[0\]: Unrecognized key: "aprovals"/,
      ],
      [
        'version: 1\nenvironments: [{name: a, freeze: [{days: [funday]}]}]\n',
        /environments\[0\]\.freeze\[0\]\.days\[0\]/,
      ],
      ['version: 1\nenvironments: [{name: a}\n', /not valid YAML/],
      [
        'version: 1\nenvironments: [{name: a, freeze: [{days: [fri], from: "22:00", to: "06:00"}]}]\n',
        /environments\[0\]\.freeze\[0\]\.to: expected from before to \(split a window over midnight/,
      ],
      [
        'version: 1\nenvironments: [{name: a, freeze: [{days: [sat], timezone: Europe/Madird}]}]\n',
        /environments\[0\]\.freeze\[0\]\.timezone: expected an IANA time zone/,
      ],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parsePolicy(text),
        (e: Error) => e instanceof PolicyError && message.test(e.message),
        text,
      );
    }
  });

  test('the JSON Schema is published for editors', () => {
    const schema = policyJsonSchema() as { properties: Record<string, unknown>; title: string };
    assert.ok(schema.properties.environments);
    assert.match(schema.title, /gitops-bot/);
  });

  test('globs and freeze windows', () => {
    assert.ok(globToRegExp('prod/**').test('prod/a/b.yml'));
    assert.ok(globToRegExp('**/*.yml').test('deployment.yml'));
    assert.ok(!globToRegExp('prod/*.yml').test('prod/a/b.yml'));
    const w = [{ days: ['mon' as const], from: '09:00', to: '17:00', timezone: 'America/New_York' }];
    assert.ok(activeFreeze(w, new Date('2026-11-23T15:00:00Z'))); // Monday 10:00 in New York
    assert.equal(activeFreeze(w, new Date('2026-11-23T23:00:00Z')), null); // 18:00 there
  });
});
