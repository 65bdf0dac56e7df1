// Issue 9: the bundle (dist/gitops-bot.mjs, the loader, with dist/gitops-bot.data, the
// program and its code cache) is all the container image needs: copied alone into an empty
// folder (no node_modules), it answers --version,
// promotes, and serves webhooks with its worker thread (which runs the same file).
import assert from 'node:assert/strict';
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, PROMOTE_STORY, run, sandboxFixture, tempDir, until } from '../helpers.js';
import { installBundle } from './install-bundle.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
let sb: Sandbox;
let bundle: string;
let serve: ChildProcessByStdio<null, Readable, Readable> | undefined;

before(async () => {
  sb = await sandboxFixture();
  bundle = await installBundle();
});
after(async () => {
  serve?.kill('SIGKILL');
  await sb?.close();
});

const env = () => ({ ...process.env, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' });

test('alone in a folder: --version, --help, and a promotion', async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const cwd = await tempDir();
  assert.equal((await run(process.execPath, [bundle, '--version'], { cwd })).stdout, `${pkg.version}\n`);
  assert.match((await run(process.execPath, [bundle, '--help'], { cwd })).stdout, /^Usage: gitops-bot/);
  const { stdout } = await run(
    process.execPath,
    [bundle, ...PROMOTE_STORY, '--tag', 'ci-34', '--assignee', 'operator', '--json'],
    { cwd, env: env() },
  );
  const r = JSON.parse(stdout) as { action: string; mr: { iid: number } };
  assert.equal(r.action, 'created');
  const mr = await client(sb, 'operator').MergeRequests.show(OPS, r.mr.iid);
  assert.equal(mr.title, 'Deploy helloworld ci-34 to main');
});

test('serve from the bundle: its worker thread (the same file) gates a merge request', async () => {
  const [mr] = await client(sb, 'operator').MergeRequests.all({ projectId: OPS, state: 'opened' });
  let output = '';
  serve = spawn(process.execPath, [bundle, 'serve', '--listen', '127.0.0.1:0', '--project', OPS], {
    env: { ...env(), GITOPS_BOT_WEBHOOK_SECRET: 'bundle-secret' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  serve.stdout.on('data', (b: Buffer) => {
    output += b.toString();
  });
  serve.stderr.on('data', (b: Buffer) => {
    output += b.toString();
  });
  await until(async () => /listening on (\S+)/.test(output), `serve to listen: ${output}`);
  const base = /listening on (\S+)/.exec(output)![1];
  const res = await fetch(`${base}/webhook`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-Gitlab-Event': 'Merge Request Hook',
      'X-Gitlab-Token': 'bundle-secret',
    },
    body: JSON.stringify({
      object_kind: 'merge_request',
      project: { id: 2, path_with_namespace: OPS },
      object_attributes: { iid: mr.iid, action: 'update' },
    }),
  });
  assert.equal(res.status, 202);
  await until(async () => {
    const statuses = await client(sb, 'operator').Commits.allStatuses(OPS, mr.sha);
    return statuses.some((s) => s.name === 'gitops-bot/approval');
  }, 'the worker to set the approval status');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /gitops_bot_/);
});
