// decideFeedback: each row is facts as GitLab and the agent gave them, and what must be
// written back (like test/policy/evaluate.test.ts for the gate).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decideFeedback,
  type FeedbackFacts,
  readSection,
  type SectionState,
} from '../../src/feedback/decide.js';
import type { DeploymentInfo } from '../../src/gitlab/client.js';
import type { AgentObservation } from '../../src/model/agent.js';
import { duration } from '../../src/model/duration.js';

const REV = 'a'.repeat(40);
const NEWER = 'b'.repeat(40);
const MERGED = '2026-12-02T12:00:50Z';
const ENV = 'production/helloworld';

function obs(over: Partial<AgentObservation>): AgentObservation {
  return {
    agent: 'argocd',
    app: 'helloworld',
    revision: REV,
    phase: 'succeeded',
    health: 'Healthy',
    message: 'successfully synced',
    at: '2026-12-02T12:03:00Z',
    ...over,
  };
}

function dep(id: number, status: DeploymentInfo['status'], sha = REV): DeploymentInfo {
  return {
    id,
    iid: id,
    sha,
    ref: 'deploy/prod',
    status,
    environment: ENV,
    createdAt: '2026-12-02T12:01:00Z',
    updatedAt: '2026-12-02T12:01:00Z',
    finishedAt: null,
    user: { id: 5, username: 'gitops-bot' },
  };
}

const state = (
  status: SectionState['status'],
  at: string,
  text: string,
  reason?: SectionState['reason'],
) => ({
  [ENV]: { sha: REV, status, at, text, ...(reason ? { reason } : {}) },
});

function facts(over: Partial<FeedbackFacts> = {}, section: Record<string, SectionState> = {}): FeedbackFacts {
  return {
    project: 'root/helloworld-ops',
    agentApp: 'argocd:helloworld',
    revision: REV,
    observation: obs({}),
    now: '2026-12-02T12:03:05Z',
    environments: [
      {
        name: 'production',
        ref: 'deploy/prod',
        timeoutMs: 600_000,
        mergeRequests: [
          {
            iid: 1,
            webUrl: 'http://gitlab/root/helloworld-ops/-/merge_requests/1',
            mergedAt: MERGED,
            apps: ['helloworld'],
            appMergeRequests: ['root/helloworld!1'],
            section,
          },
        ],
      },
    ],
    deployments: [],
    status: null,
    ...over,
  };
}

const HEALTHY = '✅ Synced and Healthy in production at 12:03 (2 min 10 s after merge)';

interface Row {
  name: string;
  facts: FeedbackFacts;
  deployments: Array<[string, string]>;
  status?: string | null;
  /** the section's line for ENV, or null: the section stays as it is */
  line?: string | null;
  appNotes?: string[];
  alert?: string | null;
  recheckAt?: string | null;
}

