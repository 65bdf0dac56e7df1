// Issue 5: the CI templates run for real. gitlab-ci-local runs an app pipeline that
// includes build.yml and promote.yml from a templates project in the sandbox; Buildah
// builds and pushes to Debian's docker-registry; promote opens the MR in the ops repo.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, run, tempDir } from '../helpers.js';
import { MANIFEST_ACCEPT, type Registry } from '../registry/docker-registry.js';
import { readmeExample } from '../ship/runner.js';
import { skipUnless } from '../tools.js';
import {
  appFixture,
  CLI,
  gcl,
  gitEnv,
  openBotMrs,
  PIPELINE_TOOLS,
  publishGitopsBot,
  readmePipeline,
  pipeline as runPipeline,
  treeFiles,
} from './helpers.js';

const skip = skipUnless(...PIPELINE_TOOLS);
let sb: Sandbox;
let registry: Registry;
let checkout: string;
/** the commit ci-34 was built from */
let built34 = '';

const pipeline = (ci: string, variables?: Record<string, string>, opts?: Parameters<typeof runPipeline>[3]) =>
  runPipeline(checkout, ci, variables, opts);

const include = (buildInputs: string, promoteInputs: string) => `include:
  - project: root/gitops-bot
    ref: main
    file: ci-templates/build.yml
    inputs:
${buildInputs}
  - project: root/gitops-bot
    ref: main
    file: ci-templates/promote.yml
    inputs:
${promoteInputs}
stages: [build, deploy]
`;

before(async () => {
  if (skip) return;
  ({ sb, registry, checkout } = await appFixture());
  // The templates live in a public project, as a team's shared CI templates do.
  await publishGitopsBot(sb, ['ci-templates/build.yml', 'ci-templates/promote.yml']);
});
after(async () => {
  await sb?.close();
  await registry?.close();
});

