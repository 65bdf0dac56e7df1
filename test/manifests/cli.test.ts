import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run, tempDir } from '../helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const IMAGE = 'registry.example.com/root/helloworld';
const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: helloworld # the app
          image: ${IMAGE}:ci-33
`;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

let dir: string;
let file: string;
before(async () => {
  dir = await tempDir();
  file = join(dir, 'deployment.yml');
});

const reset = () => writeFile(file, DEPLOYMENT);

test('one file, no flag: the new content on stdout; the change on stderr', async () => {
  await reset();
  const r = await cli('set-image', file, '--image', IMAGE, '--tag', 'ci-34');
  assert.equal(r.code, 0);
  assert.equal(r.stdout, DEPLOYMENT.replace('ci-33', 'ci-34'));
  assert.match(r.stderr, /deployment\.yml:8: registry.example.com\/root\/helloworld:ci-33 -> .*:ci-34/);
  assert.equal(await readFile(file, 'utf8'), DEPLOYMENT, 'the file is untouched');
});

test('--diff prints a unified diff; --in-place rewrites; a re-run is a no-op with exit 0', async () => {
  await reset();
  const d = await cli('set-image', file, '--image', IMAGE, '--tag', 'ci-34', '--diff');
  assert.equal(d.code, 0);
  assert.match(d.stdout, /^-\s+image: registry.example.com\/root\/helloworld:ci-33$/m);
  assert.match(d.stdout, /^\+\s+image: registry.example.com\/root\/helloworld:ci-34$/m);
  const dry = await cli('set-image', file, '--image', IMAGE, '--tag', 'ci-34', '--in-place', '--dry-run');
  assert.equal(dry.code, 0);
  assert.equal(await readFile(file, 'utf8'), DEPLOYMENT);
  const w = await cli('set-image', file, '--image', IMAGE, '--tag', 'ci-34', '--in-place');
  assert.equal(w.code, 0);
  assert.equal(await readFile(file, 'utf8'), DEPLOYMENT.replace('ci-33', 'ci-34'));
  const again = await cli('set-image', file, '--image', IMAGE, '--tag', 'ci-34', '--in-place');
  assert.equal(again.code, 0);
  assert.match(again.stderr, /already at/);
});

test('exit codes: 2 bad arguments, 3 not referenced, 4 invalid YAML; nothing half-written', async () => {
  await reset();
  const bad = await cli('set-image', file, '--image', IMAGE, '--tag', 'a'.repeat(129));
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^gitops-bot: tag '.*' is 129 characters; the limit is 128\n$/);
  const upper = await cli('set-image', file, '--image', 'Registry/App', '--tag', '1');
  assert.equal(upper.code, 2);
  const missing = await cli('set-image', file, '--image', 'nginx', '--tag', '1');
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /not referenced .*found: registry.example.com\/root\/helloworld/);
  const broken = join(dir, 'broken.yml');
  await writeFile(broken, 'a: [1, 2\n');
  const yaml = await cli('set-image', file, broken, '--image', IMAGE, '--tag', 'ci-35', '--in-place');
  assert.equal(yaml.code, 4);
  assert.match(yaml.stderr, /broken\.yml:\d+:\d+: /);
  assert.equal(await readFile(file, 'utf8'), DEPLOYMENT, 'the valid file was not written either');
  const usage = await cli('set-image', file, '--tag', '1');
  assert.equal(usage.code, 2);
});

test('binary and invalid UTF-8 files get a clear error; oversize refused', async () => {
  const bin = join(dir, 'bin.yml');
  await writeFile(bin, Buffer.from([0x61, 0x3a, 0x00, 0x01]));
  const b = await cli('images', bin);
  assert.equal(b.code, 4);
  assert.match(b.stderr, /bin\.yml: binary file/);
  const latin = join(dir, 'latin1.yml');
  await writeFile(latin, Buffer.from('name: caf\xe9\n', 'latin1'));
  const l = await cli('images', latin);
  assert.equal(l.code, 4);
  assert.match(l.stderr, /latin1\.yml: not valid UTF-8 \(at byte 9\)/);
  const nofile = await cli('images', join(dir, 'nope.yml'));
  assert.equal(nofile.code, 1);
  assert.match(nofile.stderr, /nope\.yml: no such file/);
});

test('images lists references; --json gives positions', async () => {
  await reset();
  const r = await cli('images', file);
  assert.equal(r.stdout, `${file}:8:18\tcontainer\t${IMAGE}:ci-33\tcontainer=helloworld\n`);
  const j = JSON.parse((await cli('images', file, '--json')).stdout);
  assert.equal(j[0].line, 8);
  assert.equal(j[0].tag, 'ci-33');
  assert.deepEqual(j[0].byteRange, [j[0].range[0], j[0].range[1]]);
  const s = JSON.parse((await cli('set-image', file, '--image', IMAGE, '--tag', 'ci-34', '--json')).stdout);
  assert.equal(s.changed, true);
  assert.equal(s.files[0].changes[0].after, `${IMAGE}:ci-34`);
});

test('--help documents the exit codes', async () => {
  const r = await cli('set-image', '--help');
  assert.match(
    r.stdout,
    /Exit codes: 0 changed or already at the target; 2 bad arguments; 3 the image is not/,
  );
});
