// Issue 8 in promote: verify the tag, pin the digest, and list what is being deployed (the
// commits of root/helloworld between the deployed image's revision and the new one's),
// against Debian's docker-registry and the sandbox.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GitLab } from '../../src/gitlab/client.js';
import { readRecordComment } from '../../src/model/record.js';
import { type PromoteRequest, promote } from '../../src/promote/promote.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage } from '../../src/sandbox/images.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { APP, type Client, client, OPS, run, sandboxFixture } from '../helpers.js';
import { skipUnless } from '../tools.js';
import { freePort, type Registry, startRegistry } from './docker-registry.js';

/** What these tests need on PATH: without it they skip, naming the install line (CI=true: fail). */
const skip = skipUnless('docker-registry');

const CLI = join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist/src/cli.js');
let sb: Sandbox;
let registry: Registry;
let op: Client;
let dev: Client;
let image: string;
/** commits of root/helloworld: the one ci-33 was built from, and those after it up to ci-34 */
let built33: string;
let between: string[];

const labels = (sha: string) => ({
  'org.opencontainers.image.revision': sha,
  'org.opencontainers.image.source': `${sb.url}/${APP}`,
});

async function commit(message: string, branch = 'main') {
  const c = await dev.Commits.create(APP, branch, message, [
    { action: 'create', filePath: `notes/${message.replace(/\W+/g, '-')}.txt`, content: message },
  ]);
  return c.id;
}

before(async () => {
  if (skip) return;
  [sb, registry] = await Promise.all([sandboxFixture(), startRegistry()]);
  image = `${registry.host}/root/helloworld`;
  op = client(sb, 'operator');
  dev = client(sb, 'reviewer'); // Maintainer of root/helloworld: may push to main
  built33 = (await dev.Commits.show(APP, 'main')).id;
  await pushImage(registry.url, 'root/helloworld', 'ci-33', { labels: labels(built33) });
  // After ci-33: two commits on main, and a merge request merged by its maintainer.
  const c1 = await commit('Say hello in Spanish');
  const c2 = await commit('Bump nginx');
  await dev.Branches.create(APP, 'feature/footer', 'main');
  const c3 = await commit('Add a footer', 'feature/footer');
  const mr = await dev.MergeRequests.create(APP, 'feature/footer', 'main', 'Add a footer');
  const merged = await client(sb, 'reviewer').MergeRequests.merge(APP, mr.iid);
  between = [c1, c2, c3, String(merged.merge_commit_sha)];
  await pushImage(registry.url, 'root/helloworld', 'ci-34', {
    labels: labels(String(merged.merge_commit_sha)),
  });
  await pushImage(registry.url, 'root/helloworld', 'ci-35-unlabelled');
  const base = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await op.Commits.create(OPS, 'main', 'An app whose images live in the test registry', [
    {
      action: 'create',
      filePath: 'registry/deployment.yml',
      content: base.replace('registry.example.com/root/helloworld:ci-33', `${image}:ci-33`),
    },
  ]);
});
after(async () => {
  await Promise.all([registry?.close(), sb?.close()]);
});

const bot = () => new GitLab({ url: sb.url, token: 'gitops-bot-token' });
const request = (extra: Partial<PromoteRequest>): PromoteRequest => ({
  project: OPS,
  files: ['registry/deployment.yml'],
  image,
  tag: 'ci-34',
  targetBranch: 'main',
  assignees: ['operator'],
  ...extra,
});

test('the MR description lists exactly the commits between the two images, and the merged MR', {
  skip,
}, async () => {
  const r = await promote(request({ env: 'listed' }), { gitlab: bot(), registry: new RegistryClient() });
  assert.equal(r.action, 'created');
  assert.equal(r.image?.verified, true);
  const mr = await op.MergeRequests.show(OPS, r.mr!.iid);
  const description = String(mr.description);
  const section = description.slice(description.indexOf('### What is being deployed'));
  const listed = [...section.matchAll(/\/-\/commit\/([0-9a-f]{40})\)/g)].map((m) => m[1]);
  // the first two links are the range ends (ci-33's and ci-34's revisions), then the list
  assert.deepEqual(listed.slice(0, 2), [built33, between.at(-1)]);
  assert.deepEqual(listed.slice(2), between, 'exactly the commits between, oldest first');
  assert.match(section, /4 commits in \[`root\/helloworld`\]/);
  assert.match(section, /Say hello in Spanish/);
  assert.match(
    section,
    /Merge requests: \[`root\/helloworld!1`\]\(http:\/\/127\.0\.0\.1:\d+\/root\/helloworld\/-\/merge_requests\/1\)/,
  );
  assert.match(description, /\| Image verified \| yes/);
  const record = readRecordComment(description)!;
  assert.equal(record.registry?.changes?.commits.length, 4);
});

