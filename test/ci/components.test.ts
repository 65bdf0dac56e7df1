// Issue 19: gitops-bot as a CI/CD component project. gitlab-ci-local runs an app pipeline
// that includes build and promote by `component:` from root/gitops-bot in the sandbox, at a
// release tag, as GitLab's CI/CD Catalog users do. gitlab-ci-local fetches a component as
// GitLab reads it: `git clone --branch <tag> --depth=1 --filter=tree:0` of the project over
// HTTP (the app's origin), `git ls-remote --tags` for `~latest` and partial versions, then
// templates/<name>.yml or templates/<name>/template.yml. The sandbox's git-http serves all
// of it (partial clone and shallow fetches are allowed, as on Gitaly), so it needs no change.
import assert from 'node:assert/strict';
import { cp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, run, tempDir } from '../helpers.js';
import { MANIFEST_ACCEPT, type Registry } from '../registry/docker-registry.js';
import { readmeExample } from '../ship/runner.js';
import { skipUnless } from '../tools.js';
import {
  appFixture,
  CLI,
  GITOPS_BOT,
  gcl,
  gitEnv,
  host,
  openBotMrs,
  PIPELINE_TOOLS,
  publishGitopsBot,
  ROOT,
  readmePipeline,
  pipeline as runPipeline,
} from './helpers.js';

const skip = skipUnless(...PIPELINE_TOOLS);
const COMPONENTS = ['templates/build.yml', 'templates/promote.yml', 'templates/gate.yml'];
let sb: Sandbox;
let registry: Registry;
let checkout: string;
/** a clone of root/gitops-bot, to tag releases in */
let components: string;

const pipeline = (ci: string, variables?: Record<string, string>, opts?: Parameters<typeof runPipeline>[3]) =>
  runPipeline(checkout, ci, variables, opts);

/** Tags main of root/gitops-bot and pushes the tag, as a maintainer releasing a version does. */
async function release(tag: string): Promise<void> {
  const git = (args: string[]) => run('git', args, { cwd: components, env: gitEnv });
  await git(['pull', '-q', '--ff-only', 'origin', 'main']);
  await git(['tag', tag]);
  await git(['push', '-q', 'origin', `refs/tags/${tag}`]);
}

/** The app's .gitlab-ci.yml: build and promote by `component:` at `ref`, with these inputs. */
const include = (ref: string, build: Record<string, string>, promote: Record<string, string>) => {
  const inputs = (values: Record<string, string>) =>
    Object.keys(values).length === 0
      ? ''
      : `    inputs:\n${Object.entries(values)
          .map(([k, v]) => `      ${k}: ${v}\n`)
          .join('')}`;
  return `stages: [build, deploy]
include:
  - component: $CI_SERVER_FQDN/${GITOPS_BOT}/build@${ref}
${inputs(build)}  - component: $CI_SERVER_FQDN/${GITOPS_BOT}/promote@${ref}
${inputs(promote)}`;
};

interface ListedJob {
  name: string;
  stage: string;
  needs: Array<{ job: string }> | null;
}

/** The pipeline's jobs as gitlab-ci-local builds them (`--list-json`: name, stage, needs). */
async function jobGraph(ci: string, args: string[] = []): Promise<{ jobs: ListedJob[]; output: string }> {
  const { code, output } = await pipeline(ci, {}, { args: ['--list-json', ...args] });
  assert.equal(code, 0, output);
  const json = output.slice(output.indexOf('['), output.lastIndexOf(']') + 1);
  return { jobs: JSON.parse(json) as ListedJob[], output };
}

before(async () => {
  if (skip) return;
  ({ sb, registry, checkout } = await appFixture());
  // What GitLab's catalog needs of a component project: a description, README.md and the
  // components in templates/ at the released tag.
  await publishGitopsBot(sb, ['README.md', ...COMPONENTS]);
  components = join(await tempDir(), 'gitops-bot');
  await run('git', ['clone', '-q', `http://root:root-token@${host(sb)}/${GITOPS_BOT}.git`, components], {
    env: gitEnv,
  });
  await release('0.2.0');
});
after(async () => {
  await sb?.close();
  await registry?.close();
});

