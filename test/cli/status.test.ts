// gitops-bot status: the table builder (facts → rows, a table test), the verdict read back
// from the gate's real comment, and the command against the sandbox (requests counted).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readFacts } from '../../src/cli/status.js';
import {
  type DeploymentFact,
  deployWords,
  freezeEnd,
  type ProposalFact,
  parseVerdictComment,
  renderStatusTable,
  type StatusFacts,
  type StatusRow,
  sinceText,
  statusRows,
  waitsFor,
} from '../../src/feedback/status.js';
import { gate, verdictComment } from '../../src/gate/gate.js';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import type { PromotionRecord } from '../../src/model/record.js';
import type { Verdict } from '../../src/policy/evaluate.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { api, client, OPS, protectDeployRef, run, sandboxFixture, strictOps } from '../helpers.js';

const NOW = new Date('2026-12-02T12:30:00Z');
const SHA1 = 'a'.repeat(40);
const SHA2 = 'b'.repeat(40);
const HEAD = 'c'.repeat(40);

function record(app: string, tag: string, over: Partial<PromotionRecord> = {}): PromotionRecord {
  return {
    v: 1,
    app,
    env: 'main',
    image: `reg.example/root/${app}`,
    tag,
    digest: `sha256:${tag.replace(/\W/g, '').padEnd(64, '0')}`,
    target: 'main',
    files: [],
    source: {},
    ...over,
  };
}

function deployment(id: number, environment: string, sha: string, status: DeploymentFact['status']) {
  return {
    id,
    environment,
    sha,
    status,
    createdAt: '2026-12-02T12:01:00Z',
    updatedAt: '2026-12-02T12:03:10Z',
    finishedAt: status === 'running' ? null : '2026-12-02T12:03:10Z',
  };
}

function verdict(over: Partial<Verdict> = {}): Verdict {
  return {
    pass: false,
    state: 'pending',
    summary: '0/1 approvals from operator',
    environment: 'production',
    required: 1,
    counted: 0,
    approvals: [],
    blockers: [],
    merge: 'bot',
    notes: [],
    ...over,
  };
}

/** A proposal whose verdict is the gate's own comment, parsed back. */
function proposal(iid: number, rec: PromotionRecord | null, v: Verdict | null, sha = HEAD): ProposalFact {
  return {
    iid,
    webUrl: `http://gitlab.example/root/ops/-/merge_requests/${iid}`,
    sha,
    record: rec,
    verdict: v ? parseVerdictComment(verdictComment(v, sha)) : null,
  };
}

const BASE: StatusFacts = {
  now: NOW,
  environments: [],
  deployments: [],
  records: {},
  deployStatus: {},
  proposals: [],
};

describe('the verdict comment read back', () => {
  test('headline, environment, commit and blockers of the gate’s own rendering', () => {
    const v = parseVerdictComment(
      verdictComment(
        verdict({ blockers: ['the merge request is a draft', 'freeze window (sat,sun 00:00-24:00 UTC)'] }),
        HEAD,
      ),
    );
    assert.deepEqual(v, {
      pass: false,
      summary: '0/1 approvals from operator',
      environment: 'production',
      evaluatedAt: HEAD.slice(0, 8),
      blockers: ['the merge request is a draft', 'freeze window (sat,sun 00:00-24:00 UTC)'],
    });
  });
  test('a passing verdict, and a comment that is no verdict', () => {
    assert.equal(
      parseVerdictComment(verdictComment(verdict({ pass: true, state: 'success' }), HEAD))?.pass,
      true,
    );
    assert.equal(parseVerdictComment('✅ **Ready to deploy**: trust me'), null);
  });
  test('a verdict with no environment governing the MR', () => {
    const v = parseVerdictComment(
      verdictComment(verdict({ environment: null, state: 'failed', summary: 'x', blockers: ['x'] }), HEAD),
    );
    assert.equal(v?.environment, null);
    assert.deepEqual(v?.blockers, ['x']);
  });
});

