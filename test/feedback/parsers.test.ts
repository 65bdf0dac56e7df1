// The agents' words, read: Argo CD Applications (REST and our notification's partial one)
// and Flux events, each row an input and what it must read as (or the error naming the field).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { observeArgoApplication } from '../../src/feedback/argocd.js';
import { fluxRevision, observeFluxEvent } from '../../src/feedback/flux.js';
import { FeedbackInputError } from '../../src/model/agent.js';

const REV = '8f1c2d3e4b5a69788f1c2d3e4b5a69788f1c2d3e';
const OLD = '1111111111111111111111111111111111111111';

/** AGENTS.md 1.3's example, with overrides on status. */
function argo(status: Record<string, unknown>, name = 'web') {
  return {
    metadata: { name, namespace: 'argocd' },
    spec: { source: { repoURL: 'https://g.example/d.git', path: 'web', targetRevision: 'main' } },
    status: {
      sync: { status: 'Synced', revision: REV },
      health: { status: 'Healthy', lastTransitionTime: '2026-05-01T10:02:40Z' },
      operationState: {
        operation: { sync: { revision: REV }, initiatedBy: { automated: true } },
        phase: 'Succeeded',
        message: 'successfully synced',
        syncResult: { revision: REV },
        startedAt: '2026-05-01T10:02:10Z',
        finishedAt: '2026-05-01T10:02:31Z',
      },
      summary: { images: ['reg.example/web:1.4.2'] },
      ...status,
    },
  };
}

describe('observeArgoApplication', () => {
  const rows: Array<[string, unknown, Partial<ReturnType<typeof observeArgoApplication>>]> = [
    [
      'synced and healthy',
      argo({}),
      {
        app: 'web',
        revision: REV,
        phase: 'succeeded',
        health: 'Healthy',
        message: 'successfully synced',
        at: '2026-05-01T10:02:40.000Z',
        images: ['reg.example/web:1.4.2'],
      },
    ],
    [
      'sync running: revision from operation.sync, no syncResult yet',
      argo({
        health: { status: 'Progressing', lastTransitionTime: '2026-05-01T10:02:00Z' },
        operationState: {
          operation: { sync: { revision: REV } },
          phase: 'Running',
          startedAt: '2026-05-01T10:02:10Z',
        },
      }),
      { phase: 'running', health: 'Progressing', revision: REV, at: '2026-05-01T10:02:10.000Z' },
    ],
    [
      'degraded: the health message (ImagePullBackOff) is the message',
      argo({
        health: {
          status: 'Degraded',
          message: 'Back-off pulling image "reg.example/web:ci-35"',
          lastTransitionTime: '2026-05-01T10:03:00Z',
        },
      }),
      { health: 'Degraded', phase: 'succeeded', message: 'Back-off pulling image "reg.example/web:ci-35"' },
    ],
    [
      'degraded without an app message: the degraded resource speaks',
      argo({
        health: { status: 'Degraded', lastTransitionTime: '2026-05-01T10:03:00Z' },
        resources: [
          { kind: 'Service', name: 'web', health: { status: 'Healthy' } },
          { kind: 'Deployment', name: 'web', health: { status: 'Degraded', message: 'ImagePullBackOff: x' } },
        ],
      }),
      { health: 'Degraded', message: 'ImagePullBackOff: x' },
    ],
    [
      'failed sync: the operation message',
      argo({
        operationState: {
          phase: 'Failed',
          message: 'one or more objects failed to apply',
          syncResult: { revision: REV },
          startedAt: '2026-05-01T10:02:10Z',
          finishedAt: '2026-05-01T10:02:31Z',
        },
      }),
      { phase: 'failed', message: 'one or more objects failed to apply' },
    ],
    [
      'Error is failed too',
      argo({ operationState: { phase: 'Error', startedAt: '2026-05-01T10:02:10Z' } }),
      { phase: 'failed' },
    ],
    [
      'no operation: sync.revision, phase null',
      argo({ operationState: undefined, sync: { status: 'OutOfSync', revision: OLD } }),
      { phase: null, revision: OLD },
    ],
    [
      'a non-commit revision (a tag) reads as null',
      argo({ operationState: undefined, sync: { status: 'Synced', revision: 'v1.2.0' } }),
      { revision: null },
    ],
    [
      'an unknown health code is Unknown',
      argo({ health: { status: 'Weird', lastTransitionTime: '2026-05-01T10:02:40Z' } }),
      { health: 'Unknown' },
    ],
    [
      'the notification template: null for absent parts (toJson of nil)',
      {
        metadata: { name: 'web', namespace: 'argocd' },
        spec: { source: null },
        status: {
          sync: { status: 'Synced', revision: REV },
          health: { status: 'Healthy', lastTransitionTime: '2026-05-01T10:02:40Z' },
          operationState: null,
          summary: null,
        },
      },
      { phase: null, revision: REV, health: 'Healthy' },
    ],
  ];
  for (const [name, input, want] of rows)
    test(name, () => {
      const got = observeArgoApplication(input);
      assert.equal(got.agent, 'argocd');
      for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof typeof got], v, k);
    });

  test('a long message is clipped to 1,000 characters', () => {
    const got = observeArgoApplication(
      argo({
        health: { status: 'Degraded', message: 'x'.repeat(5000), lastTransitionTime: '2026-05-01T10:02:40Z' },
      }),
    );
    assert.equal(got.message.length, 1000);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', [], /expected an object/],
    ['no name', { metadata: {}, status: {} }, /metadata\.name: missing/],
    ['no status', { metadata: { name: 'web' } }, /status: missing/],
    [
      'no time at all',
      { metadata: { name: 'web' }, status: { health: { status: 'Healthy' } } },
      /no time given/,
    ],
    [
      'a bad time',
      argo({ health: { status: 'Healthy', lastTransitionTime: 'yesterday' } }),
      /status\.health\.lastTransitionTime: not a time/,
    ],
    [
      'an unknown phase',
      argo({ operationState: { phase: 'Dancing', startedAt: '2026-05-01T10:02:10Z' } }),
      /operationState\.phase: unknown phase Dancing/,
    ],
    ['health not an object', argo({ health: 'Healthy' }), /status\.health: expected an object/],
  ];
  for (const [name, input, message] of bad)
    test(`refused: ${name}`, () => {
      assert.throws(
        () => observeArgoApplication(input),
        (e: Error) => e instanceof FeedbackInputError && message.test(e.message),
      );
    });
});

