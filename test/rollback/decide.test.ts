// chooseTarget as a table: which tag a rollback goes back to, from the deployments the bot
// recorded (newest first), what is deployed now, --to and the tags rejected before.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Rejection } from '../../src/promote/rejections.js';
import { chooseTarget, type PastDeployment, type TargetFacts } from '../../src/rollback/decide.js';

let id = 100;
const dep = (tag: string | null, status = 'success'): PastDeployment => ({
  id: id--,
  sha: `sha-${id}`,
  status,
  tag,
  at: '2026-12-03T12:10:00Z',
});
const rejected = (tag: string): Rejection => ({
  tag,
  env: 'production',
  app: 'helloworld',
  at: '2026-12-03T11:00:00Z',
  reason: 'Degraded',
  iid: 3,
  webUrl: 'http://gitlab/x/-/merge_requests/3',
});
const facts = (over: Partial<TargetFacts>): TargetFacts => ({
  env: 'production',
  app: 'helloworld',
  deployedTag: 'ci-35',
  history: [],
  rejected: [],
  ...over,
});

const rows: Array<[string, Partial<TargetFacts>, string | RegExp]> = [
  [
    'the last healthy tag before the failing one',
    { history: [dep('ci-35', 'failed'), dep('ci-34'), dep('ci-33')] },
    'ci-34',
  ],
  [
    'a healthy deployment of the deployed tag itself is skipped (rolling back a healthy but bad tag)',
    { history: [dep('ci-35'), dep('ci-34')] },
    'ci-34',
  ],
  [
    'failed and canceled deployments never count',
    { history: [dep('ci-35', 'failed'), dep('ci-34', 'failed'), dep('ci-33')] },
    'ci-33',
  ],
  [
    'a tag rejected before is skipped',
    { history: [dep('ci-35', 'failed'), dep('ci-34'), dep('ci-33')], rejected: [rejected('ci-34')] },
    'ci-33',
  ],
  [
    'a deployment whose files no longer show the image is skipped',
    { history: [dep(null), dep('ci-32')] },
    'ci-32',
  ],
  [
    'nothing healthy: an error naming --to',
    { history: [dep('ci-35', 'failed')] },
    /no earlier healthy deployment .*pass --to TAG/,
  ],
  [
    'only the deployed tag ran healthy: an error',
    { history: [dep('ci-35')] },
    /1 healthy, 1 of them of ci-35/,
  ],
  [
    '--to a tag with a healthy deployment',
    { to: 'ci-33', history: [dep('ci-35', 'failed'), dep('ci-34'), dep('ci-33')] },
    'ci-33',
  ],
  ['--to a tag never seen healthy is taken as asked', { to: 'ci-30', history: [dep('ci-34')] }, 'ci-30'],
  [
    '--to the deployed tag: nothing to roll back to',
    { to: 'ci-35', history: [dep('ci-34')] },
    /already runs helloworld ci-35/,
  ],
];

for (const [name, over, want] of rows) {
  test(`chooseTarget: ${name}`, () => {
    const got = chooseTarget(facts(over));
    if (typeof want === 'string') {
      assert.ok('tag' in got, `expected ${want}, got ${JSON.stringify(got)}`);
      assert.equal(got.tag, want);
      assert.equal(got.fromTag, 'ci-35');
    } else {
      assert.ok('error' in got, `expected an error, got ${JSON.stringify(got)}`);
      assert.match(got.error, want);
    }
  });
}

test('chooseTarget names the healthy deployment it relies on', () => {
  const h = [dep('ci-35', 'failed'), dep('ci-34')];
  const got = chooseTarget(facts({ history: h }));
  assert.ok('tag' in got);
  assert.equal(got.healthyDeployment, h[1].id);
  assert.match(got.why, /ran healthy in production before ci-35/);
});