describe('CI/CD components from the sandbox', { skip }, () => {
  test('build@0.2.0 and promote@0.2.0: the job graph and the inputs as given', async () => {
    const ci = include(
      '0.2.0',
      { job_name: 'build-site', stage: 'build', image_format: 'docker' },
      { ops_project: OPS, build_job: 'build-site', job_name: 'deploy-site' },
    );
    const { jobs, output } = await jobGraph(ci);
    assert.match(output, /downloaded root\/gitops-bot 0\.2\.0 templates\/build/);
    assert.deepEqual(
      jobs.map((j) => [j.name, j.stage, (j.needs ?? []).map((n) => n.job)]),
      [
        ['build-site', 'build', []],
        ['deploy-site', 'deploy', ['build-site']],
      ],
    );
    const { code, output: preview } = await pipeline(ci, {}, { args: ['--preview'] });
    assert.equal(code, 0, preview);
    const doc = parseAllDocuments(preview.slice(preview.indexOf('---')))
      .map((d) => d.toJS())
      .find((d) => d?.['build-site']);
    assert.ok(doc, preview);
    assert.equal(doc['build-site'].variables.BUILDAH_FORMAT, 'docker');
    assert.equal(doc['deploy-site'].variables.GITOPS_OPS_PROJECT, OPS);
  });

  test('the app pipeline builds and pushes with build@0.2.0 and opens the MR with promote@0.2.0', async () => {
    const { code, output } = await pipeline(
      include(
        '0.2.0',
        {
          image: `${registry.host}/root/helloworld`,
          extra_tags: 'latest',
          image_format: 'docker',
          tls_verify: 'false',
          registry: "''",
        },
        { ops_project: OPS, assignees: 'operator', target_branch: 'main', command: `node ${CLI}` },
      ),
      { GITOPS_BOT_TOKEN: 'gitops-bot-token', CI_PIPELINE_IID: '41' },
      { push: true },
    );
    assert.equal(code, 0, output);
    const digest = /build-image > IMAGE_DIGEST=(sha256:[0-9a-f]{64})/.exec(output)?.[1];
    assert.ok(digest, output);
    for (const tag of ['ci-41', 'latest']) {
      const res = await fetch(`${registry.url}/v2/root/helloworld/manifests/${tag}`, {
        headers: { Accept: MANIFEST_ACCEPT },
      });
      assert.equal(res.status, 200, tag);
      assert.equal(res.headers.get('docker-content-digest'), digest, `${tag} has the dotenv digest`);
      // the image_format input reached Buildah
      assert.equal(
        res.headers.get('content-type'),
        'application/vnd.docker.distribution.manifest.v2+json',
        tag,
      );
    }
    const mrs = await openBotMrs(sb);
    assert.deepEqual(
      mrs.map((m) => m.title),
      ['Deploy helloworld ci-41 to main'],
    );
    const file = String(
      await client(sb, 'operator').RepositoryFiles.showRaw(OPS, 'deployment.yml', mrs[0].source_branch),
    );
    assert.match(file, new RegExp(`image: ${registry.host}/root/helloworld:ci-41\\n`));
  });

  test("inputs outside the component's spec are refused with GitLab's messages", async () => {
    const cases: Array<[Record<string, string>, Record<string, string>, RegExp]> = [
      [{}, { file: 'deployment.yml' }, /`ops_project` input: required value has not been provided/],
      [
        { image_format: 'podman' },
        { ops_project: OPS },
        /`image_format` input: `podman` cannot be used because it is not in the list of allowed options/,
      ],
      [
        {},
        { ops_project: 'not a project' },
        /`ops_project` input: `not a project` does not match required regex/,
      ],
      [{ tls_verify: 'maybe' }, { ops_project: OPS }, /`tls_verify` input: provided value is not a boolean/],
      [{ job_name: '"a b"' }, { ops_project: OPS }, /`job_name` input: `a b` does not match required regex/],
    ];
    for (const [build, promote, message] of cases) {
      const { code, output } = await pipeline(include('0.2.0', build, promote), {}, { args: ['--list'] });
      assert.notEqual(code, 0, `${JSON.stringify([build, promote])} was accepted`);
      assert.match(output, message);
    }
  });

  test('@~latest and @0 take the newest release, @0.2 its newest patch, a missing one fails', async () => {
    await release('0.3.0');
    await release('0.2.1');
    for (const [ref, resolved] of [
      ['~latest', '0.3.0'],
      ['0', '0.3.0'],
      ['0.2', '0.2.1'],
    ]) {
      // --fetch-includes: fetch again, not from the cache of an earlier resolution
      const { output } = await jobGraph(include(ref, {}, { ops_project: OPS }), ['--fetch-includes']);
      assert.match(
        output,
        new RegExp(`downloaded root/gitops-bot ${resolved.replaceAll('.', '\\.')} templates/build`),
        ref,
      );
    }
    const missing = await pipeline(include('9.9.9', {}, { ops_project: OPS }), {}, { args: ['--list'] });
    assert.notEqual(missing.code, 0);
    assert.match(
      missing.output,
      /Component include could not be fetched \{ project: root\/gitops-bot, ref: 9\.9\.9/,
    );
  });

  test('gate@0.2.0 adds its job to merge request pipelines only', async () => {
    const ci = `include:\n  - component: $CI_SERVER_FQDN/${GITOPS_BOT}/gate@0.2.0\n    inputs:\n      stage: verify\nstages: [verify]\n`;
    const mr = await pipeline(ci, { CI_PIPELINE_SOURCE: 'merge_request_event' }, { args: ['--list'] });
    assert.equal(mr.code, 0, mr.output);
    assert.match(mr.output, /^gitops-bot-gate\s+verify\s/m);
    const push = await pipeline(ci, { CI_PIPELINE_SOURCE: 'push' }, { args: ['--list'] });
    assert.equal(push.code, 0, push.output);
    assert.doesNotMatch(push.output, /^gitops-bot-gate\s/m);
  });

  test('the README\'s "1. GitLab CI" component example runs as written (its group aside)', async () => {
    const example = await readmeExample('gitlab-ci');
    // The reader's copy is gitops/gitops-bot; here it is root/gitops-bot. Same version.
    const ci = example.replaceAll('/gitops/gitops-bot/', `/${GITOPS_BOT}/`);
    assert.notEqual(ci, example);
    assert.match(ci, /component: \$CI_SERVER_FQDN\/root\/gitops-bot\/build@0\.2\.0/);
    const { code, output } = await readmePipeline(checkout, registry, ci, 42);
    assert.equal(code, 0, output);
    const mrs = await openBotMrs(sb);
    assert.deepEqual(
      mrs.map((m) => m.title),
      ['Deploy helloworld ci-42 to main'],
    );
  });
});

/** A checkout of this project (the files its pipeline reads), origin gitops/gitops-bot. */
async function ownCheckout(files: string[]): Promise<string> {
  const dir = await tempDir();
  await run('git', ['init', '-q', '-b', 'main', dir]);
  for (const f of files) await cp(join(ROOT, f), join(dir, f), { recursive: true });
  await run('git', ['remote', 'add', 'origin', 'https://gitlab.example.com/gitops/gitops-bot.git'], {
    cwd: dir,
  });
  await run('git', ['add', '-A'], { cwd: dir });
  await run('git', ['commit', '-qm', 'ci'], { cwd: dir, env: gitEnv });
  return dir;
}

describe("the project's own pipeline", () => {
  const files = ['.gitlab-ci.yml', 'ci-templates', 'templates', 'scripts', 'package.json', 'README.md'];

  test('includes its build component at its own commit, as GitLab recommends for testing a component', async () => {
    const ci = await readFile(join(ROOT, '.gitlab-ci.yml'), 'utf8');
    assert.match(ci, /- component: \$CI_SERVER_FQDN\/\$CI_PROJECT_PATH\/build@\$CI_COMMIT_SHA\n/);
    const dir = await ownCheckout(files);
    const { code, output } = await gcl(['--list'], dir);
    assert.equal(code, 0, output);
    for (const job of ['lint', 'typecheck', 'test', 'components', 'bundle', 'build-bot-image'])
      assert.match(output, new RegExp(`^${job}\\s`, 'm'));
    assert.doesNotMatch(output, /^create-release\s/m, 'no release without a tag');
    // The include reads templates/ of the pipeline's commit: without it there is no pipeline.
    await rm(join(dir, 'templates'), { recursive: true });
    await run('git', ['commit', '-qam', 'no templates'], { cwd: dir, env: gitEnv });
    const broken = await gcl(['--list'], dir);
    assert.notEqual(broken.code, 0);
    assert.match(
      broken.output,
      /One of the files \[templates\/build\.yml,templates\/build\/template\.yml\] must exist/,
    );
  });

  test('on an X.Y.Z tag, create-release makes the release with the release: keyword', async () => {
    const dir = await ownCheckout(files);
    const tagged = await gcl(['--list', '--variable', 'CI_COMMIT_TAG=0.2.0'], dir);
    assert.equal(tagged.code, 0, tagged.output);
    assert.match(tagged.output, /^create-release\s+publish\s/m);
    const vtag = await gcl(['--list', '--variable', 'CI_COMMIT_TAG=v0.2.0'], dir);
    assert.doesNotMatch(
      vtag.output,
      /^create-release\s/m,
      'a vX.Y.Z tag is the npm release, not the catalog one',
    );
    const job = parse(await readFile(join(ROOT, '.gitlab-ci.yml'), 'utf8'))['create-release'];
    assert.equal(job.release.tag_name, '$CI_COMMIT_TAG');
    assert.ok(job.release.description);
  });

  test('templates/ and the README inputs tables are in step with ci-templates/', async () => {
    const { stdout } = await run('node', [join(ROOT, 'scripts/components.mjs'), '--check'], { cwd: ROOT });
    assert.match(stdout, /components: build, gate, promote in step/);
  });

  test('a template edited without regenerating templates/ fails the check, naming the file', async () => {
    const dir = await ownCheckout(files);
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules')); // the script's `yaml`
    const gate = join(dir, 'ci-templates/gate.yml');
    await writeFile(gate, (await readFile(gate, 'utf8')).replace('default: test', 'default: verify'));
    const res = await run('node', [join(dir, 'scripts/components.mjs'), '--check'], { cwd: dir }).then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    assert.ok(res, 'the check passed');
    assert.equal(res.code, 1);
    assert.match(res.stderr, /components: templates\/gate\.yml: differs from ci-templates\/gate\.yml/);
    assert.match(res.stderr, /components: README\.md: a component inputs table differs from its spec:inputs/);
  });
});