describe('what a proposal waits for', () => {
  const cases: Array<[string, ProposalFact, string]> = [
    ['missing approvals', proposal(1, null, verdict()), '1 approval from operator'],
    [
      'two approvals, escalated',
      proposal(1, null, verdict({ summary: '0/2 approvals from operator (major bump: +1)' })),
      '2 approvals from operator',
    ],
    [
      'approvals and a draft',
      proposal(
        1,
        null,
        verdict({
          summary: '1/2 approvals from Maintainers; the merge request is a draft',
          blockers: ['the merge request is a draft'],
        }),
      ),
      '1 approval from Maintainers; the merge request is a draft',
    ],
    [
      // 2026-12-02 12:30 UTC is a Wednesday, 13:30 in Madrid: the freeze ends at 17:30 there
      'a freeze window: its end in its own time zone',
      proposal(
        1,
        null,
        verdict({
          summary: '1/1 approvals from operator; freeze window (wed 09:00-17:30 Europe/Madrid): release',
          blockers: ['freeze window (wed 09:00-17:30 Europe/Madrid): release'],
        }),
      ),
      'frozen until Wednesday 17:30',
    ],
    ['no verdict yet', proposal(1, null, null), 'the gate (no verdict yet)'],
    [
      'a verdict about an older head',
      { ...proposal(1, null, verdict(), SHA1), sha: HEAD },
      'the gate (its verdict is for an older commit)',
    ],
    [
      'the rules pass',
      proposal(1, null, verdict({ pass: true, state: 'success' })),
      'a merge (the rules pass)',
    ],
    [
      'blocked: the reason',
      proposal(
        1,
        null,
        verdict({
          state: 'failed',
          summary: 'target branch main is not protected, so a Developer could push to it',
          blockers: ['target branch main is not protected, so a Developer could push to it'],
        }),
      ),
      'target branch main is not protected, so a Developer could push to it',
    ],
  ];
  for (const [name, p, want] of cases) test(name, () => assert.equal(waitsFor(p, NOW), want));
});

describe('freeze end', () => {
  test('the window of every weekend day ends Monday at midnight', () => {
    assert.equal(
      freezeEnd('freeze window (sat,sun 00:00-24:00 UTC)', new Date('2026-12-05T10:07:00Z')),
      'Monday 00:00',
    );
  });
  test('a window not in force, or a blocker that is no freeze: null', () => {
    assert.equal(freezeEnd('freeze window (sat,sun 00:00-24:00 UTC)', NOW), null);
    assert.equal(freezeEnd('the merge request is a draft', NOW), null);
  });
  test('every day, all day: no end', () => {
    assert.equal(freezeEnd('freeze window (mon,tue,wed,thu,fri,sat,sun 00:00-24:00 UTC)', NOW), null);
  });
});

describe('the bot’s words on one environment in its deploy status', () => {
  const cases: Array<[string, string, string | null]> = [
    ['production/helloworld: Healthy', 'production/helloworld', 'Healthy'],
    [
      'production/web: Healthy, production/helloworld: Degraded: a, b: c',
      'production/helloworld',
      'Degraded: a, b: c',
    ],
    ['production/helloworld: Degraded: x, production/web: Healthy', 'production/helloworld', 'Degraded: x'],
    ['production/web: Healthy', 'production/helloworld', null],
    ['preproduction/helloworld: failed', 'production/helloworld', null],
    ['preproduction/helloworld: failed, production/helloworld: Healthy', 'production/helloworld', 'Healthy'],
  ];
  for (const [description, environment, want] of cases)
    test(`${description} → ${want}`, () => assert.equal(deployWords(description, environment), want));
});