/** AGENTS.md 3.4's event, with overrides. */
function flux(
  over: Record<string, unknown> = {},
  metadata: Record<string, unknown> = { revision: `main@sha1:${REV}` },
) {
  return {
    involvedObject: {
      kind: 'Kustomization',
      namespace: 'flux-system',
      name: 'apps',
      uid: 'u',
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    },
    severity: 'info',
    timestamp: '2026-05-01T10:02:40Z',
    message: 'Reconciliation finished in 1.2s, next run in 10m0s',
    reason: 'ReconciliationSucceeded',
    metadata,
    reportingController: 'kustomize-controller',
    reportingInstance: 'kustomize-controller-7f',
    ...over,
  };
}

describe('observeFluxEvent', () => {
  const rows: Array<[string, unknown, Partial<ReturnType<typeof observeFluxEvent>>]> = [
    [
      'reconciliation succeeded: healthy',
      flux(),
      {
        app: 'flux-system/apps',
        revision: REV,
        phase: 'succeeded',
        health: 'Healthy',
        at: '2026-05-01T10:02:40.000Z',
      },
    ],
    [
      'prefixed metadata (notification-controller < 1.5)',
      flux({}, { 'kustomize.toolkit.fluxcd.io/revision': `main@sha1:${REV}` }),
      { revision: REV },
    ],
    ['sha1:<hex>', flux({}, { revision: `sha1:${REV}` }), { revision: REV }],
    ['the old main/<hex>', flux({}, { revision: `main/${REV}` }), { revision: REV }],
    ['no revision', flux({}, {}), { revision: null }],
    [
      'an apply in progress',
      flux({ reason: 'Progressing', message: 'Deployment/apps/web configured' }),
      { phase: 'running', health: 'Progressing' },
    ],
    [
      'health check failed: applied, degraded',
      flux({
        severity: 'error',
        reason: 'HealthCheckFailed',
        message:
          "health check failed after 30s: timeout waiting for: [Deployment/apps/web status: 'InProgress']",
      }),
      {
        phase: 'succeeded',
        health: 'Degraded',
        message:
          "health check failed after 30s: timeout waiting for: [Deployment/apps/web status: 'InProgress']",
      },
    ],
    [
      'build failed: a failed apply',
      flux({ severity: 'error', reason: 'BuildFailed', message: 'kustomize build failed' }),
      { phase: 'failed', health: 'Degraded' },
    ],
    [
      'dependency not ready: still running',
      flux({ severity: 'error', reason: 'DependencyNotReady' }),
      { phase: 'running' },
    ],
  ];
  for (const [name, input, want] of rows)
    test(name, () => {
      const got = observeFluxEvent(input);
      assert.equal(got.agent, 'flux');
      for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof typeof got], v, k);
    });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', 'x', /expected an object/],
    ['no involvedObject', { severity: 'info' }, /involvedObject: missing/],
    [
      'not a Kustomization',
      flux({ involvedObject: { kind: 'GitRepository', namespace: 'a', name: 'b' } }),
      /involvedObject\.kind: expected Kustomization, got GitRepository/,
    ],
    [
      'no namespace',
      flux({ involvedObject: { kind: 'Kustomization', name: 'b' } }),
      /involvedObject\.namespace: missing/,
    ],
    ['no timestamp', flux({ timestamp: undefined }), /timestamp: missing/],
    ['bad severity', flux({ severity: 'trace' }), /severity: expected info or error/],
    ['revision not a string', flux({}, { revision: 7 }), /metadata\.revision: expected a string/],
  ];
  for (const [name, input, message] of bad)
    test(`refused: ${name}`, () => {
      assert.throws(
        () => observeFluxEvent(input),
        (e: Error) => e instanceof FeedbackInputError && message.test(e.message),
      );
    });

  test('fluxRevision: forms that are not a commit read as null', () => {
    assert.equal(fluxRevision('v1.0.0'), null);
    assert.equal(fluxRevision(`main@sha256:${'a'.repeat(64)}`), null);
  });
});
