// Finding 5: the bot's git token never travels in git's argv (readable by every local user
// in the process list) nor in what leaves git-push.ts when git fails. A `git` first on PATH
// records each call's argv and environment names; it passes through to the real git, or
// fails echoing its arguments and the Authorization header it was given.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
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
let sb: Sandbox;
let git: { dir: string; calls: string };
let serve: ServeProcess;
const op = () => client(sb, 'operator');
const mode = (m: 'pass' | 'fail') => writeFile(join(git.dir, 'mode'), m);

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
        GITLAB_URL: sb.url,
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
  git = await fakeGit(`
if [ "$(cat "$(dirname "$0")/mode")" = pass ] || [ "$1" = init ]; then exec '${await realGit()}' "$@"; fi
echo "fatal: unable to access '$*' with $(env | grep '^GIT_CONFIG_VALUE_' | tr '\\n' ' ') token=$GITOPS_BOT_TOKEN" >&2
exit 128
`);
  await mode('pass');
  serve = await startServe(sb, ['--project', OPS], {
    PATH: `${git.dir}:${process.env.PATH}`,
    GITOPS_BOT_LOG_LEVEL: 'debug',
  });
  await addHook(sb, `${serve.url}/webhook`, 's');
});
after(async () => {
  await serve?.stop();
  await sb?.close();
});

async function approveAndWaitForMerge(iid: number) {
  const mr = await op().MergeRequests.show(OPS, iid);
  await until(async () => (await op().Commits.allStatuses(OPS, mr.sha)).length > 0, 'the first verdict');
  await op().MergeRequestApprovals.approve(OPS, iid, { sha: mr.sha });
  await until(async () => (await op().MergeRequests.show(OPS, iid)).state === 'merged', 'the merge', 25, 800);
  return op().MergeRequests.show(OPS, iid);
}

test('real git: promote replaces the MR branch, serve moves deploy_ref; the token is in no argv', async () => {
  const created = await cli([...PROMOTE_STORY, '--tag', 'ci-34', '--json']);
  assert.equal(created.code, 0, created.stderr);
  const updated = await cli([...PROMOTE_STORY, '--tag', 'ci-35', '--json']);
  assert.equal(updated.code, 0, updated.stderr);
  const result = JSON.parse(updated.stdout) as { action: string; mr: { iid: number }; commit: string };
  assert.equal(result.action, 'updated');
  assert.equal((await op().Branches.show(OPS, 'gitops-bot/main/helloworld')).commit.id, result.commit);

  const merged = await approveAndWaitForMerge(result.mr.iid);
  await until(
    async () => (await op().Branches.show(OPS, 'deploy/prod')).commit.id === merged.merge_commit_sha,
    'deploy_ref to move',
  );
  const calls = await readFile(git.calls, 'utf8');
  assert.match(calls, /ARGV \[push\] .*\[--force-with-lease=refs\/heads\/gitops-bot\/main\/helloworld:/);
  assert.match(calls, /ARGV \[push\] .*\[--force-with-lease=refs\/heads\/deploy\/prod:/);
  // the header travels in the environment (private to the bot's user), never on the command line
  for (const line of calls.split('\n').filter((l) => l.startsWith('ENV ')))
    for (const name of ['GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_0'])
      assert.match(line, new RegExp(` ${name} `));
  for (const line of calls.split('\n').filter((l) => l.startsWith('ARGV ')))
    assert.doesNotMatch(line, /extraHeader|Authorization/i);
  assert.deepEqual(leaks(calls), []);
  assert.deepEqual(leaks(`${created.stdout}${created.stderr}${updated.stdout}${updated.stderr}`), []);
});

test('a failing git: no argv, error message, log line or --json output holds the token', async () => {
  await mode('fail');
  const created = await cli([...PROMOTE_STORY, '--tag', 'ci-36', '--json']);
  assert.equal(created.code, 0, created.stderr);
  const iid = (JSON.parse(created.stdout) as { mr: { iid: number } }).mr.iid;
  // an update goes through writeBranch -> replaceRef -> git, which fails
  const failed = await cli([...PROMOTE_STORY, '--tag', 'ci-37', '--json'], { GITOPS_BOT_LOG_LEVEL: 'debug' });
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(failed.stderr, /moving gitops-bot\/main\/helloworld of root\/helloworld-ops: fetching /);
  assert.match(failed.stderr, /unable to access/, 'git says why');
  // what the fake git echoed, scrubbed
  const human = `${failed.stdout}${failed.stderr}`;
  assert.deepEqual(leaks(human), []);

  // serve: the merge's deploy_ref move goes through fastForward -> git, which fails
  await approveAndWaitForMerge(iid);
  await until(
    async () => serve.logs().some((l) => l.level === 50 && /fetching/.test(String(l.msg))),
    'serve to log the failed move',
    25,
    800,
  );
  const failure = serve.logs().find((l) => l.level === 50 && /fetching/.test(String(l.msg)))!;
  assert.equal(failure.project, OPS);
  assert.match(String(failure.msg), /^job failed \(error\): /);
  assert.ok((await serve.metric('gitops_bot_job_failures_total', '{reason="error"}')) >= 1);

  const calls = await readFile(git.calls, 'utf8');
  assert.match(calls, /ARGV \[fetch\]/);
  assert.deepEqual(leaks(calls), [], 'argv');
  assert.deepEqual(leaks(serve.stderr() + serve.stdout()), [], "serve's logs");
  assert.ok(
    serve.logs().some((l) => l.level === 20),
    'debug logging was on',
  );
  // nothing the bot wrote in GitLab either
  const notes = await op().MergeRequestNotes.all(OPS, iid);
  assert.deepEqual(leaks(JSON.stringify(notes)), []);
});
