// Issue 8: the registry client against Debian's real docker-registry on 127.0.0.1, three
// ways: anonymous, htpasswd basic auth, and Bearer tokens from the sandbox's /jwt/auth (as
// GitLab's registry does). All three serve the same storage; test images are pushed to the
// anonymous one.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { imageName, RegistryClient, type RegistryError } from '../../src/registry/client.js';
import { pushImage } from '../../src/sandbox/images.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { run, sandboxFixture } from '../helpers.js';
import { skipUnless } from '../tools.js';
import { htpasswd, type Registry, startRegistry, tokenKeys } from './docker-registry.js';

/** What these tests need on PATH: without it they skip, naming the install line (CI=true: fail). */
const skip = skipUnless('docker-registry', 'openssl', 'perl');

const CLI = join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist/src/cli.js');
let sb: Sandbox;
let open: Registry & { storage: string };
let basic: Registry;
let bearer: Registry;

before(async () => {
  if (skip) return;
  const keys = await tokenKeys();
  sb = await sandboxFixture({ registryTokens: { key: keys.key, certificate: keys.certificate } });
  open = await startRegistry();
  [basic, bearer] = await Promise.all([
    startRegistry({ storage: open.storage, htpasswd: await htpasswd({ ci: 'registry-password' }) }),
    startRegistry({
      storage: open.storage,
      token: { realm: `${sb.url}/jwt/auth`, certificate: keys.certFile },
    }),
  ]);
});
after(async () => {
  await Promise.all([open?.close(), basic?.close(), bearer?.close(), sb?.close()]);
});

/** A CI_JOB_TOKEN of a job in root/helloworld run by `username` (the sandbox mints it). */
async function jobToken(username: string): Promise<string> {
  const res = await fetch(`${sb.url}/-/sandbox/job-tokens`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Private-Token': 'root-token' },
    body: JSON.stringify({ project: 'root/helloworld', username }),
  });
  assert.equal(res.status, 201);
  return ((await res.json()) as { token: string }).token;
}

const anonymous = () => new RegistryClient();
const as = (username: string, password: string) =>
  new RegistryClient({ credentials: () => ({ username, password }) });

