// Issue 7: no secret reaches output, logs, comments or MR text. Every command runs with a
// recognisable token (and webhook secrets), debug logging on; then all of it is searched.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, PROMOTE_STORY, sandboxFixture, tempDir } from '../helpers.js';
import { htpasswd, type Registry, startRegistry } from '../registry/docker-registry.js';
import { skipUnless } from '../tools.js';

/** What these tests need on PATH: without it they skip, naming the install line (CI=true: fail). */
const skip = skipUnless('docker-registry', 'perl');

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const TOKEN = 'glpat-SeCrEtToKeN0123456789';
const WRONG = 'glpat-WrOnGtOkEn9876543210';
const HOOK_SECRET = 'hook-SeCrEt-4242424242';
const SIGNING = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const REGISTRY_PASSWORD = 'reg-SeCrEt-7777777';
const REGISTRY_WRONG = 'reg-WrOnG-8888888';
const SECRETS = [TOKEN, WRONG, HOOK_SECRET, SIGNING, SIGNING.slice(6), REGISTRY_PASSWORD, REGISTRY_WRONG];
let sb: Sandbox;
let registry: Registry;
let dir: string;
const seen: string[] = [];

function cli(
  args: string[],
  env: Record<string, string> = {},
  input?: (child: ReturnType<typeof spawn>) => Promise<void>,
) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: {
        ...process.env,
        GITLAB_URL: sb.url,
        GITOPS_BOT_TOKEN: TOKEN,
        GITOPS_BOT_LOG_LEVEL: 'debug',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b) => {
      out += b;
    });
    child.stderr.on('data', (b) => {
      out += b;
    });
    child.on('exit', (code) => {
      seen.push(`$ gitops-bot ${args.join(' ')}\n${out}`);
      resolve({ code, out });
    });
    void input?.(child);
  });
}

before(async () => {
  if (skip) return;
  sb = await sandboxFixture();
  registry = await startRegistry({ htpasswd: await htpasswd({ ci: REGISTRY_PASSWORD }) });
  dir = await tempDir();
  await writeFile(join(dir, 'secret'), HOOK_SECRET);
  await writeFile(join(dir, 'signing'), SIGNING);
  const r = await fetch(`${sb.url}/-/sandbox/users`, {
    method: 'POST',
    headers: { 'PRIVATE-TOKEN': 'root-token', 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'deploy-bot', bot: true, token: TOKEN }),
  });
  const user = (await r.json()) as { id: number };
  await client(sb, 'root').ProjectMembers.add(OPS, 40, { userId: user.id });
});
after(async () => {
  await Promise.all([sb?.close(), registry?.close()]);
});

test('no command prints, logs or writes a token or webhook secret', { skip, timeout: 120_000 }, async () => {
  const promote = PROMOTE_STORY;
  assert.equal((await cli([...promote, '--tag', 'ci-34', '--json', '--assignee', 'operator'])).code, 0);
  assert.equal((await cli([...promote, '--tag', 'ci-35'])).code, 0);
  assert.equal((await cli([...promote, '--tag', 'ci-36', '--dry-run', '--json'])).code, 0);
  const wrong = await cli([...promote, '--tag', 'ci-37'], { GITOPS_BOT_TOKEN: WRONG });
  assert.equal(wrong.code, 8, wrong.out);
  assert.equal((await cli([...promote, '--tag', 'BAD TAG'])).code, 2);
  assert.equal(
    (
      await cli(['promote', '--project', OPS, '--file', 'x.yml', '--image', 'a/b', '--tag', '1'], {
        GITLAB_URL: `http://oauth2:${TOKEN}@127.0.0.1:1`,
      })
    ).code,
    2,
  );
  // the registry password: a retag of a missing tag (the registry accepts the login), and a wrong password
  const retag = ['retag', '--image', `${registry.host}/root/helloworld`, '--from', 'ci-1', '--to', 'prod'];
  const registryEnv = { GITOPS_BOT_REGISTRY_USER: 'ci', GITOPS_BOT_REGISTRY_PASSWORD: REGISTRY_PASSWORD };
  const missing = await cli(retag, registryEnv);
  assert.equal(missing.code, 7, missing.out);
  assert.match(missing.out, /has no tag or digest 'ci-1'/);
  const refused = await cli(retag, { ...registryEnv, GITOPS_BOT_REGISTRY_PASSWORD: REGISTRY_WRONG });
  assert.equal(refused.code, 7, refused.out);
  assert.match(refused.out, /refused user 'ci'/);
  const mrs = await client(sb, 'operator').MergeRequests.all({ projectId: OPS, state: 'opened' });
  const iid = String(mrs[0].iid);
  assert.equal((await cli(['gate', '--project', OPS, '--mr', iid, '--json'])).code, 6);
  assert.equal((await cli(['gate', '--project', OPS, '--mr', iid], { GITOPS_BOT_TOKEN: WRONG })).code, 8);
  const secretArgs = ['--secret-file', join(dir, 'secret'), '--signing-token-file', join(dir, 'signing')];
  assert.equal(
    (await cli(['serve', '--register-hook', '--project', OPS, '--url', 'http://127.0.0.1:9/', ...secretArgs]))
      .code,
    0,
  );
  // serve: a delivery with a wrong token and one with the right token but no signature
  const served = await cli(
    ['serve', '--listen', '127.0.0.1:0', '--project', OPS, ...secretArgs],
    {},
    async (child) => {
      const url = await new Promise<string>((resolve) => {
        child.stdout!.on('data', (b: Buffer) => {
          const m = /listening on (\S+)/.exec(b.toString());
          if (m) resolve(m[1]);
        });
      });
      for (const token of [WRONG, HOOK_SECRET]) {
        const r = await fetch(`${url}/webhook`, {
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            'X-Gitlab-Token': token,
            'X-Gitlab-Event': 'Note Hook',
          },
          body: '{}',
        });
        seen.push(`HTTP ${r.status} ${await r.text()}`);
      }
      seen.push(await (await fetch(`${url}/metrics`)).text());
      child.kill('SIGTERM');
    },
  );
  assert.equal(served.code, 0);

  // What GitLab shows: MRs, comments, commit messages, statuses, hooks.
  const op = client(sb, 'root');
  for (const mr of await op.MergeRequests.all({ projectId: OPS })) {
    seen.push(mr.title, String(mr.description));
    for (const n of await op.MergeRequestNotes.all(OPS, mr.iid)) seen.push(n.body);
    for (const c of await op.MergeRequests.allCommits(OPS, mr.iid)) seen.push(c.message);
  }
  for (const s of sb.core.store.data.statuses) seen.push(String(s.description));
  seen.push(JSON.stringify(await op.ProjectHooks.all(OPS)));

  const text = seen.join('\n');
  assert.ok(text.length > 2000, 'there was output to search');
  assert.match(text, /"level":\d+/, 'debug logs were on');
  for (const secret of SECRETS) {
    const at = text.indexOf(secret);
    assert.equal(at, -1, `a secret leaked: ...${text.slice(Math.max(0, at - 200), at + 50)}`);
  }
});
