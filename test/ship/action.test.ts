// Issue 9: the GitHub Action's entry, run exactly as the Actions runner runs it: inputs as
// INPUT_<NAME> variables (defaults from action.yml filled in), outputs read back from the
// GITHUB_OUTPUT file, against the sandbox.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, sandboxFixture } from '../helpers.js';
import { actionYml, ROOT, runAction } from './runner.js';

let sb: Sandbox;

before(async () => {
  sb = await sandboxFixture();
});
after(() => sb?.close());

const inputs = (extra: Record<string, string> = {}) => ({
  'ops-project': OPS,
  file: 'deployment.yml',
  image: 'registry.example.com/root/helloworld',
  tag: 'ci-34',
  assignees: 'operator',
  'target-branch': 'main',
  'gitlab-url': sb.url,
  token: 'gitops-bot-token',
  ...extra,
});

test('the action opens the MR and sets mr-url, mr-iid and action; a re-run is a noop', async () => {
  const r = await runAction(inputs());
  assert.equal(r.code, 0, r.stdout);
  assert.equal(r.outputs.action, 'created');
  assert.match(r.outputs['mr-url'], /\/root\/helloworld-ops\/-\/merge_requests\/\d+$/);
  const mr = await client(sb, 'operator').MergeRequests.show(OPS, Number(r.outputs['mr-iid']));
  assert.equal(mr.title, 'Deploy helloworld ci-34 to main');
  assert.deepEqual(
    (mr.assignees as Array<{ username: string }>).map((a) => a.username),
    ['operator'],
  );
  // the source facts are GitHub's: repository, commit and run
  assert.match(String(mr.description), /\[`acme\/helloworld`\]\(https:\/\/github\.com\/acme\/helloworld\)/);
  assert.match(String(mr.description), /https:\/\/github\.com\/acme\/helloworld\/actions\/runs\/4242/);
  assert.match(r.stdout, /^gitops-bot: opened !\d+/m);
  const again = await runAction(inputs());
  assert.equal(again.code, 0);
  assert.equal(again.outputs.action, 'noop');
  assert.equal(again.outputs['mr-iid'], r.outputs['mr-iid']);
});

test('failures are ::error annotations with the CLI exit codes, and never show the token', async () => {
  const token = 'glpat-NoT-a-ReAl-ToKeN-4711';
  const bad = await runAction(inputs({ tag: 'ci-35', token }));
  assert.equal(bad.code, 8);
  assert.match(bad.stdout, /^::error title=gitops-bot::GitLab rejected the token \(401 Unauthorized\)/m);
  assert.ok(!bad.stdout.includes(token));
  const older = await runAction(inputs({ tag: 'ci-30' }));
  assert.equal(older.code, 5);
  assert.equal(older.outputs.action, 'refused');
  assert.match(older.stdout, /^::error title=gitops-bot::ci-30 is older than ci-33/m);
  const missing = await runAction(inputs({ token: '' }));
  assert.equal(missing.code, 2);
  assert.match(missing.stdout, /the token input is empty/);
});

test('action.yml declares exactly the inputs the entry reads, and the outputs it writes', async () => {
  const yml = await actionYml();
  const source = await readFile(join(ROOT, 'src/action/main.ts'), 'utf8');
  const read = new Set([...source.matchAll(/(?:input|list)\('([\w-]+)'\)/g)].map((m) => m[1]));
  assert.deepEqual(Object.keys(yml.inputs).sort(), [...read].sort());
  const written = new Set([...source.matchAll(/output\('([\w-]+)'/g)].map((m) => m[1]));
  assert.deepEqual(Object.keys(yml.outputs).sort(), [...written].sort());
});
