// Issue 9: the npm package holds only what runs, and `npx gitops-bot --help` works from it
// in an empty folder (its dependencies come from npm's cache, which `npm ci` filled).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run, tempDir } from '../helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('npm pack: only dist/src (no tests, benchmarks or source maps), LICENSE, README and package.json', async () => {
  const dest = await tempDir();
  // --ignore-scripts: `npm test` has just built dist; prepack would build it again
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dest], {
    cwd: ROOT,
  });
  const [pack] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = pack.files.map((f) => f.path);
  assert.deepEqual(files.filter((f) => !f.startsWith('dist/src/')).sort(), [
    'LICENSE',
    'README.md',
    'package.json',
  ]);
  assert.deepEqual(
    files.filter((f) => /\.map$|(^|\/)test\/|(^|\/)bench\//.test(f)),
    [],
  );
  for (const f of [
    'dist/src/cli.js',
    'dist/src/index.js',
    'dist/src/index.d.ts',
    'dist/src/sandbox/index.js',
  ])
    assert.ok(files.includes(f), f);

  const empty = await tempDir();
  const npx = await run(
    'npm',
    [
      'exec',
      '--yes',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      `--package=${join(dest, pack.filename)}`,
      '--',
      'gitops-bot',
      '--help',
    ],
    { cwd: empty, env: { ...process.env, npm_config_update_notifier: 'false' }, timeout: 180_000 },
  );
  assert.match(npx.stdout, /^Usage: gitops-bot \[options\] \[command\]/m);
  assert.match(npx.stdout, /promote/);
  const version = await run(
    'npm',
    [
      'exec',
      '--yes',
      '--prefer-offline',
      `--package=${join(dest, pack.filename)}`,
      '--',
      'gitops-bot',
      '--version',
    ],
    { cwd: empty },
  );
  const pkg = JSON.parse((await run('cat', [join(ROOT, 'package.json')])).stdout) as { version: string };
  assert.equal(version.stdout.trim(), pkg.version);
});
