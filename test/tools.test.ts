// Issue 19: `npm test` on a fresh machine. A test that needs a system tool skips with the
// install line when the tool is missing, and under CI=true fails instead.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { symlink } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers.js';
import { skipSummary } from './skip-reasons.js';
import { installLine, onPath, skipDecision } from './tools.js';

test('skipDecision: nothing missing runs; missing skips with the install line; CI=true fails', () => {
  const cases: [string[], boolean, string | false | RegExp][] = [
    [[], false, false],
    [[], true, false],
    [['buildah'], false, 'buildah is not installed: apt-get install -y buildah'],
    [
      ['docker-registry', 'perl'],
      false,
      'docker-registry, perl are not installed: apt-get install -y docker-registry perl-base',
    ],
    [['rsync'], true, /^rsync is not installed \(CI=true: .*\): apt-get install -y rsync$/],
  ];
  for (const [missing, ci, want] of cases) {
    const got = skipDecision(missing, ci);
    if (want instanceof RegExp) {
      assert.ok(got instanceof Error, `${missing} ci=${ci}`);
      assert.match(got.message, want);
    } else assert.equal(got, want, `${missing} ci=${ci}`);
  }
  assert.equal(
    installLine(['openssl', 'skopeo', 'umoci', 'git']),
    'apt-get install -y openssl skopeo umoci git',
  );
});

/** A PATH of symlinks to every command on this one except `hidden`. */
async function pathWithout(hidden: string): Promise<string> {
  const bin = await tempDir('gitops-bot-path-');
  const linked = new Set<string>([hidden]);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (linked.has(name)) continue;
      linked.add(name);
      await symlink(join(dir, name), join(bin, name));
    }
  }
  return bin;
}

const IMAGE_TEST = fileURLToPath(new URL('./ship/image.test.js', import.meta.url));

const SKIP_REPORTER = fileURLToPath(new URL('./skip-reasons.js', import.meta.url));

/** `node --test file`, as its own run (NODE_TEST_CONTEXT would make it a subtest of this one). */
function nodeTest(file: string, env: NodeJS.ProcessEnv, reporters = ['--test-reporter=tap']) {
  const { NODE_TEST_CONTEXT: _, ...own } = env;
  return new Promise<{ code: number; out: string }>((resolve) => {
    execFile(process.execPath, ['--test', ...reporters, file], { env: own }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

test('without buildah on PATH the image test skips with the install line; with CI=true it fails', async () => {
  const path = await pathWithout('buildah');
  assert.equal(onPath('buildah', path), false);
  assert.equal(onPath('git', path), true, 'everything else is still there');
  const skipped = await nodeTest(IMAGE_TEST, { ...process.env, PATH: path, CI: '' });
  assert.equal(skipped.code, 0, skipped.out);
  assert.match(skipped.out, /# SKIP buildah is not installed: apt-get install -y buildah\n/);
  assert.match(skipped.out, /^# skipped 1$/m);
  assert.match(skipped.out, /^# pass 0$/m);
  // the reason once in plain words too, as the summary does not repeat it
  assert.match(skipped.out, /gitops-bot tests: skipping what needs it, buildah is not installed/);

  const ci = await nodeTest(IMAGE_TEST, { ...process.env, PATH: path, CI: 'true' });
  assert.notEqual(ci.code, 0, ci.out);
  assert.match(ci.out, /buildah is not installed \(CI=true: .*\): apt-get install -y buildah/);
  assert.doesNotMatch(ci.out, /# SKIP/);
});

test('skipSummary: one line a reason, with its count (tests, and whole suites apart), most frequent first', () => {
  const rsync = 'rsync is not installed: apt-get install -y rsync';
  const registry = 'docker-registry is not installed: apt-get install -y docker-registry';
  const t = (reason: string | boolean) => ({ reason, suite: false });
  assert.deepEqual(skipSummary([]), []);
  assert.deepEqual(skipSummary([t(rsync), t(registry), t(registry), t(true)]), [
    `# skipped 2: ${registry}\n`,
    '# skipped 1: no reason given\n',
    `# skipped 1: ${rsync}\n`,
  ]);
  assert.deepEqual(skipSummary([t(rsync), { reason: rsync, suite: true }, { reason: rsync, suite: true }]), [
    `# skipped 1 and 2 suites: ${rsync}\n`,
  ]);
  assert.deepEqual(skipSummary([{ reason: rsync, suite: true }]), [`# skipped 1 suite: ${rsync}\n`]);
});

test('the skip-reasons reporter ends the run with why tests were skipped', async () => {
  const path = await pathWithout('buildah');
  const r = await nodeTest(IMAGE_TEST, { ...process.env, PATH: path, CI: '' }, [
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${SKIP_REPORTER}`,
    '--test-reporter-destination=stdout',
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /ℹ skipped 1\n/, 'the spec summary counts it');
  assert.ok(r.out.endsWith('# skipped 1: buildah is not installed: apt-get install -y buildah\n'), r.out);
});