describe('statusRows', () => {
  const cases: Array<[string, Partial<StatusFacts>, Array<Record<string, unknown>>]> = [
    [
      'deployed and healthy, nothing proposed: tag and digest from the newest record of the app',
      {
        environments: ['production/helloworld'],
        deployments: [deployment(1, 'production/helloworld', SHA1, 'success')],
        records: {
          [SHA1]: [record('other', 'v9'), record('helloworld', 'ci-34'), record('helloworld', 'ci-33')],
        },
      },
      [
        {
          environment: 'production',
          app: 'helloworld',
          tag: 'ci-34',
          health: 'Healthy',
          since: '2026-12-02T12:03:10Z',
          proposed: null,
          waitsFor: null,
        },
      ],
    ],
    [
      'the digest the registry resolved the tag to, when none was pinned',
      {
        deployments: [deployment(1, 'production/helloworld', SHA1, 'success')],
        records: {
          [SHA1]: [record('helloworld', 'ci-34', { digest: undefined, registry: { digest: 'sha256:feed' } })],
        },
      },
      [{ tag: 'ci-34', digest: 'sha256:feed' }],
    ],
    [
      'the newest deployment wins (by id, whatever the order given)',
      {
        deployments: [
          deployment(3, 'production/helloworld', SHA2, 'running'),
          deployment(2, 'production/helloworld', SHA1, 'success'),
        ],
        records: { [SHA1]: [record('helloworld', 'ci-34')], [SHA2]: [record('helloworld', 'ci-35')] },
      },
      [{ tag: 'ci-35', health: 'Progressing', since: '2026-12-02T12:01:00Z' }],
    ],
    [
      'a canceled twin (racing replicas) is passed over; canceled alone is shown',
      {
        deployments: [
          deployment(2, 'production/helloworld', SHA1, 'success'),
          deployment(3, 'production/helloworld', SHA1, 'canceled'),
          deployment(4, 'production/web', SHA1, 'canceled'),
        ],
      },
      [
        { app: 'helloworld', health: 'Healthy' },
        { app: 'web', health: 'Canceled' },
      ],
    ],
    [
      'degraded: the bot’s deploy status says so, and its words are the detail',
      {
        deployments: [deployment(4, 'production/helloworld', SHA2, 'failed')],
        records: { [SHA2]: [record('helloworld', 'ci-35')] },
        deployStatus: {
          [SHA2]: {
            state: 'failed',
            description:
              'production/helloworld: Degraded: Back-off pulling image "reg/helloworld:ci-35", staging/web: Healthy',
          },
        },
      },
      [
        {
          tag: 'ci-35',
          health: 'Degraded',
          detail: 'Degraded: Back-off pulling image "reg/helloworld:ci-35"',
        },
      ],
    ],
    [
      'failed without the bot’s words, or with no more than that: Failed',
      {
        deployments: [
          deployment(4, 'production/helloworld', SHA2, 'failed'),
          deployment(5, 'production/web', SHA1, 'failed'),
        ],
        deployStatus: { [SHA1]: { state: 'failed', description: 'production/web: failed' } },
      },
      [
        { app: 'helloworld', tag: null, health: 'Failed', detail: null },
        { app: 'web', tag: null, health: 'Failed', detail: null },
      ],
    ],
    [
      'a timeout: Failed, and the bot says why',
      {
        deployments: [deployment(4, 'production/helloworld', SHA2, 'failed')],
        deployStatus: {
          [SHA2]: { state: 'failed', description: 'production/helloworld: not live after 10 min' },
        },
      },
      [{ tag: null, health: 'Failed', detail: 'not live after 10 min' }],
    ],
    [
      'an open proposal: its tag, link and what it waits for, in the verdict’s environment',
      {
        deployments: [deployment(1, 'production/helloworld', SHA1, 'success')],
        records: { [SHA1]: [record('helloworld', 'ci-34')] },
        proposals: [proposal(3, record('helloworld', 'ci-35'), verdict())],
      },
      [{ tag: 'ci-34', proposedTag: 'ci-35', iid: 3, waitsFor: '1 approval from operator' }],
    ],
    [
      'proposed, never deployed; its record’s env when the gate has not spoken',
      { proposals: [proposal(2, record('web', '1.2.0', { env: 'staging' }), null)] },
      [{ environment: 'staging', app: 'web', tag: undefined, health: 'none', proposedTag: '1.2.0' }],
    ],
    [
      'environments gitops-bot does not name <env>/<app> are left out; an empty one is a row',
      { environments: ['production', 'production/helloworld'] },
      [{ environment: 'production', app: 'helloworld', health: 'none' }],
    ],
    [
      '--env keeps its rows only',
      {
        env: 'staging',
        deployments: [
          deployment(1, 'production/helloworld', SHA1, 'success'),
          deployment(2, 'staging/helloworld', SHA2, 'success'),
        ],
        proposals: [proposal(3, record('helloworld', 'ci-35'), verdict())],
      },
      [{ environment: 'staging', app: 'helloworld', proposedTag: undefined }],
    ],
    ['an MR without the bot’s record is no proposal', { proposals: [proposal(5, null, verdict())] }, []],
  ];
  for (const [name, over, want] of cases) {
    test(name, () => {
      const rows = statusRows({ ...BASE, ...over });
      assert.equal(rows.length, want.length, JSON.stringify(rows));
      rows.forEach((r, i) => {
        const flat: Record<string, unknown> = {
          environment: r.environment,
          app: r.app,
          tag: r.deployed ? r.deployed.tag : undefined,
          digest: r.deployed?.digest,
          health: r.health,
          since: r.since,
          detail: r.detail,
          proposed: r.proposed,
          proposedTag: r.proposed?.tag,
          iid: r.proposed?.iid,
          waitsFor: r.waitsFor,
        };
        for (const [k, v] of Object.entries(want[i])) assert.deepEqual(flat[k], v, `${k} of row ${i}`);
      });
    });
  }
});