describe('digest resolution equals the registry Docker-Content-Digest', () => {
  for (const format of ['oci', 'docker', 'index'] as const) {
    test(`${format}: resolve and manifest agree with what the registry said on push`, { skip }, async () => {
      const pushed = await pushImage(open.url, 'root/helloworld', `fmt-${format}`, { format });
      const c = anonymous();
      const name = imageName(`${open.host}/root/helloworld`);
      const r = await c.resolve(name, `fmt-${format}`);
      assert.equal(r?.digest, pushed);
      const m = await c.manifest(name, `fmt-${format}`);
      assert.equal(m?.digest, pushed);
      // GET by digest, as a runtime pulls a pinned reference
      assert.equal((await c.resolve(name, pushed))?.digest, pushed);
      if (format === 'index') assert.equal(r?.mediaType, 'application/vnd.oci.image.index.v1+json');
      if (format === 'docker')
        assert.equal(r?.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    });
  }

  test('labels are read from the image config; for an index, from its linux/amd64 image', {
    skip,
  }, async () => {
    const labels = { 'org.opencontainers.image.revision': 'abc123' };
    await pushImage(open.url, 'root/helloworld', 'labelled', { format: 'index', labels });
    const info = await anonymous().inspect(imageName(`${open.host}/root/helloworld`), 'labelled');
    assert.equal(info?.labels['org.opencontainers.image.revision'], 'abc123');
  });

  test('a missing tag resolves to null, a missing repository too', { skip }, async () => {
    const c = anonymous();
    assert.equal(await c.resolve(imageName(`${open.host}/root/helloworld`), 'no-such-tag'), null);
    assert.equal(await c.resolve(imageName(`${open.host}/root/nothing-here`), 'ci-1'), null);
  });
});

describe('basic auth (htpasswd)', () => {
  test('the right credentials resolve; none or wrong ones are an auth error naming the registry', {
    skip,
  }, async () => {
    const digest = await pushImage(open.url, 'root/helloworld', 'basic-1');
    const name = imageName(`${basic.host}/root/helloworld`);
    assert.equal((await as('ci', 'registry-password').resolve(name, 'basic-1'))?.digest, digest);
    for (const c of [anonymous(), as('ci', 'wrong')]) {
      await assert.rejects(c.resolve(name, 'basic-1'), (e: RegistryError) => {
        assert.equal(e.kind, 'auth');
        assert.match(e.message, new RegExp(`registry ${basic.host.replace(/\./g, '\\.')} refused`));
        assert.doesNotMatch(e.message, /registry-password|wrong/);
        return true;
      });
    }
  });

  test('retag keeps the digest', { skip }, async () => {
    const digest = await pushImage(open.url, 'root/helloworld', 'basic-2', { format: 'docker' });
    const c = as('ci', 'registry-password');
    const name = imageName(`${basic.host}/root/helloworld`);
    assert.equal(await c.tag(name, 'basic-2', 'basic-2-prod'), digest);
    assert.equal((await c.resolve(name, 'basic-2-prod'))?.digest, digest);
  });
});

describe('Bearer tokens from the sandbox /jwt/auth (GitLab registry flow)', () => {
  test('a developer of root/helloworld pulls and pushes with a token; the token request is logged', {
    skip,
  }, async () => {
    const digest = await pushImage(open.url, 'root/helloworld', 'bearer-1', { format: 'index' });
    const c = as('developer', 'developer-token');
    const name = imageName(`${bearer.host}/root/helloworld`);
    const before = sb.requests.length;
    assert.equal((await c.resolve(name, 'bearer-1'))?.digest, digest);
    assert.equal(await c.tag(name, 'bearer-1', 'bearer-1-stable'), digest);
    assert.equal((await c.resolve(name, 'bearer-1-stable'))?.digest, digest);
    const tokens = sb.requests.slice(before).filter((r) => r.path === '/jwt/auth');
    assert.deepEqual(
      tokens.map((r) => [r.status, r.user]),
      [
        [200, 'developer'],
        [200, 'developer'],
      ],
      'one token per scope (pull, then pull,push), reused after',
    );
  });

  test('CI_JOB_TOKEN style: gitlab-ci-token with a job token is the job user', { skip }, async () => {
    await pushImage(open.url, 'root/helloworld', 'bearer-2');
    const token = await jobToken('developer');
    const c = as('gitlab-ci-token', token);
    assert.ok(await c.resolve(imageName(`${bearer.host}/root/helloworld`), 'bearer-2'));
  });

  test('no access: anonymous on a private project, a reporter pushing, a bad token', { skip }, async () => {
    await pushImage(open.url, 'root/helloworld', 'bearer-3');
    const name = imageName(`${bearer.host}/root/helloworld`);
    await assert.rejects(anonymous().resolve(name, 'bearer-3'), (e: RegistryError) => e.kind === 'auth');
    await assert.rejects(as('developer', 'not-a-token').resolve(name, 'bearer-3'), (e: RegistryError) => {
      assert.equal(e.kind, 'auth');
      assert.match(e.message, /token service of registry .* refused user 'developer' \(401\)/);
      return true;
    });
    // gitops-bot is a Reporter on root/helloworld: it may pull, not push
    const bot = as('gitops-bot', 'gitops-bot-token');
    assert.ok(await bot.resolve(name, 'bearer-3'));
    await assert.rejects(bot.tag(name, 'bearer-3', 'bearer-3-x'), (e: RegistryError) => e.kind === 'auth');
  });
});

test('CLI in GitLab CI: retag authenticates with CI_REGISTRY_USER / CI_REGISTRY_PASSWORD (a job token)', {
  skip,
}, async () => {
  await pushImage(open.url, 'root/helloworld', 'ci-env-1');
  const token = await jobToken('developer');
  const env = {
    ...process.env,
    CI_REGISTRY: bearer.host,
    CI_REGISTRY_USER: 'gitlab-ci-token',
    CI_REGISTRY_PASSWORD: token,
    GITOPS_BOT_LOG_LEVEL: 'debug',
  };
  const image = `${bearer.host}/root/helloworld`;
  const r = await run(
    'node',
    [CLI, 'retag', '--image', image, '--from', 'ci-env-1', '--to', 'ci-env-1-prod'],
    { env },
  );
  assert.match(r.stdout, new RegExp(`^${image.replace(/\./g, '\\.')}:ci-env-1-prod sha256:[0-9a-f]{64}\\n$`));
  assert.ok(!`${r.stdout}${r.stderr}`.includes(token), 'the job token is never printed');
  // another registry host never gets CI_REGISTRY's credentials
  const other = await run(
    'node',
    [CLI, 'retag', '--image', `${basic.host}/root/helloworld`, '--from', 'ci-env-1', '--to', 'x'],
    {
      env,
    },
  ).catch((e: { code: number; stderr: string }) => e);
  assert.equal((other as { code: number }).code, 7);
  assert.match((other as { stderr: string }).stderr, /refused anonymous access/);
});

test('passing failures are retried: a 503 and a reset connection in front of the registry', {
  skip,
}, async () => {
  const digest = await pushImage(open.url, 'root/helloworld', 'flaky-1');
  // A loopback proxy to the registry that fails each path's first request: 503 for GETs and
  // HEADs of manifests, a dropped connection for blobs.
  const seen = new Set<string>();
  const proxy = createServer(async (req, res) => {
    const key = `${req.method} ${req.url}`;
    if (!seen.has(key)) {
      seen.add(key);
      if (req.url?.includes('/blobs/')) return req.socket.destroy();
      res.writeHead(503, { 'Retry-After': '0' });
      return res.end('busy');
    }
    const upstream = await fetch(`${open.url}${req.url}`, {
      method: req.method,
      headers: { accept: String(req.headers.accept ?? '') },
    });
    res.writeHead(upstream.status, Object.fromEntries(upstream.headers.entries()));
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    const host = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const c = anonymous();
    const name = imageName(`${host}/root/helloworld`);
    assert.equal((await c.resolve(name, 'flaky-1'))?.digest, digest);
    const info = await c.inspect(name, 'flaky-1');
    assert.equal(info?.digest, digest);
    // resolve: 503 + 200; inspect: manifest 503 + 200, config blob reset + 200
    assert.equal(c.requests, 6);
  } finally {
    proxy.close();
  }
});
