// Finding 5: the bot's git token never travels in a process's argv (readable by every local
// user in the process list) nor in what leaves git-push.ts when a push fails. Since issue 16
// the bot speaks git's push protocol itself: no git child at all (a `git` first on PATH
// records any call), and the token only in the Authorization header of requests to
// GITLAB_URL, here a proxy in front of the sandbox that sees every request, and in the
// failing case answers git's with an error page echoing the header it was sent.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { type GitProxy, gitProxy } from '../gitlab/git-proxy.js';
import {
  addHook,
  client,
  OPS,
  PROMOTE_STORY,
  protectDeployRef,
  sandboxFixture,
  strictOps,
  until,
} from '../helpers.js';
import { CLI, fakeGit, realGit, type ServeProcess, startServe } from '../server/serve-process.js';

const TOKEN = 'gitops-bot-token';
const FORMS = [
  TOKEN,
  Buffer.from(`gitops-bot:${TOKEN}`).toString('base64'),
  Buffer.from(`gitops-bot:${TOKEN}`).toString('base64').replace(/=+$/, ''),
  Buffer.from(TOKEN).toString('base64').replace(/=+$/, ''),
];
const BASIC = `Basic ${Buffer.from(`gitops-bot:${TOKEN}`).toString('base64')}`;
let sb: Sandbox;
let proxy: GitProxy;
let git: { dir: string; calls: string };
let serve: ServeProcess;
const op = () => client(sb, 'operator');
const isGit = (path: string) => /\.git\/(info\/refs|git-receive-pack|git-upload-pack)/.test(path);
const gitCalls = () => readFile(git.calls, 'utf8').catch(() => '');

function leaks(text: string): string[] {
  return FORMS.filter((f) => text.includes(f)).map((f) => {
    const at = text.indexOf(f);
    return `${f} in: ...${text.slice(Math.max(0, at - 120), at + 40)}`;
  });
}

function cli(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: {
        ...process.env,
        GITLAB_URL: proxy.url,
        GITOPS_BOT_TOKEN: TOKEN,
        PATH: `${git.dir}:${process.env.PATH}`,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => {
      stdout += b;
    });
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

before(async () => {
  sb = await sandboxFixture();
  await strictOps(sb);
  const bot = (await op().Users.all({ username: 'gitops-bot' }))[0];
  await protectDeployRef(sb, bot.id);
  proxy = await gitProxy(sb.url);
  // were any git run, it would be recorded, then do its work
  git = await fakeGit(`exec '${await realGit()}' "$@"`);
  serve = await startServe(sb, ['--project', OPS], {
    GITLAB_URL: proxy.url,
    PATH: `${git.dir}:${process.env.PATH}`,
    GITOPS_BOT_LOG_LEVEL: 'debug',
  });
  await addHook(sb, `${serve.url}/webhook`, 's');
});
after(async () => {
  await serve?.stop();
  await proxy?.close();
  await sb?.close();
});

async function approveAndWaitForMerge(iid: number) {
  const mr = await op().MergeRequests.show(OPS, iid);
  await until(async () => (await op().Commits.allStatuses(OPS, mr.sha)).length > 0, 'the first verdict');
  await op().MergeRequestApprovals.approve(OPS, iid, { sha: mr.sha });
  await until(async () => (await op().MergeRequests.show(OPS, iid)).state === 'merged', 'the merge', 25, 800);
  return op().MergeRequests.show(OPS, iid);
}

test('promote replaces the MR branch, serve moves deploy_ref: no git process, the token only in the header to GitLab', async () => {
  const created = await cli([...PROMOTE_STORY, '--tag', 'ci-34', '--json']);
  assert.equal(created.code, 0, created.stderr);
  const updated = await cli([...PROMOTE_STORY, '--tag', 'ci-35', '--json']);
  assert.equal(updated.code, 0, updated.stderr);
  const result = JSON.parse(updated.stdout) as { action: string; mr: { iid: number }; commit: string };
  assert.equal(result.action, 'updated');
  assert.equal((await op().Branches.show(OPS, 'gitops-bot/production/helloworld')).commit.id, result.commit);

  const merged = await approveAndWaitForMerge(result.mr.iid);
  await until(
    async () => (await op().Branches.show(OPS, 'deploy/prod')).commit.id === merged.merge_commit_sha,
    'deploy_ref to move',
  );
  // both moves went through the push protocol, spoken by the bot itself
  const pushes = proxy.requests.filter(
    (r) => r.method === 'POST' && r.path.endsWith('.git/git-receive-pack'),
  );
  assert.equal(pushes.length, 2, 'the MR branch and deploy_ref');
  assert.equal(await gitCalls(), '', 'no git was run: there is no argv to hold the token');
  for (const r of proxy.requests.filter((q) => isGit(q.path))) assert.equal(r.authorization, BASIC, r.path);
  assert.deepEqual(leaks(proxy.requests.map((r) => r.path).join('\n')), [], 'no token in any URL');
  assert.deepEqual(leaks(`${created.stdout}${created.stderr}${updated.stdout}${updated.stderr}`), []);
});

test('a failing git server echoing the header: no error message, log line or --json output holds the token', async () => {
  const created = await cli([...PROMOTE_STORY, '--tag', 'ci-36', '--json']);
  assert.equal(created.code, 0, created.stderr);
  const iid = (JSON.parse(created.stdout) as { mr: { iid: number } }).mr.iid;
  // from here on, git's requests get an error page that repeats the credentials sent
  let echoed = 0;
  proxy.intercept = (r) => {
    if (!isGit(r.path)) return undefined;
    echoed++;
    return {
      status: 500,
      body: `fatal: unable to access ${r.path} with Authorization: ${r.authorization} token=${TOKEN}\n`,
    };
  };
  // an update goes through writeBranch -> replaceRef, which fails
  const failed = await cli([...PROMOTE_STORY, '--tag', 'ci-37', '--json'], { GITOPS_BOT_LOG_LEVEL: 'debug' });
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(
    failed.stderr,
    /moving gitops-bot\/production\/helloworld of root\/helloworld-ops: reading the refs of root\/helloworld-ops: 127\.0\.0\.1:\d+ answered 500: /,
  );
  assert.match(failed.stderr, /unable to access/, 'the server says why');
  assert.ok(echoed >= 1, 'the error page was served');
  const human = `${failed.stdout}${failed.stderr}`;
  assert.deepEqual(leaks(human), []);

  // serve: the merge's deploy_ref move goes through fastForward, which fails
  await approveAndWaitForMerge(iid);
  const failedMove = () =>
    serve.logs().find((l) => l.level === 50 && /reading the refs of/.test(String(l.msg)));
  await until(async () => !!failedMove(), 'serve to log the failed move', 25, 800);
  const failure = failedMove()!;
  assert.equal(failure.project, OPS);
  assert.match(String(failure.msg), /^job failed \(error\): .*answered 500: fatal: unable to access/);
  assert.ok((await serve.metric('gitops_bot_job_failures_total', '{reason="error"}')) >= 1);
  proxy.intercept = () => undefined;

  assert.equal(await gitCalls(), '', 'no git was run');
  assert.deepEqual(leaks(serve.stderr() + serve.stdout()), [], "serve's logs");
  assert.ok(
    serve.logs().some((l) => l.level === 20),
    'debug logging was on',
  );
  // nothing the bot wrote in GitLab either
  const notes = await op().MergeRequestNotes.all(OPS, iid);
  assert.deepEqual(leaks(JSON.stringify(notes)), []);
});
