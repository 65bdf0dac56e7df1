// Issue 9: the README's copy-paste examples run as written. The CLI example runs in bash
// with `gitops-bot` on PATH (its `export` lines are what the reader sets: here the
// sandbox's URL and a token); the GitHub Actions example is parsed as workflow steps, its
// `${{ }}` expressions filled in as the runner would, and run as the runner runs them.
// (The GitLab CI examples run in test/ci/components.test.ts and templates.test.ts, under
// gitlab-ci-local.)
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, run, sandboxFixture, tempDir } from '../helpers.js';
import { ROOT, readmeExample, runAction } from './runner.js';

let sb: Sandbox;

before(async () => {
  sb = await sandboxFixture();
});
after(() => sb?.close());

test('README "3. The CLI" runs as written and prints the MR URL', async () => {
  const example = await readmeExample('cli');
  const bin = await tempDir();
  await writeFile(join(bin, 'gitops-bot'), `#!/bin/sh\nexec node ${join(ROOT, 'dist/src/cli.js')} "$@"\n`);
  await chmod(join(bin, 'gitops-bot'), 0o755);
  const script = example
    .split('\n')
    .filter((l) => !l.startsWith('export '))
    .join('\n');
  assert.match(script, /^gitops-bot promote /m, 'the example is a promote command');
  const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script], {
    env: {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      GITLAB_URL: sb.url,
      GITOPS_BOT_TOKEN: 'gitops-bot-token',
    },
  });
  assert.match(stdout, /^http:\/\/127\.0\.0\.1:\d+\/root\/helloworld-ops\/-\/merge_requests\/1\n$/);
  const mr = await client(sb, 'operator').MergeRequests.show(OPS, 1);
  assert.equal(mr.title, 'Deploy helloworld ci-34 to main');
});

test('README "2. GitHub Actions" runs as the runner would run it', async () => {
  const steps = parse(await readmeExample('github-action')) as Array<{
    uses?: string;
    id?: string;
    with?: Record<string, string>;
    run?: string;
  }>;
  const step = steps.find((s) => s.uses?.endsWith('/action@v1'));
  assert.ok(step?.with && step.id, 'a step uses the action, with an id');
  // the runner's expression values for this run
  const github = { run_number: '35' };
  const secrets = { GITOPS_BOT_TOKEN: 'gitops-bot-token' };
  const expand = (v: string, outputs: Record<string, string> = {}) =>
    v.replace(/\$\{\{\s*([\w.-]+)\s*\}\}/g, (_, expr: string) => {
      const [ns, ...rest] = expr.split('.');
      if (ns === 'github') return github[rest[0] as keyof typeof github];
      if (ns === 'secrets') return secrets[rest[0] as keyof typeof secrets];
      if (ns === 'steps' && rest[0] === step.id && rest[1] === 'outputs') return outputs[rest[2]];
      throw new Error(`unknown expression ${expr}`);
    });
  const inputs = Object.fromEntries(Object.entries(step.with).map(([k, v]) => [k, expand(String(v))]));
  inputs['gitlab-url'] = sb.url; // the example's https://gitlab.example.com
  const r = await runAction(inputs);
  assert.equal(r.code, 0, r.stdout);
  assert.ok(['created', 'updated'].includes(r.outputs.action), r.outputs.action);
  const mr = await client(sb, 'operator').MergeRequests.show(OPS, Number(r.outputs['mr-iid']));
  assert.equal(mr.title, 'Deploy helloworld ci-35 to main');
  // the step after it, with the outputs filled in
  const echo = steps.find((s) => s.run)!;
  const { stdout } = await run('bash', ['-c', expand(echo.run!, r.outputs)]);
  assert.equal(stdout, `Merge request ${r.outputs['mr-url']} (${r.outputs.action})\n`);
});
