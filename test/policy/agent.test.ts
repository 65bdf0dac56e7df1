// Issue 17's policy fields: `agent` (which in-cluster application deploys an environment)
// and `deploy_timeout`, with the errors that name the field.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  agentKey,
  DEFAULT_POLICY,
  durationMs,
  PolicyError,
  parsePolicy,
  policyJsonSchema,
} from '../../src/policy/schema.js';

const policy = (env: string) => `version: 1\nenvironments:\n  - name: production\n${env}`;

test('agent: argocd or flux, deploy_timeout defaults to 10m', () => {
  const p = parsePolicy(policy('    agent: { argocd: helloworld }\n'));
  assert.deepEqual(p.environments[0].agent, { argocd: 'helloworld' });
  assert.equal(p.environments[0].deploy_timeout, '10m');
  assert.equal(agentKey(p.environments[0]), 'argocd:helloworld');
  const f = parsePolicy(policy('    agent: { flux: flux-system/apps }\n    deploy_timeout: 90s\n'));
  assert.equal(agentKey(f.environments[0]), 'flux:flux-system/apps');
  assert.equal(durationMs(f.environments[0].deploy_timeout), 90_000);
  assert.equal(agentKey(DEFAULT_POLICY.environments[0]), null, 'no agent: not watched');
});

test('durations: s, m, h', () => {
  assert.deepEqual(
    ['90s', '10m', '1h'].map((d) => durationMs(d)),
    [90_000, 600_000, 3_600_000],
  );
  assert.throws(() => durationMs('10'), PolicyError);
});

const bad: Array<[string, RegExp]> = [
  ['    agent: { argocd: Hello_World }\n', /environments\[0\]\.agent/],
  ['    agent: { flux: apps }\n', /environments\[0\]\.agent/],
  ['    agent: { argocd: a, flux: b/c }\n', /environments\[0\]\.agent/],
  ['    agent: helloworld\n', /environments\[0\]\.agent/],
  [
    '    deploy_timeout: 10 minutes\n',
    /environments\[0\]\.deploy_timeout: expected a duration such as 90s, 10m or 1h/,
  ],
  ['    deploy_timeout: 0m\n', /deploy_timeout: expected a duration/],
];
for (const [env, message] of bad)
  test(`refused: ${env.trim()}`, () => {
    assert.throws(
      () => parsePolicy(policy(env)),
      (e: Error) => e instanceof PolicyError && message.test(e.message),
    );
  });

test('gitops-bot schema policy publishes agent and deploy_timeout', () => {
  const text = JSON.stringify(policyJsonSchema());
  assert.match(text, /"agent"/);
  assert.match(text, /"deploy_timeout"/);
  assert.match(text, /"argocd"/);
  assert.match(text, /"flux"/);
});