const rows: Row[] = [
  {
    name: 'healthy path, 1: sync running, nothing in GitLab yet → create running; the section waits for the outcome',
    facts: facts({
      observation: obs({ phase: 'running', health: 'Progressing', at: '2026-12-02T12:01:00Z' }),
    }),
    deployments: [['create', 'running']],
    status: 'running',
    line: null,
    appNotes: [],
    alert: null,
    recheckAt: '2026-12-02T12:10:50.000Z',
  },
  {
    name: 'applied, not Healthy yet (Progressing) → running; still no section',
    facts: facts({
      deployments: [dep(5, 'running')],
      observation: obs({ health: 'Progressing', at: '2026-12-02T12:02:00Z' }),
      status: undefined,
    }),
    deployments: [['none', 'running']],
    status: null,
    line: null,
    alert: null,
    recheckAt: '2026-12-02T12:10:50.000Z',
  },
  {
    name: 'healthy path, 2: synced and healthy → running becomes success, the section appears, app MR told',
    facts: facts({ deployments: [dep(5, 'running')] }),
    deployments: [['update', 'success']],
    status: 'success',
    line: HEALTHY,
    appNotes: ['root/helloworld!1: Deployed to production at 12:03 (helloworld-ops!1)'],
    alert: null,
    recheckAt: null,
  },
  {
    name: 'healthy straight away (no running report): create success',
    facts: facts(),
    deployments: [['create', 'success']],
    status: 'success',
    line: HEALTHY,
  },
  {
    name: 'degraded: failed, with the agent message and an alert',
    facts: facts({
      deployments: [dep(5, 'running')],
      observation: obs({
        health: 'Degraded',
        message: 'Back-off pulling image "registry.example.com/root/helloworld:ci-35"',
      }),
    }),
    deployments: [['update', 'failed']],
    status: 'failed',
    line: '❌ Degraded: Back-off pulling image "registry.example.com/root/helloworld:ci-35"',
    appNotes: [],
    alert: 'degraded',
  },
  {
    name: 'failed sync: failed, the operation message',
    facts: facts({
      deployments: [dep(5, 'running')],
      observation: obs({
        phase: 'failed',
        health: 'Progressing',
        message: 'one or more objects failed to apply',
      }),
    }),
    deployments: [['update', 'failed']],
    status: 'failed',
    line: '❌ Sync failed: one or more objects failed to apply',
    alert: 'sync_failed',
  },
  {
    name: 'timeout: still running 10 min after the merge → failed, ⌛',
    facts: facts({ observation: null, now: '2026-12-02T12:11:00Z', deployments: [dep(5, 'running')] }),
    deployments: [['update', 'failed']],
    status: 'failed',
    line: '⌛ not live after 10 min',
    alert: 'timeout',
  },
  {
    name: 'timeout with no report at all: a failed deployment is created',
    facts: facts({ observation: null, now: '2026-12-02T12:11:00Z' }),
    deployments: [['create', 'failed']],
    line: '⌛ not live after 10 min',
    alert: 'timeout',
  },
  {
    name: 'timeout check before the time: nothing yet, check again at merge + 10 min',
    facts: facts({ observation: null, now: '2026-12-02T12:05:00Z', deployments: [dep(5, 'running')] }),
    deployments: [['none', 'running']],
    line: null,
    alert: null,
    recheckAt: '2026-12-02T12:10:50.000Z',
  },
  {
    name: 'timeout check after success: nothing',
    facts: facts(
      { observation: null, now: '2026-12-02T13:00:00Z', deployments: [dep(5, 'success')] },
      state('success', '2026-12-02T12:03:00Z', HEALTHY),
    ),
    deployments: [['none', 'success']],
    line: null,
    alert: null,
    recheckAt: null,
  },
  {
    name: 'duplicate: the same healthy report again writes nothing',
    facts: facts(
      { deployments: [dep(5, 'success')], status: { state: 'success', description: `${ENV}: Healthy` } },
      state('success', '2026-12-02T12:03:00Z', HEALTHY),
    ),
    deployments: [['none', 'success']],
    status: null,
    line: null,
    alert: null,
  },
  {
    name: 'out of order: running arrives after success → nothing goes back to running',
    facts: facts(
      {
        deployments: [dep(5, 'success')],
        status: { state: 'success', description: `${ENV}: Healthy` },
        observation: obs({ phase: 'running', health: 'Progressing', at: '2026-12-02T12:01:00Z' }),
      },
      state('success', '2026-12-02T12:03:00Z', HEALTHY),
    ),
    deployments: [['none', 'success']],
    status: null,
    line: null,
  },
  {
    name: 'a newer running report after success (a re-sync of the same revision): nothing is written',
    facts: facts({
      deployments: [dep(5, 'success')],
      observation: obs({ phase: 'running', health: 'Healthy', at: '2026-12-02T12:30:00Z' }),
      status: undefined,
    }),
    // asked for running, left as it is (success does not go back)
    deployments: [['none', 'running']],
    status: null,
    line: null,
    appNotes: [],
    alert: null,
  },
  {
    name: 'a running report finds a failed deployment and its twin: the twin is canceled, the status keeps its words',
    facts: facts({
      deployments: [dep(6, 'failed'), dep(5, 'failed')],
      observation: obs({ phase: 'running', health: 'Progressing', at: '2026-12-02T12:30:00Z' }),
      status: undefined,
    }),
    deployments: [
      ['update', 'canceled'],
      ['none', 'running'],
    ],
    status: null,
    line: null,
    alert: null,
  },
  {
    name: 'out of order: an older Degraded after a newer Healthy changes nothing',
    facts: facts(
      {
        deployments: [dep(5, 'success')],
        status: { state: 'success', description: `${ENV}: Healthy` },
        observation: obs({ health: 'Degraded', message: 'x', at: '2026-12-02T12:02:00Z' }),
      },
      state('success', '2026-12-02T12:03:00Z', HEALTHY),
    ),
    deployments: [['none', 'success']],
    status: null,
    line: null,
    alert: null,
  },
  {
    name: 'success then degraded (newer): success → failed, which GitLab allows',
    facts: facts(
      {
        deployments: [dep(5, 'success')],
        observation: obs({ health: 'Degraded', message: 'CrashLoopBackOff', at: '2026-12-02T12:30:00Z' }),
      },
      state('success', '2026-12-02T12:03:00Z', HEALTHY),
    ),
    deployments: [['update', 'failed']],
    status: 'failed',
    line: '❌ Degraded: CrashLoopBackOff',
    alert: 'degraded',
  },
  {
    name: 'failed then healthy (newer): the agent got there after all → success',
    facts: facts(
      { deployments: [dep(5, 'failed')], observation: obs({ at: '2026-12-02T12:20:00Z' }) },
      state('failed', '2026-12-02T12:11:00Z', '⌛ not live after 10 min', 'timeout'),
    ),
    deployments: [['update', 'success']],
    status: 'success',
    line: '✅ Synced and Healthy in production at 12:20 (19 min 10 s after merge)',
  },
  {
    name: 'unknown app: no environment names it, nothing is written',
    facts: facts({ environments: [] }),
    deployments: [],
    status: null,
    line: null,
    alert: null,
  },
  {
    name: 'a revision that deploys no bot change: nothing is written',
    facts: facts({
      environments: [{ name: 'production', ref: 'deploy/prod', timeoutMs: 600_000, mergeRequests: [] }],
    }),
    deployments: [],
    status: null,
    line: null,
    alert: null,
  },
  {
    name: 'two replicas made two deployments: the younger is canceled, the older goes on',
    facts: facts({ deployments: [dep(6, 'running'), dep(5, 'running')] }),
    deployments: [
      ['update', 'canceled'],
      ['update', 'success'],
    ],
    status: 'success',
  },
  {
    name: 'superseded: a newer revision succeeded; the old running one is canceled',
    facts: facts({ deployments: [dep(5, 'running'), dep(6, 'success', NEWER)] }),
    deployments: [['update', 'canceled']],
    status: null,
    line: null,
  },
];