test('a tag missing from the registry is refused (exit 7) naming registry, repository and tag; nothing written', {
  skip,
}, async () => {
  const branchesBefore = (await op.Branches.all(OPS)).map((b) => b.name).sort();
  await assert.rejects(
    promote(request({ env: 'missing', tag: 'ci-99' }), { gitlab: bot(), registry: new RegistryClient() }),
    (e: Error & { exitCode: number }) => {
      assert.equal(e.exitCode, 7);
      assert.equal(
        e.message,
        `${image}:ci-99 does not exist: registry ${registry.host} has no tag 'ci-99' in repository root/helloworld`,
      );
      return true;
    },
  );
  assert.deepEqual((await op.Branches.all(OPS)).map((b) => b.name).sort(), branchesBefore);
});

test('--pin-digest writes repo:tag@digest with the digest the registry resolves', { skip }, async () => {
  const digest = (await new RegistryClient().resolve(
    { host: registry.host, repository: 'root/helloworld', base: registry.url },
    'ci-34',
  ))!.digest;
  const r = await promote(request({ env: 'pinned', pinDigest: true }), {
    gitlab: bot(),
    registry: new RegistryClient(),
  });
  assert.equal(r.action, 'created');
  const file = String(await op.RepositoryFiles.showRaw(OPS, 'registry/deployment.yml', r.branch));
  assert.match(file, new RegExp(`image: ${image.replace(/\./g, '\\.')}:ci-34@${digest}\\n`));
});

test('when the changes cannot be known, the description says why', { skip }, async () => {
  const r = await promote(request({ env: 'unlabelled', tag: 'ci-35-unlabelled', allowDowngrade: true }), {
    gitlab: bot(),
    registry: new RegistryClient(),
  });
  const mr = await op.MergeRequests.show(OPS, r.mr!.iid);
  assert.match(
    String(mr.description),
    /Which app changes this carries cannot be known: the new image has no org\.opencontainers\.image\.revision label\./,
  );
});

test('an unreachable registry: auto goes on and says so; --verify-image refuses (exit 7)', {
  skip,
}, async () => {
  const port = await freePort(); // nothing listens there
  const offline = `127.0.0.1:${port}/root/helloworld`;
  const base = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await op.Commits.create(OPS, 'main', 'An app whose registry is down', [
    {
      action: 'create',
      filePath: 'offline/deployment.yml',
      content: base.replace('registry.example.com/root/helloworld', offline),
    },
  ]);
  const req = request({ env: 'offline', image: offline, files: ['offline/deployment.yml'] });
  await assert.rejects(
    promote({ ...req, verifyImage: true }, { gitlab: bot(), registry: new RegistryClient() }),
    (e: Error & { exitCode: number }) =>
      e.exitCode === 7 && e.message.includes(`cannot reach registry 127.0.0.1:${port}`),
  );
  const r = await promote(req, { gitlab: bot(), registry: new RegistryClient() });
  assert.equal(r.action, 'created');
  const note = `cannot reach registry 127.0.0.1:${port}: connection refused`;
  assert.deepEqual(r.image, { verified: false, note });
  const mr = await op.MergeRequests.show(OPS, r.mr!.iid);
  assert.ok(String(mr.description).includes(`| Image verified | no: ${note} |`), String(mr.description));
});

test('CLI: promote exits 7 for a missing tag; retag adds tags with the same digest', { skip }, async () => {
  const env = { ...process.env, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' };
  const missing = await run(
    'node',
    [
      CLI,
      'promote',
      '--project',
      OPS,
      '--file',
      'registry/deployment.yml',
      '--image',
      image,
      '--tag',
      'ci-98',
      '--env',
      'cli',
    ],
    { env },
  ).catch((e: { code: number; stderr: string }) => e);
  assert.equal((missing as { code: number }).code, 7);
  assert.match(
    (missing as { stderr: string }).stderr,
    /ci-98 does not exist: registry 127\.0\.0\.1:\d+ has no tag 'ci-98'/,
  );
  const { stdout } = await run(
    'node',
    [CLI, 'retag', '--image', image, '--from', 'ci-34', '--to', 'prod,stable', '--json'],
    {
      env,
    },
  );
  const out = JSON.parse(stdout) as { digest: string; tags: string[] };
  const c = new RegistryClient();
  const name = { host: registry.host, repository: 'root/helloworld', base: registry.url };
  assert.equal((await c.resolve(name, 'ci-34'))?.digest, out.digest);
  assert.equal((await c.resolve(name, 'prod'))?.digest, out.digest);
  assert.equal((await c.resolve(name, 'stable'))?.digest, out.digest);
  const gone = await run('node', [CLI, 'retag', '--image', image, '--from', 'nope', '--to', 'x'], {
    env,
  }).catch((e: { code: number; stderr: string }) => e);
  assert.equal((gone as { code: number }).code, 7);
  assert.match((gone as { stderr: string }).stderr, /has no tag or digest 'nope'/);
});
