// Issue 9: the bot image. The project's own pipeline job (build-bot-image, from
// ci-templates/build.yml) builds the Dockerfile with Buildah and pushes it to Debian's
// docker-registry; then the image runs `gitops-bot --version` as its non-root user.
// No registry with Node images is reachable here, so the base (Dockerfile ARG NODE_IMAGE)
// is assembled from this machine's node, git and sh: what the Dockerfile adds on top is
// what is tested.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { imageName, RegistryClient } from '../../src/registry/client.js';
import { run, tempDir } from '../helpers.js';
import { type Registry, startRegistry } from '../registry/docker-registry.js';
import { skipUnless } from '../tools.js';
import { ROOT } from './runner.js';

/** What these tests need on PATH: without it they skip, naming the install line (CI=true: fail). */
const skip = skipUnless('buildah', 'docker-registry', 'rsync');

const BASE = 'localhost/gitops-bot-test-node:20';
const GCL = join(ROOT, 'node_modules/.bin/gitlab-ci-local');
const buildahEnv = { ...process.env, STORAGE_DRIVER: 'vfs', BUILDAH_ISOLATION: 'chroot' };
let registry: Registry;

/** The shared libraries a binary loads, from ldd. */
async function libs(binary: string): Promise<string[]> {
  const { stdout } = await run('ldd', [binary]);
  return [...stdout.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]);
}