describe('decideFeedback', () => {
  for (const r of rows)
    test(r.name, () => {
      const d = decideFeedback(r.facts);
      assert.deepEqual(
        d.deployments.map((x) => [x.action, x.status]),
        r.deployments,
        d.deployments.map((x) => x.why).join('; '),
      );
      if (r.status !== undefined) assert.equal(d.status?.state ?? null, r.status, 'commit status');
      if (r.line !== undefined) {
        const section = d.sections.find((s) => s.iid === 1)?.section;
        if (r.line === null) assert.equal(section, undefined, 'section unchanged');
        else {
          assert.ok(section, 'a section');
          assert.ok(section.includes('### Deployment'));
          assert.equal(readSection(section)?.[ENV]?.text, r.line);
          assert.ok(section.includes(r.line));
        }
      }
      if (r.appNotes)
        assert.deepEqual(
          d.appNotes.map((n) => `${n.ref}: ${n.body}`),
          r.appNotes,
        );
      if (r.alert !== undefined) assert.equal(d.alerts[0]?.reason ?? null, r.alert);
      if (r.recheckAt !== undefined) assert.equal(d.recheckAt, r.recheckAt);
    });

  test('the alert names the revision, the environment and the message; once per revision (its marker)', () => {
    const d = decideFeedback(
      facts({ observation: obs({ health: 'Degraded', message: 'ImagePullBackOff' }) }),
    );
    assert.equal(d.alerts.length, 1);
    assert.match(d.alerts[0].body, /aaaaaaaa.*production.*❌ Degraded: ImagePullBackOff/);
    assert.equal(d.alerts[0].marker, `<!-- gitops-bot:deploy-alert ${ENV} ${REV} -->`);
    assert.deepEqual(d.alerts[0].iids, [1]);
  });

  test('the section round-trips its state (the next run reads what this one wrote)', () => {
    const d = decideFeedback(facts());
    const s = readSection(d.sections[0].section);
    assert.equal(s?.[ENV]?.status, 'success');
    assert.equal(s?.[ENV]?.at, '2026-12-02T12:03:00Z');
    const again = decideFeedback(facts({ deployments: [dep(5, 'success')], status: d.status }, s ?? {}));
    assert.deepEqual(again.sections, [], 'nothing to rewrite');
    assert.equal(again.status, null);
  });

  test("the commit status's words: Healthy, or the failure as the section says it (gitops-bot status reads them)", () => {
    const degraded = decideFeedback(
      facts({ observation: obs({ health: 'Degraded', message: 'ImagePullBackOff: x' }) }),
    );
    assert.equal(degraded.status?.description, `${ENV}: Degraded: ImagePullBackOff: x`);
    const timeout = decideFeedback(
      facts({ observation: null, now: '2026-12-02T12:11:00Z', deployments: [dep(5, 'running')] }),
    );
    assert.equal(timeout.status?.description, `${ENV}: not live after 10 min`);
    assert.equal(decideFeedback(facts()).status?.description, `${ENV}: Healthy`);
  });

  test('the status not read (serve saves the request): written when a deployment or a section changes, else not', () => {
    const first = decideFeedback(facts({ status: undefined }));
    assert.equal(first.status?.state, 'success', 'a new deployment: written');
    const s = readSection(first.sections[0].section) ?? {};
    const again = decideFeedback(facts({ status: undefined, deployments: [dep(5, 'success')] }, s));
    assert.equal(again.status, null, 'nothing changed: not written');
  });

  test('durations read as people say them', () => {
    assert.deepEqual(
      [duration(45_000), duration(130_000), duration(600_000), duration(3_900_000)],
      ['45 s', '2 min 10 s', '10 min', '1 h 5 min'],
    );
  });
});

