// The README's first command: the demo must keep working for a newcomer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from './helpers.js';
import { skipUnless } from './tools.js';

/** What these tests need on PATH: without it they skip, naming the install line (CI=true: fail). */
const skip = skipUnless('docker-registry');

test('npm run demo plays the story and shows the operator the MR', { skip }, async () => {
  const demo = fileURLToPath(new URL('../src/demo.js', import.meta.url));
  const { stdout } = await run(process.execPath, [demo]);
  assert.match(stdout, /1\. sandbox ready: http:\/\/127\.0\.0\.1:\d+/);
  assert.match(
    stdout,
    // 7, and one compare of the app commits for "What is being deployed"
    /-> created: http:\/\/127\.0\.0\.1:\d+\/root\/helloworld-ops\/-\/merge_requests\/1 \(9 requests to GitLab\)/,
  );
  assert.match(stdout, /!1 Deploy helloworld ci-34 to production\n\s+assigned to operator/);
  assert.match(stdout, /\| Tag \| `ci-33` → `ci-34` \|/);
  // .ci/run installs docker-registry: the pipeline really pushes, and promote checks the image
  assert.match(stdout, /\+\s+image: 127\.0\.0\.1:\d+\/root\/helloworld:ci-34/);
  assert.match(stdout, /pushed 127\.0\.0\.1:\d+\/root\/helloworld:ci-34 \(sha256:/);
  assert.match(stdout, /\| Image verified \| yes/);
  assert.match(stdout, /2 commits in \[`root\/helloworld`\]/);
  assert.match(stdout, /\) HW-001: greet louder\n/);
  assert.match(stdout, /Merge requests: \[`root\/helloworld!1`\]/);
  assert.match(stdout, /-> noop \(already proposed\), 2 requests/);
  assert.match(stdout, /@reviewer \| not counted: not among the approvers of production \(operator\)/);
  assert.match(stdout, /!1 merged by gitops-bot as ([0-9a-f]{8})\n\s+deploy\/prod -> \1 \(the merge commit/);
  // Rules are read only from the protected default branch: a Developer's own are ignored.
  assert.match(
    stdout,
    /Not ready to deploy\*\*: target branch evil-base is not governed by the rules on main/,
  );
  assert.match(stdout, /The \.gitops-bot\.yml on evil-base is ignored/);
  // Issue 17: Argo CD syncs deploy/prod and gitops-bot writes back what it reported.
  assert.match(stdout, /argocd ready: http:\/\/127\.0\.0\.1:\d+/);
  assert.match(
    stdout,
    /argocd: helloworld Synced at ([0-9a-f]{8}), Healthy; images 127\.0\.0\.1:\d+\/root\/helloworld:ci-34/,
  );
  assert.match(
    stdout,
    /--- the Deployment section of !1's comment ---\n\s+### Deployment\n\s+\n\s+- ✅ Synced and Healthy in production at \d\d:\d\d \(.+ after merge\)/,
  );
  assert.match(
    stdout,
    /--- GitLab environment production\/helloworld ---\n\s+production\/helloworld \(available, tier production/,
  );
  assert.match(stdout, /deployment #1: success, [0-9a-f]{8} on deploy\/prod, by gitops-bot/);
  assert.match(
    stdout,
    /--- note on root\/helloworld!1 ---\n\s+@gitops-bot: Deployed to production at \d\d:\d\d \(helloworld-ops!1\)/,
  );
  // gitops-bot status: ci-34 runs, ci-35 waits for the operator
  assert.match(
    stdout,
    /production +helloworld +ci-34 +[0-9a-f]{12} +Healthy +\d\d:\d\d UTC +ci-35 \(!2\) +1 approval from operator/,
  );
  // ci-35 was never pushed: Degraded, the alert, and status says so
  assert.match(stdout, /Degraded: Back-off pulling image "127\.0\.0\.1:\d+\/root\/helloworld:ci-35"/);
  assert.match(
    stdout,
    /--- the alert on !2 ---\n\s+@gitops-bot: 🚨 \*\*Deployment of `[0-9a-f]{8}` to production failed\*\*: ❌ Degraded: Back-off pulling image/,
  );
  assert.match(stdout, /production +helloworld +ci-35 +- +Degraded: Back-off pulling image/);
  assert.match(stdout, /!3 stays open; deploy\/prod stays at/);
});

test('npm run demo -- --chain: staging feeds production after the soak; a degraded ci-35 is rolled back and never reaches production', {
  skip,
}, async () => {
  const demo = fileURLToPath(new URL('../src/demo.js', import.meta.url));
  const { stdout } = await run(process.execPath, [demo, '--chain']);
  assert.match(stdout, /production right after: 0 merge requests \(the soak is 3s\)/);
  assert.match(
    stdout,
    /!2 Deploy helloworld ci-34 to production \([\d.]+ s after staging was healthy\)\n {3}assigned to operator/,
  );
  assert.match(stdout, /\| Promoted from \| staging: verified in staging since \d\d:\d\d UTC \(\d+ s\) \|/);
  assert.match(
    stdout,
    /gitops-bot\/deploy on [0-9a-f]{8}: failed, staging\/helloworld: Degraded: Back-off pulling image/,
  );
  assert.match(stdout, /!\d+ Roll back helloworld to ci-34 in staging \(labels gitops-bot, rollback\)/);
  assert.match(stdout, /-> refused: ci-35 was rolled back from staging at \d\d:\d\d \(!\d+\): Degraded/);
  assert.match(
    stdout,
    /production: !2 Deploy helloworld ci-34 to production; argocd helloworld-production: Healthy, images [^\n]*:ci-33\n/,
  );
  assert.match(stdout, /argocd helloworld-production: Healthy, images [^\n]*:ci-34\n/);
  assert.doesNotMatch(stdout, /ci-35 to production/);
  // each MR's Deployment section names its own environment only (both apps track main)
  assert.match(stdout, /!1's Deployment section: [^\n]*`staging\/helloworld`/);
  assert.doesNotMatch(stdout, /!1's Deployment section: [^\n]*production\/helloworld/);
  assert.match(stdout, /!2's Deployment section: [^\n]*`production\/helloworld`/);
  assert.doesNotMatch(stdout, /!2's Deployment section: [^\n]*staging\/helloworld/);
});
