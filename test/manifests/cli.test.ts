import assert from 'node:assert/strict';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MAX_MANIFEST_BYTES } from '../../src/cli/manifest-actions.js';
import { MAX_MANIFEST_BYTES as PROMOTE_MAX_BYTES } from '../../src/promote/promote.js';
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

test('images and set-image refuse a file over 16 MiB (exit 4), the limit promote and the README state', async () => {
  assert.equal(MAX_MANIFEST_BYTES, 16 * 1024 * 1024);
  assert.equal(MAX_MANIFEST_BYTES, PROMOTE_MAX_BYTES);
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
  assert.match(readme, /over 16 MiB/);
  const big = join(dir, 'big.yml');
  await writeFile(big, '');
  await truncate(big, MAX_MANIFEST_BYTES + 1); // sparse: the size is what is checked, before reading
  const images = await cli('images', big);
  assert.equal(images.code, 4);
  assert.equal(
    images.stderr,
    `gitops-bot: ${big}: ${MAX_MANIFEST_BYTES + 1} bytes is over the 16 MiB limit for a manifest\n`,
  );
  const set = await cli('set-image', big, '--image', IMAGE, '--tag', 'ci-34');
  assert.equal(set.code, 4);
  assert.match(set.stderr, /over the 16 MiB limit/);
  await truncate(big, MAX_MANIFEST_BYTES); // at the limit: read (and it is no YAML with images)
  assert.equal((await cli('images', big)).code, 4, 'NUL bytes: binary, not over the limit');
  assert.doesNotMatch((await cli('images', big)).stderr, /limit/);
});

test("an invalid reference in a file is reported as invalid (exit 2), not as 'not referenced'", async () => {
  const broken = join(dir, 'broken-ref.yml');
  await writeFile(broken, DEPLOYMENT.replace(`${IMAGE}:ci-33`, 'alpine:invalid!'));
  const r = await cli('set-image', broken, '--image', 'alpine', '--tag', '3.20');
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `gitops-bot: ${broken}:8:18: image 'alpine:invalid!' is not a valid reference: tag 'invalid!' is invalid: a tag is 1 to 128 of [A-Za-z0-9_.-] and cannot start with '.' or '-'\n`,
  );
  const arg = await cli('set-image', file, '--image', 'alpine:invalid!', '--tag', '3.20');
  assert.equal(arg.code, 2);
  assert.match(arg.stderr, /--image 'alpine:invalid!' is not a valid reference: tag 'invalid!' is invalid/);
  const other = await cli('set-image', broken, '--image', 'nginx', '--tag', '1');
  assert.equal(other.code, 3);
  assert.match(
    other.stderr,
    /no image references found; not valid references: 'alpine:invalid!' \(.*broken-ref\.yml:8\)/,
  );
});

test('--json: a failure of images or set-image is one JSON line on stdout too', async () => {
  await reset();
  const missing = await cli('set-image', file, '--image', 'nginx', '--tag', '1', '--json');
  assert.equal(missing.code, 3);
  const line = JSON.parse(missing.stdout);
  assert.deepEqual(Object.keys(line), ['action', 'exit', 'message']);
  assert.deepEqual([line.action, line.exit], ['error', 3]);
  assert.equal(`gitops-bot: ${line.message}\n`, missing.stderr);
  const nofile = await cli('images', join(dir, 'nope.yml'), '--json');
  assert.equal(nofile.code, 1);
  assert.equal(
    nofile.stdout,
    `${JSON.stringify({ action: 'error', exit: 1, message: `${join(dir, 'nope.yml')}: no such file` })}\n`,
  );
  const usage = await cli('set-image', file, '--tag', '1', '--json');
  assert.equal(usage.code, 2);
  assert.deepEqual(JSON.parse(usage.stdout), {
    action: 'error',
    exit: 2,
    message: "required option '--image <repo>' not specified",
  });
});

test('images recognises a kustomization by its content, under any file name', async () => {
  const k = join(dir, 'prod-images.yml');
  await writeFile(
    k,
    `resources: [deployment.yml]\nimages:\n  - name: helloworld\n    newName: ${IMAGE}\n    newTag: ci-33\n`,
  );
  const r = await cli('images', k);
  assert.equal(r.stdout, `${k}:3:11\tkustomize\t${IMAGE}:ci-33\n`);
  const w = await cli('set-image', k, '--image', IMAGE, '--tag', 'ci-34', '--in-place');
  assert.equal(w.code, 0, w.stderr);
  assert.match(await readFile(k, 'utf8'), /newTag: ci-34\n$/);
});