// on_degraded: rollback — which failures open a rollback MR (apply calls rollback() for each).
const CI35 = {
  image: 'registry.example.com/root/helloworld',
  tag: 'ci-35',
  files: ['deployment.yml'],
  target: 'main',
};
const BACKOFF = 'Back-off pulling image "registry.example.com/root/helloworld:ci-35"';

/** facts() with production's on_degraded, its bot MR's record, and `over` (its deployments, report). */
function degradedFacts(
  onDegraded: 'alert' | 'rollback' | undefined,
  over: Partial<FeedbackFacts> = {},
  section: Record<string, SectionState> = {},
): FeedbackFacts {
  const f = facts(over, section);
  return {
    ...f,
    environments: f.environments.map((e) => ({
      ...e,
      ...(onDegraded ? { onDegraded } : {}),
      mergeRequests: e.mergeRequests.map((m) => ({ ...m, records: { helloworld: CI35 } })),
    })),
  };
}

const rollbackRows: Array<{
  name: string;
  facts: FeedbackFacts;
  rollbacks: Array<{ environment: string; app: string; reason: string; agentMessage?: string }>;
}> = [
  {
    name: 'Degraded, on_degraded: rollback → roll helloworld back in production, the agent’s words as the reason',
    facts: degradedFacts('rollback', {
      deployments: [dep(5, 'running')],
      observation: obs({ health: 'Degraded', message: BACKOFF }),
    }),
    rollbacks: [
      { environment: 'production', app: 'helloworld', reason: `Degraded: ${BACKOFF}`, agentMessage: BACKOFF },
    ],
  },
  {
    name: 'Degraded, on_degraded: alert (the default) → no rollback',
    facts: degradedFacts(undefined, {
      deployments: [dep(5, 'running')],
      observation: obs({ health: 'Degraded', message: BACKOFF }),
    }),
    rollbacks: [],
  },
  {
    name: 'Degraded, on_degraded: alert (explicit) → no rollback',
    facts: degradedFacts('alert', {
      deployments: [dep(5, 'running')],
      observation: obs({ health: 'Degraded', message: BACKOFF }),
    }),
    rollbacks: [],
  },
  {
    name: 'a failed sync → rollback',
    facts: degradedFacts('rollback', {
      deployments: [dep(5, 'running')],
      observation: obs({
        phase: 'failed',
        health: 'Progressing',
        message: 'one or more objects failed to apply',
      }),
    }),
    rollbacks: [
      {
        environment: 'production',
        app: 'helloworld',
        reason: 'Sync failed: one or more objects failed to apply',
        agentMessage: 'one or more objects failed to apply',
      },
    ],
  },
  {
    name: 'a timeout → rollback, "no Healthy within 10 min"',
    facts: degradedFacts('rollback', {
      observation: null,
      now: '2026-12-02T12:11:00Z',
      deployments: [dep(5, 'running')],
    }),
    rollbacks: [{ environment: 'production', app: 'helloworld', reason: 'no Healthy within 10 min' }],
  },
  {
    name: 'a timeout check before the time → nothing',
    facts: degradedFacts('rollback', {
      observation: null,
      now: '2026-12-02T12:05:00Z',
      deployments: [dep(5, 'running')],
    }),
    rollbacks: [],
  },
  {
    name: 'Healthy → nothing',
    facts: degradedFacts('rollback', { deployments: [dep(5, 'running')] }),
    rollbacks: [],
  },
  {
    name: 'Progressing → nothing (not a failure yet)',
    facts: degradedFacts('rollback', {
      deployments: [dep(5, 'running')],
      observation: obs({ health: 'Progressing' }),
    }),
    rollbacks: [],
  },
  {
    name: 'Degraded for a revision no bot MR deployed → nothing',
    facts: {
      ...degradedFacts('rollback', { observation: obs({ health: 'Degraded', message: BACKOFF }) }),
      environments: [
        {
          name: 'production',
          ref: 'deploy/prod',
          timeoutMs: 600_000,
          onDegraded: 'rollback',
          mergeRequests: [],
        },
      ],
    },
    rollbacks: [],
  },
  {
    name: 'a repeated Degraded report → nothing (the rollback was asked when it became failed; a person may have closed it)',
    facts: degradedFacts(
      'rollback',
      {
        deployments: [dep(5, 'failed')],
        observation: obs({ health: 'Degraded', message: BACKOFF, at: '2026-12-02T12:04:00Z' }),
      },
      state('failed', '2026-12-02T12:03:00Z', `❌ Degraded: ${BACKOFF}`, 'degraded'),
    ),
    rollbacks: [],
  },
  {
    name: 'an older Degraded report than the state → nothing',
    facts: degradedFacts(
      'rollback',
      {
        deployments: [dep(5, 'success')],
        observation: obs({ health: 'Degraded', message: 'x', at: '2026-12-02T12:02:00Z' }),
      },
      state('success', '2026-12-02T12:03:00Z', HEALTHY),
    ),
    rollbacks: [],
  },
  {
    name: 'Degraded after the rollback’s revision succeeded (superseded) → nothing',
    facts: degradedFacts('rollback', {
      deployments: [dep(5, 'failed'), dep(6, 'success', NEWER)],
      observation: obs({ health: 'Degraded', message: BACKOFF }),
    }),
    rollbacks: [],
  },
];

