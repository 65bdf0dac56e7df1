// The promote command as CI runs it: a fresh process, configuration from the environment.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Sandbox } from '../../src/sandbox/index.js';
import { OPS, PROMOTE_STORY, sandboxFixture } from '../helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const SECRET = 'glpat-SECRET-do-not-print-8d1f';
let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
  // A token nobody would mistake for anything else, to search the output for.
  const res = await fetch(`${sb.url}/-/sandbox/users`, {
    method: 'POST',
    headers: { 'PRIVATE-TOKEN': 'root-token', 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'deployer', bot: true }),
  });
  const user = (await res.json()) as { id: number };
  sb.core.store.user(user.id)!.token = SECRET;
  await fetch(`${sb.apiUrl}/projects/${encodeURIComponent(OPS)}/members`, {
    method: 'POST',
    headers: { 'PRIVATE-TOKEN': 'root-token', 'Content-Type': 'application/json' },
    body: JSON.stringify({ user_id: user.id, access_level: 30 }),
  });
});
after(() => sb.close());

function cli(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const clean = { PATH: process.env.PATH, HOME: process.env.HOME };
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...clean, ...env } as NodeJS.ProcessEnv },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const args = (tag: string, extra: string[] = []) => [
  ...PROMOTE_STORY,
  '--tag',
  tag,
  '--assignee',
  'operator',
  '--target-branch',
  'main',
  ...extra,
];