describe('rendering', () => {
  test('aligned columns, the link under the table', () => {
    const rows = statusRows({
      ...BASE,
      deployments: [
        deployment(1, 'production/helloworld', SHA1, 'success'),
        deployment(2, 'staging/web', SHA1, 'running'),
      ],
      records: { [SHA1]: [record('helloworld', 'ci-34'), record('web', '1.2.0')] },
      proposals: [proposal(3, record('helloworld', 'ci-35'), verdict())],
    });
    const text = renderStatusTable(rows, NOW);
    const lines = text.split('\n');
    assert.match(
      lines[0],
      /^ENVIRONMENT {2}APP {9}DEPLOYED {2}DIGEST {8}HEALTH {7}SINCE {6}PROPOSED {4}WAITS FOR$/,
    );
    assert.match(lines[1], /^production {3}helloworld {2}ci-34 {5}ci3400000000 {2}Healthy/);
    // every column starts at the same place on every line
    const at = (l: string, word: string) => l.indexOf(word);
    assert.equal(at(lines[1], 'Healthy'), at(lines[0], 'HEALTH'));
    assert.equal(at(lines[2], 'Progressing'), at(lines[0], 'HEALTH'));
    assert.equal(at(lines[1], 'ci-35 (!3)'), at(lines[0], 'PROPOSED'));
    assert.match(text, /\n {2}!3: http:\/\/gitlab\.example\/root\/ops\/-\/merge_requests\/3\n$/);
  });
  test('the health column: the bot’s words once, clipped', () => {
    const rows = statusRows({
      ...BASE,
      deployments: [deployment(4, 'production/helloworld', SHA2, 'failed')],
      deployStatus: {
        [SHA2]: {
          state: 'failed',
          description: `production/helloworld: Degraded: Back-off pulling image "${'x'.repeat(80)}"`,
        },
      },
    });
    const line = renderStatusTable(rows, NOW).split('\n')[1];
    assert.match(line, / Degraded: Back-off pulling image "x+… /);
    assert.doesNotMatch(line, /Degraded: Degraded/);
  });
  test('nothing to show says so', () => {
    assert.match(renderStatusTable([], NOW), /^no environments/);
  });
  test('since: the time today, the date before', () => {
    assert.equal(sinceText('2026-12-02T12:03:10Z', NOW), '12:03 UTC');
    assert.equal(sinceText('2026-11-30T08:00:00Z', NOW), 'Nov 30 08:00 UTC');
  });
});

describe('gitops-bot status against the sandbox', () => {
  const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  const IMAGE = 'registry.example.com/root/helloworld';
  let sb: Sandbox;
  let botId: number;
  const env = () => ({ ...process.env, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' });
  const bot = () => new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  const propose = (tag: string) =>
    promote(
      {
        project: OPS,
        files: ['deployment.yml'],
        image: IMAGE,
        tag,
        assignees: ['operator'],
        targetBranch: 'main',
      },
      { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
    );
  /** a Deployment as the feedback loop writes it (the bot's token, the Deployments API) */
  const deploy = async (sha: string, status: 'running' | 'success' | 'failed', id?: number) => {
    const path = `/projects/${encodeURIComponent(OPS)}/deployments${id ? `/${id}` : ''}`;
    const r = await api(sb, path, {
      method: id ? 'PUT' : 'POST',
      token: 'gitops-bot-token',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(
        id
          ? { status }
          : { environment: 'production/helloworld', sha, ref: 'deploy/prod', tag: false, status },
      ),
    });
    assert.ok(r.status < 300, `deployment: ${r.status} ${JSON.stringify(r.body)}`);
    return (r.body as { id: number }).id;
  };
  let merged: string;

  before(async () => {
    sb = await sandboxFixture();
    await strictOps(sb);
    botId = (await bot().currentUser()).id;
    await protectDeployRef(sb, botId);
    const ctx = { gitlab: bot(), botUserId: botId, botUsername: 'gitops-bot' };
    // ci-34: proposed, approved by operator, merged by the bot, deployed and healthy
    const one = await propose('ci-34');
    await client(sb, 'operator').MergeRequestApprovals.approve(OPS, one.mr!.iid);
    await gate(ctx, OPS, one.mr!.iid, { merge: true });
    merged = String((await client(sb, 'operator').MergeRequests.show(OPS, one.mr!.iid)).merge_commit_sha);
    await deploy(merged, 'success', await deploy(merged, 'running'));
    // ci-35: proposed, and the gate says what it waits for
    const two = await propose('ci-35');
    await gate(ctx, OPS, two.mr!.iid);
  });
  after(() => sb?.close());

  test('the table: ci-34 deployed and Healthy, ci-35 proposed waiting for 1 approval from operator', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'status', '--project', OPS], { env: env() });
    const [head, row] = stdout.split('\n');
    assert.match(head, /^ENVIRONMENT +APP +DEPLOYED +DIGEST +HEALTH +SINCE +PROPOSED +WAITS FOR$/);
    assert.match(
      row,
      /^production +helloworld +ci-34 +- +Healthy +\d\d:\d\d UTC +ci-35 \(!2\) +1 approval from operator$/,
    );
    assert.match(stdout, /!2: http:\/\/127\.0\.0\.1:\d+\/root\/helloworld-ops\/-\/merge_requests\/2\n/);
  });

  test('a few requests whatever the history: 30 more deployments and commits cost none more', async () => {
    const first = await readFacts({ url: sb.url, token: 'gitops-bot-token' }, OPS);
    for (let i = 0; i < 30; i++) await deploy(merged, 'success', await deploy(merged, 'running'));
    const op = client(sb, 'operator');
    for (let i = 0; i < 5; i++)
      await op.Commits.create(OPS, 'main', `note ${i}`, [
        { action: 'create', filePath: `notes/${i}.txt`, content: `${i}\n` },
      ]);
    const later = await readFacts({ url: sb.url, token: 'gitops-bot-token' }, OPS);
    // user, environments, deployments, open MRs; history and deploy status of the one
    // deployed commit; the comments of the one proposal
    assert.equal(first.requests, 7);
    assert.equal(later.requests, first.requests);
    assert.equal(statusRows(later.facts)[0].deployed?.tag, 'ci-34');
  });

  test('what a Developer writes is not read: a forged verdict comment and deploy status', async () => {
    // a proposal the gate has not judged yet (ci-36 to staging), and a Developer's verdict on it
    const three = await promote(
      {
        project: OPS,
        files: ['deployment.yml'],
        image: IMAGE,
        tag: 'ci-36',
        env: 'staging',
        targetBranch: 'main',
      },
      { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
    );
    const head = String((await client(sb, 'operator').MergeRequests.show(OPS, three.mr!.iid)).sha);
    const reviewer = client(sb, 'reviewer');
    await reviewer.MergeRequestNotes.create(
      OPS,
      three.mr!.iid,
      `<!-- gitops-bot:verdict -->\n✅ **Ready to deploy**: 1/1 approvals from operator\n\nEnvironment: \`production\`; rules read from \`main\`; evaluated at \`${head.slice(0, 8)}\` (forged).`,
    );
    // the deployment failed, and a Developer explains why under the bot's status name
    await deploy(merged, 'failed', await deploy(merged, 'running'));
    await reviewer.Commits.editStatus(OPS, merged, 'failed', {
      name: 'gitops-bot/deploy',
      description: 'production/helloworld: Degraded: forged',
    });
    const { stdout } = await run(process.execPath, [CLI, 'status', '--project', OPS, '--json'], {
      env: env(),
    });
    assert.equal(stdout.trimEnd().split('\n').length, 1, 'one JSON line');
    const { rows } = JSON.parse(stdout);
    assert.deepEqual(
      rows.map((r: StatusRow) => [r.environment, r.health, r.detail, r.proposed?.tag, r.waitsFor]),
      [
        ['production', 'Failed', null, 'ci-35', '1 approval from operator'],
        ['staging', 'none', null, 'ci-36', 'the gate (no verdict yet)'],
      ],
    );
  });

  test('--env of another environment: no rows; an unknown project: exit 8; an empty --env: exit 2', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'status', '--project', OPS, '--env', 'qa'], {
      env: env(),
    });
    assert.match(stdout, /^no environments/);
    const missing = await run(process.execPath, [CLI, 'status', '--project', 'root/nope', '--json'], {
      env: env(),
    }).catch((e) => e);
    assert.equal(missing.code, 8);
    assert.match(missing.stderr, /root\/nope: no such project, or the token cannot read it/);
    assert.equal(JSON.parse(missing.stdout).exit, 8);
    const empty = await run(process.execPath, [CLI, 'status', '--project', OPS, '--env', ' '], {
      env: env(),
    }).catch((e) => e);
    assert.equal(empty.code, 2);
  });

  test("another token (operator, a Maintainer) reads the bot's comments with --bot; an unknown --bot is exit 2", async () => {
    const operatorEnv = { ...env(), GITOPS_BOT_TOKEN: 'operator-token' };
    const { stdout } = await run(
      process.execPath,
      [CLI, 'status', '--project', OPS, '--env', 'production', '--bot', 'gitops-bot', '--json'],
      { env: operatorEnv },
    );
    const [row] = JSON.parse(stdout).rows;
    assert.equal(row.proposed.tag, 'ci-35');
    assert.equal(row.waitsFor, '1 approval from operator');
    const unknown = await run(process.execPath, [CLI, 'status', '--project', OPS, '--bot', 'nobody'], {
      env: operatorEnv,
    }).catch((e) => e);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--bot nobody: no such user/);
  });

  test('--help shows an example', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'status', '--help']);
    assert.match(stdout, /\$ gitops-bot status --project root\/helloworld-ops --env production/);
  });
});