describe('CI templates', { skip }, () => {
  test('build.yml builds and pushes every tag with one digest; promote.yml opens the MR', async () => {
    const { code, output } = await pipeline(
      include(
        `      image: ${registry.host}/root/helloworld\n      extra_tags: $CI_COMMIT_SHORT_SHA latest\n      tls_verify: false\n      registry: ''`,
        `      ops_project: ${OPS}\n      assignees: operator\n      target_branch: main\n      command: node ${CLI}`,
      ),
      // gitlab-ci-local counts pipelines from 0; the story's pipeline is #34 (ci-33 runs now).
      { GITOPS_BOT_TOKEN: 'gitops-bot-token', CI_PIPELINE_IID: '34' },
      { push: true },
    );
    assert.equal(code, 0, output);
    const env = Object.fromEntries(
      [...output.matchAll(/build-image > (IMAGE\w*|SOURCE_SHA)=(\S*)/g)].map((m) => [m[1], m[2]]),
    );
    assert.equal(env.IMAGE, `${registry.host}/root/helloworld`);
    assert.equal(env.IMAGE_TAG, 'ci-34');
    assert.match(env.IMAGE_DIGEST, /^sha256:[0-9a-f]{64}$/);
    const sha = (await run('git', ['rev-parse', 'HEAD'], { cwd: checkout })).stdout.trim();
    assert.equal(env.SOURCE_SHA, sha);
    built34 = sha;
    for (const tag of [env.IMAGE_TAG, sha.slice(0, 8), 'latest']) {
      const res = await fetch(`${registry.url}/v2/root/helloworld/manifests/${tag}`, {
        headers: { Accept: MANIFEST_ACCEPT },
      });
      assert.equal(res.status, 200, tag);
      assert.equal(
        res.headers.get('docker-content-digest'),
        env.IMAGE_DIGEST,
        `${tag} has the dotenv digest`,
      );
      if (tag === env.IMAGE_TAG) {
        const manifest = (await res.json()) as { config: { digest: string } };
        const config = (await (
          await fetch(`${registry.url}/v2/root/helloworld/blobs/${manifest.config.digest}`)
        ).json()) as {
          config: { Labels: Record<string, string> };
        };
        assert.equal(config.config.Labels['org.opencontainers.image.revision'], sha);
        assert.ok(config.config.Labels['org.opencontainers.image.created']);
        assert.ok('org.opencontainers.image.source' in config.config.Labels);
      }
    }
    const mrs = await openBotMrs(sb);
    assert.equal(mrs.length, 1);
    assert.equal(mrs[0].title, `Deploy helloworld ${env.IMAGE_TAG} to main`);
    assert.deepEqual(
      (mrs[0].assignees as Array<{ username: string }>).map((a) => a.username),
      ['operator'],
    );
    const file = String(
      await client(sb, 'operator').RepositoryFiles.showRaw(OPS, 'deployment.yml', mrs[0].source_branch),
    );
    assert.match(file, new RegExp(`image: ${registry.host}/root/helloworld:${env.IMAGE_TAG}\\n`));
    assert.match(
      String(mrs[0].description),
      new RegExp(`\\| Source \\| .*root/helloworld.* @ .*${sha.slice(0, 8)}`),
    );
  });

  test('without GITOPS_BOT_TOKEN the promote job fails at once, saying how to create one', async () => {
    const { code, output } = await pipeline(
      include(
        `      image: ${registry.host}/root/helloworld\n      tls_verify: false\n      registry: ''`,
        `      ops_project: ${OPS}\n      command: node ${CLI}`,
      ),
    );
    assert.notEqual(code, 0);
    assert.match(
      output,
      /GITOPS_BOT_TOKEN is not set, and CI_JOB_TOKEN cannot write to root\/helloworld-ops/,
    );
    assert.match(
      output,
      /create a project access token in root\/helloworld-ops \(Settings > Access tokens: role Developer, scope api\)/,
    );
  });

  test("a missing required input and bad values are rejected with GitLab's messages", async () => {
    const missing = await pipeline(include(`      tls_verify: false`, `      file: deployment.yml`));
    assert.notEqual(missing.code, 0);
    assert.match(missing.output, /`ops_project` input: required value has not been provided/);
    const regex = await pipeline(include(`      tls_verify: false`, `      ops_project: not a project`));
    assert.notEqual(regex.code, 0);
    assert.match(regex.output, /`ops_project` input: `not a project` does not match required regex/);
    const bool = await pipeline(include(`      tls_verify: maybe`, `      ops_project: ${OPS}`));
    assert.notEqual(bool.code, 0);
    assert.match(bool.output, /`tls_verify` input: provided value is not a boolean/);
  });

  test('a bad tag fails the build job with the rule it breaks', async () => {
    const { code, output } = await pipeline(
      include(
        `      image: ${registry.host}/root/helloworld\n      tag: .bad\n      tls_verify: false\n      registry: ''`,
        `      ops_project: ${OPS}\n      command: node ${CLI}`,
      ),
      { GITOPS_BOT_TOKEN: 'gitops-bot-token' },
    );
    assert.notEqual(code, 0);
    assert.match(
      output,
      /gitops-bot build: tag '\.bad' is invalid: 1 to 128 of \[A-Za-z0-9_.-\], not starting with '\.' or '-'/,
    );
  });

  test('the next build: its MR lists exactly the app commits between the deployed image and the new one', async () => {
    assert.ok(built34, 'the first pipeline ran');
    const op = client(sb, 'operator');
    const [first] = await openBotMrs(sb);
    await op.MergeRequests.merge(OPS, first.iid); // ci-34 is deployed now
    const { code, output } = await pipeline(
      include(
        `      image: ${registry.host}/root/helloworld\n      tls_verify: false\n      registry: ''`,
        `      ops_project: ${OPS}\n      assignees: operator\n      target_branch: main\n      command: node ${CLI}`,
      ),
      { GITOPS_BOT_TOKEN: 'gitops-bot-token', CI_PIPELINE_IID: '35' },
      { push: true },
    );
    assert.equal(code, 0, output);
    assert.match(output, /is sha256:[0-9a-f]{64}/, 'promote verified ci-35 in the registry');
    const expected = (
      await run('git', ['rev-list', '--reverse', `${built34}..HEAD`], { cwd: checkout })
    ).stdout
      .trim()
      .split('\n');
    assert.ok(expected.length >= 4, 'the tests in between committed too');
    const [mr] = await openBotMrs(sb);
    assert.equal(mr.title, 'Deploy helloworld ci-35 to main');
    const description = String(mr.description);
    const section = description.slice(description.indexOf('### What is being deployed'));
    const listed = [...section.matchAll(/\/-\/commit\/([0-9a-f]{40})\)/g)].map((m) => m[1]);
    assert.deepEqual(listed.slice(0, 2), [built34, expected.at(-1)], 'the range: ci-34 and ci-35 revisions');
    assert.deepEqual(listed.slice(2), expected, 'exactly the commits between, oldest first');
    assert.match(section, new RegExp(`^${expected.length} commits in \\[\`root/helloworld\`\\]`, 'm'));
  });

  test('the README\'s "1. GitLab CI" `project:` example runs as written (templates project and ref aside)', async () => {
    const example = await readmeExample('gitlab-ci-project');
    // The reader keeps the templates in gitops/gitops-bot at a release tag; here they are
    // in root/gitops-bot on main. Nothing else changes.
    const ci = example
      .replaceAll('project: gitops/gitops-bot', 'project: root/gitops-bot')
      .replaceAll('ref: v0.1.0', 'ref: main');
    assert.notEqual(ci, example);
    const { code, output } = await readmePipeline(checkout, registry, ci, 36);
    assert.equal(code, 0, output);
    const mrs = await openBotMrs(sb);
    assert.deepEqual(
      mrs.map((m) => m.title),
      ['Deploy helloworld ci-36 to main'],
    );
  });
});

