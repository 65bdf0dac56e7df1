// Finding 6: a hostile MR changing a 50 MB YAML file. `serve` (the CLI, jobs on its worker
// thread) refuses the file without reading it into memory, stays up, and keeps handling
// the deliveries that follow.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FileTooLargeError, GitLab } from '../../src/gitlab/client.js';
import { MAX_MANIFEST_BYTES, promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { addHook, client, OPS, run, sandboxFixture, tempDir, until } from '../helpers.js';
import { type ServeProcess, startServe } from '../server/serve-process.js';

const IMAGE = 'registry.example.com/root/helloworld';
let sb: Sandbox;
let serve: ServeProcess;

async function vm(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
}

before(async () => {
  sb = await sandboxFixture();
  serve = await startServe(sb, ['--project', OPS]);
  await addHook(sb, `${serve.url}/webhook`, 's');
});
after(async () => {
  await serve?.stop();
  await sb?.close();
});

test('the size limit is the one promote applies to manifests', () => {
  assert.equal(FileTooLargeError.MAX_BYTES, MAX_MANIFEST_BYTES);
});

test('a reviewer’s MR changing a 50 MB YAML file: serve stays up and handles what follows', async () => {
  // operator (Maintainer) adds big.yml to main; reviewer (Developer) changes its tag in an MR
  const dir = await tempDir();
  const remote = (user: string) => `${sb.url.replace('://', `://oauth2:${user}-token@`)}/${OPS}.git`;
  const git = (...args: string[]) =>
    run('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir });
  await git('clone', '-q', remote('operator'), '.');
  const head = `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: big\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: ${IMAGE}:ci-33\n`;
  const padding = '# a comment line to make the file big, nothing else\n'.repeat(1_000_000);
  await writeFile(join(dir, 'big.yml'), head + padding);
  await git('add', 'big.yml');
  await git('commit', '-q', '-m', 'A big manifest');
  await git('push', '-q', remote('operator'), 'HEAD:main');
  await git('checkout', '-q', '-b', 'big-change');
  await writeFile(join(dir, 'big.yml'), head.replace('ci-33', 'ci-99') + padding);
  await git('commit', '-q', '-am', 'Bump the big one');
  await git('push', '-q', remote('reviewer'), 'HEAD:big-change');
  const size = (await readFile(join(dir, 'big.yml'))).length;
  assert.ok(size > 50 * 1000 * 1000, `${size} bytes`);

  const rssBefore = await vm(serve.child.pid!, 'VmRSS');
  const started = Date.now();
  const mr = await client(sb, 'reviewer').MergeRequests.create(OPS, 'big-change', 'main', 'Bump big');
  // Refused, naming the file and the limit: a failed verdict (the gate's), or at least the
  // job's error alert.
  const named = (s: string) => /big\.yml/.test(s) && /16 MiB/.test(s);
  let how = '';
  await until(
    async () => {
      const statuses = await client(sb, 'operator').Commits.allStatuses(OPS, mr.sha);
      const status = statuses.find((s) => s.name === 'gitops-bot/approval');
      if (status?.status === 'failed' && named(String(status.description))) how = 'a failed verdict';
      else if (serve.logs().some((l) => l.level === 50 && named(String(l.msg)))) how = 'a failed job';
      return how !== '';
    },
    'serve to refuse big.yml',
    50,
    400,
  );
  const refusedMs = Date.now() - started;
  assert.equal(serve.child.exitCode, null, 'serve is up');
  assert.equal(await serve.metric('gitops_bot_worker_restarts_total'), 0, 'the worker never died');
  assert.equal(await serve.metric('gitops_bot_job_failures_total', '{reason="worker"}'), 0);
  assert.equal((await serve.health()).status, 200);

  // a later delivery, for another MR, is handled
  const r = await promote(
    { project: OPS, files: ['deployment.yml'], image: IMAGE, tag: 'ci-34' },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  const next = await client(sb, 'operator').MergeRequests.show(OPS, r.mr!.iid);
  await until(
    async () =>
      (await client(sb, 'operator').Commits.allStatuses(OPS, next.sha)).some(
        (s) => s.name === 'gitops-bot/approval',
      ),
    'the next MR to be gated',
  );
  const peak = await vm(serve.child.pid!, 'VmHWM');
  console.log(
    `big file: ${(size / 1e6).toFixed(0)} MB refused (${how}) in ${refusedMs} ms; serve RSS ${(rssBefore / 1e6).toFixed(0)} MB before, peak ${(peak / 1e6).toFixed(0)} MB`,
  );
  // Reading the file would have cost well over 50 MB on top of the process (and killed the
  // worker, whose heap is 96 MB).
  assert.ok(peak < rssBefore + 40e6, `peak RSS ${peak} with ${rssBefore} before`);
});
