// `gitops-bot serve` as a process: --register-hook (idempotent), signed deliveries
// (GitLab's signing token, Standard Webhooks), and a graceful shutdown on SIGTERM.
import assert from 'node:assert/strict';
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GitLab } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { signatureHeaders } from '../../src/sandbox/webhooks.js';
import { client, OPS, run, sandboxFixture, tempDir, until } from '../helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const SECRET = 'serve-cli-secret';
const SIGNING = `whsec_${randomBytes(32).toString('base64')}`;
let sb: Sandbox;
let dir: string;
let serve: ChildProcessByStdio<null, Readable, null>;
let base: string;
let output = '';

const env = (token: string) => ({ ...process.env, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: token });
const secretArgs = () => ['--secret-file', join(dir, 'secret'), '--signing-token-file', join(dir, 'signing')];
const op = () => client(sb, 'operator');

async function statusOf(sha: string): Promise<string | undefined> {
  const list = await op().Commits.allStatuses(OPS, sha);
  return list.find((s) => s.name === 'gitops-bot/approval')?.status;
}

async function newMr(tag: string) {
  const r = await promote(
    { project: OPS, files: ['deployment.yml'], image: 'registry.example.com/root/helloworld', tag },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  return op().MergeRequests.show(OPS, r.mr!.iid);
}

function post(body: string, headers: Record<string, string>) {
  return fetch(`${base}/webhook`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Gitlab-Event': 'Merge Request Hook', ...headers },
    body,
  });
}

const mrEvent = (iid: number) =>
  JSON.stringify({
    object_kind: 'merge_request',
    project: { id: 2, path_with_namespace: OPS },
    object_attributes: { iid, action: 'update' },
  });

before(async () => {
  sb = await sandboxFixture();
  dir = await tempDir();
  await writeFile(join(dir, 'secret'), `${SECRET}\n`);
  await writeFile(join(dir, 'signing'), `${SIGNING}\n`);
  serve = spawn(
    process.execPath,
    [CLI, 'serve', '--listen', '127.0.0.1:0', '--project', OPS, ...secretArgs()],
    {
      env: env('gitops-bot-token'),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  serve.stdout.on('data', (b: Buffer) => {
    output += b.toString();
  });
  await until(async () => /listening on (\S+)/.test(output), 'serve to listen');
  base = /listening on (\S+)/.exec(output)![1];
});
after(async () => {
  if (serve.exitCode === null) serve.kill('SIGKILL');
  await sb?.close();
});

test('serve --register-hook creates the project hook once, then keeps it up to date', async () => {
  const register = () =>
    run(
      process.execPath,
      [CLI, 'serve', '--register-hook', '--project', OPS, '--url', `${base}/`, ...secretArgs()],
      {
        env: env('operator-token'),
      },
    );
  const first = await register();
  assert.match(first.stdout, new RegExp(`^hook \\d+ created in ${OPS}: ${base}/webhook\\n$`));
  const second = await register();
  assert.match(second.stdout, /^hook \d+ updated in /);
  const hooks = await op().ProjectHooks.all(OPS);
  assert.equal(hooks.length, 1);
  const h = hooks[0] as Record<string, unknown>;
  assert.equal(h.url, `${base}/webhook`);
  assert.equal(h.token_present, true);
  assert.equal(h.signing_token_present, true);
  assert.equal(h.merge_requests_events, true);
  assert.equal(h.note_events, true);
  assert.ok(!JSON.stringify(h).includes(SIGNING.slice(6, 20)), 'the signing token is never shown');
  assert.ok(!`${first.stdout}${first.stderr}`.includes(SECRET));
});

test('signed deliveries from the sandbox are handled; unsigned, forged and stale ones get 401', async () => {
  const mr = await newMr('ci-34');
  await until(async () => (await statusOf(mr.sha)) === 'pending', 'the gate on a signed delivery');
  const delivery = sb.webhooks.deliveries.find((d) => d.event === 'Merge Request Hook')!;
  assert.equal(delivery.status, 202);

  const body = mrEvent(mr.iid);
  const token = { 'X-Gitlab-Token': SECRET };
  const id = 'delivery-1';
  const good = signatureHeaders(SIGNING, id, body);
  const cases: Array<[string, Record<string, string>, string]> = [
    ['unsigned', token, body],
    [
      'signed with another key',
      { ...token, ...signatureHeaders(`whsec_${'A'.repeat(43)}=`, id, body) },
      body,
    ],
    ['body changed after signing', { ...token, ...good }, body.replace('update', 'merge')],
    [
      'signed 10 minutes ago',
      { ...token, ...signatureHeaders(SIGNING, id, body, Date.now() / 1000 - 600) },
      body,
    ],
    ['signed, wrong secret token', { 'X-Gitlab-Token': 'nope', ...good }, body],
  ];
  for (const [name, headers, text] of cases) {
    const r = await post(text, headers);
    assert.equal(r.status, 401, name);
    assert.ok(!(await r.text()).includes(SECRET), name);
  }
  assert.equal((await post(body, { ...token, ...good })).status, 202);
});

test('SIGTERM: stop taking deliveries, finish the work in flight, exit 0', async () => {
  // No hook: this MR is only evaluated by the delivery posted below. Earlier deliveries
  // must be done first, or a late gate of this same MR would set its status.
  for (const h of await op().ProjectHooks.all(OPS)) await op().ProjectHooks.remove(OPS, h.id);
  await sb.settle();
  await until(async () => {
    const health = (await (await fetch(`${base}/healthz`)).json()) as { inFlight: number };
    return health.inFlight === 0;
  }, 'serve to finish earlier work');
  const mr = await newMr('ci-35');
  assert.equal(await statusOf(mr.sha), undefined);
  const body = mrEvent(mr.iid);
  const res = await post(body, {
    'X-Gitlab-Token': SECRET,
    ...signatureHeaders(SIGNING, 'delivery-2', body),
  });
  assert.equal(res.status, 202);
  const exited = new Promise<number | null>((r) => serve.on('exit', (code) => r(code)));
  serve.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.match(output, /finishing work in flight/);
  assert.equal(await statusOf(mr.sha), 'pending', 'the gate ran to the end before the exit');
});
