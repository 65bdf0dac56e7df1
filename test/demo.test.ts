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
    /-> created: http:\/\/127\.0\.0\.1:\d+\/root\/helloworld-ops\/-\/merge_requests\/1 \(8 requests to GitLab\)/,
  );
  assert.match(stdout, /!1 Deploy helloworld ci-34 to main\n\s+assigned to operator/);
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
  assert.match(stdout, /!2 stays open; deploy\/prod stays at/);
});
