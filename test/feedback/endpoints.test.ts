// serve's agent endpoints, the pure parts: who may speak (the shared secret, Flux's HMAC
// signature in each algorithm it may use) and which jobs a report makes.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { routeAgent } from '../../src/server/route.js';
import { agentAuthProblem } from '../../src/server/webhook.js';

const SECRET = 's3cret';
const BODY = Buffer.from('{"involvedObject":{}}');
const sign = (alg: string, key = SECRET, body = BODY) =>
  `${alg}=${createHmac(alg, key).update(body).digest('hex')}`;

const rows: Array<[string, 'argocd' | 'flux', Record<string, string>, string | null]> = [
  ['the token', 'argocd', { 'x-gitops-bot-token': SECRET }, null],
  ['a wrong token', 'argocd', { 'x-gitops-bot-token': 'nope' }, 'X-Gitops-Bot-Token does not match'],
  ['no token', 'argocd', {}, 'missing X-Gitops-Bot-Token'],
  [
    'Argo CD cannot sign: a signature is no token',
    'argocd',
    { 'x-signature': sign('sha256') },
    'missing X-Gitops-Bot-Token',
  ],
  ['Flux generic: the token header', 'flux', { 'x-gitops-bot-token': SECRET }, null],
  ['Flux generic-hmac sha256', 'flux', { 'x-signature': sign('sha256') }, null],
  ['sha224', 'flux', { 'x-signature': sign('sha224') }, null],
  ['sha384', 'flux', { 'x-signature': sign('sha384') }, null],
  ['sha512', 'flux', { 'x-signature': sign('sha512') }, null],
  [
    'signed with another key',
    'flux',
    { 'x-signature': sign('sha256', 'other') },
    'X-Signature does not match',
  ],
  [
    'signed over another body',
    'flux',
    { 'x-signature': sign('sha256', SECRET, Buffer.from('{}')) },
    'X-Signature does not match',
  ],
  [
    'md5 is not taken',
    'flux',
    { 'x-signature': `md5=${'0'.repeat(32)}` },
    'X-Signature is not <algorithm>=<hex>',
  ],
  ['neither', 'flux', {}, 'missing X-Gitops-Bot-Token or X-Signature'],
];
for (const [name, kind, headers, want] of rows)
  test(`auth: ${name}`, () => {
    assert.equal(agentAuthProblem(kind, SECRET, headers, BODY), want);
  });

const REV = 'c'.repeat(40);
const argo = (repoURL: string) => ({
  application: {
    metadata: { name: 'helloworld', namespace: 'argocd' },
    spec: { source: { repoURL, path: '.', targetRevision: 'deploy/prod' } },
    status: {
      sync: { status: 'Synced', revision: REV },
      health: { status: 'Healthy', lastTransitionTime: '2026-12-02T12:00:00Z' },
    },
  },
});
const flux = {
  involvedObject: { kind: 'Kustomization', namespace: 'flux-system', name: 'apps' },
  severity: 'info',
  timestamp: '2026-12-02T12:00:00Z',
  reason: 'ReconciliationSucceeded',
  message: 'ok',
  metadata: { revision: `main@sha1:${REV}` },
};
const managed = new Map([
  [2, { id: 2, path: 'root/helloworld-ops' }],
  [3, { id: 3, path: 'root/other-ops' }],
]);

test('route: with managed projects, a job for each (each one’s policy decides)', () => {
  const r = routeAgent(
    'argocd',
    argo('https://elsewhere.example/x.git'),
    managed,
    'https://gitlab.example.com',
  );
  assert.equal(r.result, 'queued');
  assert.deepEqual(r.result === 'queued' ? r.jobs.map((j) => [j.type, j.project]) : [], [
    ['agent', 'root/helloworld-ops'],
    ['agent', 'root/other-ops'],
  ]);
});

test('route: without managed projects, an Argo CD source on this GitLab names the project', () => {
  const r = routeAgent(
    'argocd',
    argo('https://gitlab.example.com/root/helloworld-ops.git'),
    null,
    'https://gitlab.example.com',
  );
  assert.deepEqual(r.result === 'queued' ? r.jobs.map((j) => j.project) : r.result, ['root/helloworld-ops']);
  assert.equal(
    routeAgent(
      'argocd',
      argo('https://github.com/root/helloworld-ops.git'),
      null,
      'https://gitlab.example.com',
    ).result,
    'unmanaged',
  );
  assert.equal(
    routeAgent('flux', flux, null, 'https://gitlab.example.com').result,
    'unmanaged',
    'a Flux event names no repository',
  );
});

test('route: a bare Application (the REST answer) reads like the notification', () => {
  const r = routeAgent('argocd', argo('x').application, managed, 'https://gitlab.example.com');
  assert.equal(r.result === 'queued' ? r.observation.revision : null, REV);
});
