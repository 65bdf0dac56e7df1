import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Gitlab } from '@gitbeaker/rest';
import { startSandbox } from '../../src/sandbox/index.js';
import { run, tempDir } from '../helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** Starts `gitops-bot sandbox`, resolves with its URL and output once it says it is ready. */
function startCli(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'sandbox', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const ready = new Promise<{ url: string; out: string }>((ok, fail) => {
    child.stdout.on('data', (b) => {
      out += b;
      const m = /sandbox ready: (http:\/\/\S+)\n[\s\S]*data: /.exec(out);
      if (m) setTimeout(() => ok({ url: m[1], out }), 20);
    });
    child.on('exit', (code) => fail(new Error(`exited ${code}: ${out}`)));
  });
  return { child, ready };
}

test('gitops-bot sandbox prints ready, the users table, and removes its temporary data on exit', async () => {
  const { child, ready } = startCli(['--port', '0', '--seed', 'story']);
  const { url, out } = await ready;
  assert.match(out, /^sandbox ready: http:\/\/127\.0\.0\.1:\d+$/m);
  for (const u of ['root', 'developer', 'reviewer', 'operator', 'argocd', 'gitops-bot']) {
    assert.match(out, new RegExp(`^${u}\\s+${u}-token`, 'm'));
  }
  const dataDir = /data: (\S+)/.exec(out)![1];
  const me = await new Gitlab({ host: url, token: 'operator-token' }).Users.showCurrentUser();
  assert.equal(me.username, 'operator');
  const exited = new Promise((ok) => child.on('exit', ok));
  child.kill('SIGTERM');
  await exited;
  assert.equal(existsSync(dataDir), false);
});

test('--data keeps state across a restart', async () => {
  const data = await tempDir();
  let sb = await startSandbox({ port: 0, dataDir: data });
  const c = new Gitlab({ host: sb.url, token: 'gitops-bot-token' });
  await c.Commits.create(
    'root/helloworld-ops',
    'persist',
    'p',
    [{ action: 'create', filePath: 'p.txt', content: 'p' }],
    {
      startBranch: 'main',
    },
  );
  await c.MergeRequests.create('root/helloworld-ops', 'persist', 'main', 'persisted');
  await sb.close();
  sb = await startSandbox({ port: 0, dataDir: data });
  const c2 = new Gitlab({ host: sb.url, token: 'gitops-bot-token' });
  const mrs = await c2.MergeRequests.all({ projectId: 'root/helloworld-ops' });
  assert.deepEqual(
    mrs.map((m) => m.title),
    ['persisted'],
  );
  assert.equal((await c2.RepositoryFiles.showRaw('root/helloworld-ops', 'p.txt', 'persist')) as unknown, 'p');
  await sb.close();
  assert.equal(existsSync(data), true);
});

test('refuses a non-loopback address unless named explicitly; bad flags exit 2', async () => {
  await assert.rejects(startSandbox({ host: '0.0.0.0', port: 0 }), /refusing to bind 0\.0\.0\.0/);
  const bad = await run(process.execPath, [CLI, 'sandbox', '--port', 'x']).catch((e) => e);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--port: 'x' is not a port number/);
  const seed = await run(process.execPath, [CLI, 'sandbox', '--seed', 'nope']).catch((e) => e);
  assert.equal(seed.code, 2);
});

test('--seed empty has only root', async () => {
  const sb = await startSandbox({ port: 0, seed: 'empty' });
  assert.deepEqual(
    sb.users.map((u) => u.username),
    ['root'],
  );
  const c = new Gitlab({ host: sb.url, token: 'root-token' });
  const p = await c.Projects.create({ name: 'demo', initializeWithReadme: true } as never);
  assert.equal(p.path_with_namespace, 'root/demo');
  assert.match(String(await c.RepositoryFiles.showRaw('root/demo', 'README.md', 'main')), /# demo/);
  await sb.close();
});