async function buildBase(): Promise<void> {
  const rootfs = join(await tempDir(), 'rootfs');
  const files = new Set<string>();
  const git = '/usr/lib/git-core/git-remote-http';
  for (const bin of ['/usr/bin/node', '/usr/bin/git', git, '/bin/dash', '/usr/bin/env']) {
    files.add(bin);
    for (const l of await libs(bin)) files.add(l);
  }
  for (const f of files) {
    await mkdir(join(rootfs, dirname(f)), { recursive: true });
    await cp(f, join(rootfs, f), { dereference: true });
  }
  await mkdir(join(rootfs, 'usr/local/bin'), { recursive: true });
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await copyFile('/bin/dash', join(rootfs, 'bin/sh'));
  await copyFile('/usr/lib/git-core/git-remote-http', join(rootfs, 'usr/lib/git-core/git-remote-https'));
  await mkdir(join(rootfs, 'etc/ssl/certs'), { recursive: true });
  await copyFile('/etc/ssl/certs/ca-certificates.crt', join(rootfs, 'etc/ssl/certs/ca-certificates.crt'));
  await writeFile(
    join(rootfs, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n',
  );
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nnode:x:1000:\n');
  await mkdir(join(rootfs, 'home/node'), { recursive: true });
  await mkdir(join(rootfs, 'tmp'), { recursive: true, mode: 0o1777 });
  const { stdout } = await run('buildah', ['from', 'scratch'], { env: buildahEnv });
  const ctr = stdout.trim();
  await run('buildah', ['copy', ctr, `${rootfs}/`, '/'], { env: buildahEnv });
  await run('buildah', ['config', '--env', 'PATH=/usr/local/bin:/usr/bin:/bin', '--user', 'root', ctr], {
    env: buildahEnv,
  });
  const fixup =
    "const fs = require('fs'); fs.chmodSync('/tmp', 0o1777); fs.chownSync('/home/node', 1000, 1000);";
  await run('buildah', ['run', ctr, '--', '/usr/bin/node', '-e', fixup], { env: buildahEnv });
  await run('buildah', ['commit', '-q', '--rm', ctr, BASE], { env: buildahEnv });
}

before(async () => {
  if (skip) return;
  registry = await startRegistry();
  await buildBase();
});
const built: string[] = [];
after(async () => {
  await registry?.close();
  // vfs keeps a full copy per layer: leave nothing behind in the machine's image store
  await run('buildah', ['rmi', '-f', BASE, ...built], { env: buildahEnv }).catch(() => undefined);
});

test("the project's pipeline builds the bot image: the bundle only, non-root, and it runs", {
  skip,
  timeout: 300_000,
}, async () => {
  // A checkout of this project, with the bundle job's artifact in place.
  const repo = await tempDir();
  for (const f of ['.gitlab-ci.yml', 'ci-templates', 'templates', 'Dockerfile', 'package.json'])
    await cp(join(ROOT, f), join(repo, f), { recursive: true });
  await mkdir(join(repo, 'dist'), { recursive: true });
  for (const f of ['dist/gitops-bot.mjs', 'dist/gitops-bot.data'])
    await copyFile(join(ROOT, f), join(repo, f));
  const gitEnv = {
    ...process.env,
    GIT_AUTHOR_NAME: 'ci',
    GIT_AUTHOR_EMAIL: 'ci@example.com',
    GIT_COMMITTER_NAME: 'ci',
    GIT_COMMITTER_EMAIL: 'ci@example.com',
  };
  await run('git', ['init', '-q', '-b', 'main', repo]);
  await run('git', ['remote', 'add', 'origin', 'https://gitlab.example.com/gitops/gitops-bot.git'], {
    cwd: repo,
  });
  await run('git', ['add', '-A', '-f'], { cwd: repo });
  await run('git', ['commit', '-qm', 'release'], { cwd: repo, env: gitEnv });
  const image = `${registry.host}/gitops/gitops-bot`;
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile(
      GCL,
      [
        '--shell-executor-no-image',
        '--force-shell-executor',
        'build-bot-image',
        '--variable',
        `NODE_IMAGE=${BASE}`,
        '--variable',
        `CI_REGISTRY_IMAGE=${image}`,
        '--variable',
        'CI_REGISTRY=',
      ],
      { cwd: repo, env: process.env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({
          code: err ? Number((err as { code?: number }).code ?? 1) : 0,
          output: `${stdout}${stderr}`,
        }),
    );
  });
  assert.equal(code, 0, output);
  const tag = /build-bot-image > IMAGE_TAG=(\S+)/.exec(output)![1];
  built.push(`${image}:${tag}`);

  const c = new RegistryClient();
  const name = imageName(image);
  const m = await c.manifest(name, tag);
  assert.ok(m, 'the image is in the registry');
  const manifest = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: unknown[] };
  const config = (await (
    await fetch(`${registry.url}/v2/gitops/gitops-bot/blobs/${manifest.config.digest}`)
  ).json()) as {
    config: { User?: string; Entrypoint?: string[]; Cmd?: string[]; Labels?: Record<string, string> };
  };
  assert.equal(config.config.User, 'node', 'runs as the unprivileged node user');
  assert.deepEqual(config.config.Entrypoint, ['gitops-bot']);
  assert.ok(config.config.Labels?.['org.opencontainers.image.revision'], 'the build template labels it');

  // Run it, as a CI job or a pod would
  const { stdout: ctr } = await run(
    'buildah',
    ['from', '--tls-verify=false', '--pull-always', `docker://${image}:${tag}`],
    { env: buildahEnv },
  );
  try {
    const version = await run('buildah', ['run', ctr.trim(), '--', 'gitops-bot', '--version'], {
      env: buildahEnv,
    });
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(version.stdout, `${pkg.version}\n`);
    const help = await run('buildah', ['run', ctr.trim(), '--', 'gitops-bot', 'promote', '--help'], {
      env: buildahEnv,
    });
    assert.match(help.stdout, /^Usage: gitops-bot promote/);
    // only the bundle (the loader and its data file) was added: nothing else of the project
    const ls = await run(
      'buildah',
      [
        'run',
        ctr.trim(),
        '--',
        '/usr/bin/node',
        '-e',
        "console.log(require('fs').readdirSync('/usr/local/bin').join(' '))",
      ],
      { env: buildahEnv },
    );
    // (this base keeps node in /usr/bin: /usr/local/bin is what the Dockerfile added)
    assert.equal(ls.stdout, 'gitops-bot gitops-bot.data\n');
  } finally {
    await run('buildah', ['rm', ctr.trim()], { env: buildahEnv });
  }
});