describe('decideFeedback: on_degraded: rollback', () => {
  for (const r of rollbackRows)
    test(r.name, () => {
      const d = decideFeedback(r.facts);
      assert.deepEqual(
        d.rollbacks.map(({ environment, app, reason, agentMessage }) => ({
          environment,
          app,
          reason,
          ...(agentMessage !== undefined ? { agentMessage } : {}),
        })),
        r.rollbacks,
      );
      for (const x of d.rollbacks) {
        assert.deepEqual(x.failed, CI35, 'what failed, from the record');
        assert.deepEqual(x.iids, [1]);
      }
    });

  test('a rollback that degrades is not rolled back again: the alert says a person decides', () => {
    const f = degradedFacts('rollback', {
      deployments: [dep(5, 'running')],
      observation: obs({ health: 'Degraded', message: BACKOFF }),
    });
    const [env] = f.environments;
    const rolledBack = {
      ...env.mergeRequests[0],
      records: { helloworld: { ...CI35, tag: 'ci-34', rollback: true } },
    };
    const d = decideFeedback({ ...f, environments: [{ ...env, mergeRequests: [rolledBack] }] });
    assert.deepEqual(d.rollbacks, []);
    assert.equal(d.alerts.length, 1);
    assert.match(d.alerts[0].body, /not rolled back again: !1 is itself a rollback/);
  });

  test('what failed is the newest bot MR’s proposal of the app', () => {
    const f = degradedFacts('rollback', {
      deployments: [dep(5, 'running')],
      observation: obs({ health: 'Degraded', message: BACKOFF }),
    });
    const [env] = f.environments;
    const older = {
      ...env.mergeRequests[0],
      iid: 2,
      mergedAt: '2026-12-02T11:00:00Z',
      records: { helloworld: { ...CI35, tag: 'ci-34' } },
    };
    const d = decideFeedback({
      ...f,
      environments: [{ ...env, mergeRequests: [older, env.mergeRequests[0]] }],
    });
    assert.equal(d.rollbacks[0].failed?.tag, 'ci-35');
    assert.deepEqual(d.rollbacks[0].iids, [2, 1]);
  });
});