test('gate.yml fails the MR pipeline until the rules pass (exit 6), then passes', { skip }, async () => {
  const op = client(sb, 'operator');
  const r = await import('../../src/promote/promote.js');
  const { GitLab } = await import('../../src/gitlab/client.js');
  const res = await r.promote(
    {
      project: OPS,
      files: ['deployment.yml'],
      image: `${registry.host}/root/helloworld`,
      tag: 'ci-90',
      targetBranch: 'main',
      env: 'gate',
    },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  const iid = res.mr!.iid;
  const dir = await tempDir();
  const ops = join(dir, 'ops');
  await run(
    'git',
    ['clone', '-q', `http://oauth2:operator-token@${sb.url.replace('http://', '')}/${OPS}.git`, ops],
    { env: gitEnv },
  );
  await run('git', ['remote', 'set-url', 'origin', `${sb.url}/${OPS}.git`], { cwd: ops });
  await writeFile(
    join(ops, '.gitlab-ci.yml'),
    `include:\n  - project: root/gitops-bot\n    ref: main\n    file: ci-templates/gate.yml\n    inputs:\n      command: node ${CLI}\n`,
  );
  await run('git', ['add', '-A'], { cwd: ops, env: gitEnv });
  await run('git', ['commit', '-qm', 'gate'], { cwd: ops, env: gitEnv });
  await client(sb, 'root').Commits.create(
    'root/gitops-bot',
    'main',
    'gate template',
    await treeFiles(['ci-templates/gate.yml']),
  );
  const vars = [
    'CI_PIPELINE_SOURCE=merge_request_event',
    `CI_MERGE_REQUEST_IID=${iid}`,
    'GITOPS_BOT_TOKEN=gitops-bot-token',
  ];
  const args = vars.flatMap((v) => ['--variable', v]);
  const before = await gcl(args, ops);
  assert.notEqual(before.code, 0);
  assert.match(before.output, /not passed: 0\/1 approvals from Maintainers/);
  await op.MergeRequestApprovals.approve(OPS, iid);
  const afterApproval = await gcl(args, ops);
  assert.equal(afterApproval.code, 0, afterApproval.output);
  assert.match(afterApproval.output, /pass: 1\/1 approvals from Maintainers/);
});