test('the MR URL on stdout, progress on stderr; --json one line; CI variables as source facts; no token anywhere', async () => {
  const env = {
    GITLAB_URL: sb.url,
    GITOPS_BOT_TOKEN: SECRET,
    CI_PROJECT_PATH: 'root/helloworld',
    CI_COMMIT_SHA: 'b'.repeat(40),
    CI_PIPELINE_IID: '34',
    CI_PIPELINE_URL: 'http://ci.example.com/p/34',
  };
  const r = await cli(args('ci-34', ['--env', 'cli']), env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^http:\/\/127\.0\.0\.1:\d+\/root\/helloworld-ops\/-\/merge_requests\/\d+\n$/);
  assert.match(r.stderr, /gitops-bot: reading deployment.yml at main of root\/helloworld-ops\n/);
  assert.match(r.stderr, /gitops-bot: opened !\d+/);
  const j = await cli(args('ci-34', ['--env', 'cli', '--json']), env);
  assert.equal(j.code, 0);
  assert.equal(j.stdout.trim().split('\n').length, 1);
  const out = JSON.parse(j.stdout);
  assert.deepEqual(
    [out.action, out.reason, out.branch],
    ['noop', 'already proposed', 'gitops-bot/cli/helloworld'],
  );
  assert.equal(out.requests, 2);
  assert.equal(j.stderr, '');
  const iid = out.mr.iid;
  const mr = (await (
    await fetch(`${sb.apiUrl}/projects/${encodeURIComponent(OPS)}/merge_requests/${iid}`, {
      headers: { 'PRIVATE-TOKEN': 'operator-token' },
    })
  ).json()) as { description: string };
  assert.match(mr.description, /\[#34\]\(http:\/\/ci.example.com\/p\/34\)/);
  assert.match(mr.description, /`bbbbbbbb`/);
  const notes = await (
    await fetch(`${sb.apiUrl}/projects/${encodeURIComponent(OPS)}/merge_requests/${iid}/notes`, {
      headers: { 'PRIVATE-TOKEN': 'operator-token' },
    })
  ).text();
  for (const text of [r.stdout, r.stderr, j.stdout, JSON.stringify(mr), notes])
    assert.ok(!text.includes(SECRET));
});

test('exit 5 for an older tag; exit 3 lists the images there; exit 2 for a missing file or unknown user', async () => {
  const env = { GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' };
  const old = await cli(args('ci-20', ['--env', 'cli2']), env);
  assert.equal(old.code, 5);
  assert.match(old.stderr, /refused: ci-20 is older than ci-33/);
  const wrong = await cli(
    [
      ...args('ci-35', ['--env', 'cli2']).map((a) =>
        a === 'registry.example.com/root/helloworld' ? 'nginx' : a,
      ),
    ],
    env,
  );
  assert.equal(wrong.code, 3);
  assert.match(
    wrong.stderr,
    /deployment\.yml: image 'nginx' is not referenced; found: registry.example.com\/root\/helloworld/,
  );
  const missing = await cli(
    args('ci-35', ['--env', 'cli2']).map((a) => (a === 'deployment.yml' ? 'nope.yml' : a)),
    env,
  );
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--file nope.yml: not found on main of root\/helloworld-ops/);
  const nobody = await cli(
    args('ci-35', ['--env', 'cli3']).map((a) => (a === 'operator' ? 'nobody' : a)),
    env,
  );
  assert.equal(nobody.code, 2);
  assert.match(nobody.stderr, /no GitLab user 'nobody'/);
  const branches = await (
    await fetch(`${sb.apiUrl}/projects/${encodeURIComponent(OPS)}/repository/branches?search=cli3`, {
      headers: { 'PRIVATE-TOKEN': 'operator-token' },
    })
  ).json();
  assert.deepEqual(branches, [], 'nothing written for a bad assignee');
  const traversal = await cli(
    args('ci-35').map((a) => (a === 'deployment.yml' ? '../../etc/passwd' : a)),
    env,
  );
  assert.equal(traversal.code, 2);
  assert.match(traversal.stderr, /must be a relative path inside the ops repository/);
  const badTag = await cli(args('CI 35'), env);
  assert.equal(badTag.code, 2);
});

test('token problems: none, CI_JOB_TOKEN only, rejected (exit 8), lacking write access (exit 8)', async () => {
  const none = await cli(args('ci-35'), { GITLAB_URL: sb.url });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no token: set GITOPS_BOT_TOKEN/);
  const job = await cli(args('ci-35'), { CI_SERVER_URL: sb.url, CI_JOB_TOKEN: 'job' });
  assert.equal(job.code, 2);
  assert.match(
    job.stderr,
    /a job token cannot write to another project\. Create a project access token in the ops project/,
  );
  const bad = await cli(args('ci-35', ['--env', 'tok']), { GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'expired' });
  assert.equal(bad.code, 8);
  assert.match(bad.stderr, /GitLab rejected the token \(401 Unauthorized\)/);
  const reporter = await cli(args('ci-35', ['--env', 'tok']), {
    GITLAB_URL: sb.url,
    GITOPS_BOT_TOKEN: 'argocd-token',
  });
  assert.equal(reporter.code, 8);
  assert.match(
    reporter.stderr,
    /the token lacks write access to root\/helloworld-ops .* needs the Developer role/,
  );
  const stranger = await cli(args('ci-35', ['--env', 'tok']), {
    GITLAB_URL: sb.url,
    GITOPS_BOT_TOKEN: 'developer-token',
  });
  assert.equal(stranger.code, 8);
  assert.match(stranger.stderr, /project root\/helloworld-ops not found, or the token cannot see it/);
});

test('--help teaches: environment, output, exit codes, an example', async () => {
  const r = await cli(['promote', '--help'], {});
  for (const s of [
    'GITOPS_BOT_TOKEN',
    'CI_JOB_TOKEN cannot write there',
    'Exit codes: 0 done',
    '5 refused',
    'Example',
  ]) {
    assert.ok(r.stdout.includes(s), s);
  }
});

/** A port on 127.0.0.1 where nothing listens (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('a network failure names the host and the cause; --json prints it as one JSON line too', async () => {
  const port = await closedPort();
  const url = `http://127.0.0.1:${port}`;
  // which request fails first varies (some go out together); each names GitLab's host and why
  const line = new RegExp(`^[^\\n]+: cannot reach GitLab at ${url}: connection refused$`);
  const env = { GITLAB_URL: url, GITOPS_BOT_TOKEN: 'gitops-bot-token' };
  const plain = await cli(args('ci-35', ['--no-verify-image']), env);
  assert.equal(plain.code, 1);
  const last = plain.stderr.trimEnd().split('\n').at(-1) ?? '';
  assert.match(last.replace(/^gitops-bot: /, ''), line);
  assert.doesNotMatch(plain.stderr, /fetch failed/);
  assert.equal(plain.stdout, '', 'without --json, nothing on stdout');
  const json = await cli(args('ci-35', ['--no-verify-image', '--json']), env);
  assert.equal(json.code, 1);
  const out = JSON.parse(json.stdout) as { action: string; exit: number; message: string };
  assert.equal(json.stdout.split('\n').length, 2, 'one line');
  assert.deepEqual([out.action, out.exit], ['error', 1]);
  assert.match(out.message, line);
  assert.equal(
    json.stderr,
    `gitops-bot: ${out.message}\n`,
    'stderr keeps its line (and, with --json, no progress)',
  );
});

test('--json: every failure is one JSON line with its exit code (usage, no token, rejected token)', async () => {
  const env = { GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' };
  const outcome = (stdout: string) => {
    assert.equal(stdout.split('\n').length, 2, `one line: ${stdout}`);
    return JSON.parse(stdout) as { action: string; exit: number; message: string };
  };
  const unknown = await cli([...args('ci-35'), '--json', '--bogus'], env);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--bogus'/);
  assert.deepEqual(outcome(unknown.stdout), {
    action: 'error',
    exit: 2,
    message: "unknown option '--bogus'",
  });
  // A refusal is an outcome of its own: the result line (action "refused"), not a second line.
  const old = await cli(args('ci-20', ['--env', 'json-old', '--json']), env);
  assert.equal(old.code, 5);
  assert.equal(outcome(old.stdout).action, 'refused');
  const none = await cli(args('ci-35', ['--json']), { GITLAB_URL: sb.url });
  assert.equal(none.code, 2);
  assert.deepEqual(
    [outcome(none.stdout).action, outcome(none.stdout).exit],
    ['error', 2],
    'no token: an error line with exit 2',
  );
  assert.match(outcome(none.stdout).message, /no token: set GITOPS_BOT_TOKEN/);
  const bad = await cli(args('ci-35', ['--env', 'json-tok', '--json']), {
    ...env,
    GITOPS_BOT_TOKEN: 'expired',
  });
  assert.equal(bad.code, 8);
  assert.equal(outcome(bad.stdout).exit, 8);
  assert.ok(!bad.stdout.includes('4711'), 'no token in the JSON');
  // --help with --json is no failure: no error line
  const help = await cli(['promote', '--help', '--json'], {});
  assert.equal(help.code, 0);
  assert.doesNotMatch(help.stdout, /"action":"error"/);
});

test('after the build dist/src/cli.js is executable: `npx gitops-bot` runs it in the repository', async () => {
  // tsc drops the mode; scripts/bundle.mjs (run by `npm run build`) sets it.
  const { mode } = await stat(CLI);
  assert.equal(mode & 0o111, 0o111, `mode ${mode.toString(8)}`);
  const version = await new Promise<string>((resolve, reject) =>
    execFile(CLI, ['--version'], (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  assert.match(version, /^\d+\.\d+\.\d+\n$/);
});
