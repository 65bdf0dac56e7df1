// What the CI tests share: gitlab-ci-local run on an app checkout of root/helloworld whose
// origin is the sandbox, an ops repo that deploys from a local docker-registry, and the
// gitops-bot project (templates and components) published in the sandbox.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, run, sandboxFixture, tempDir } from '../helpers.js';
import { type Registry, startRegistry } from '../registry/docker-registry.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(ROOT, 'dist/src/cli.js');
export const GCL = join(ROOT, 'node_modules/.bin/gitlab-ci-local');
/** what a pipeline that builds and promotes needs on PATH besides git */
export const PIPELINE_TOOLS = ['buildah', 'docker-registry', 'rsync'];
/** the sandbox project that holds gitops-bot's templates and components */
export const GITOPS_BOT = 'root/gitops-bot';

export const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 'developer',
  GIT_AUTHOR_EMAIL: 'developer@example.com',
  GIT_COMMITTER_NAME: 'developer',
  GIT_COMMITTER_EMAIL: 'developer@example.com',
};

export interface Outcome {
  code: number;
  output: string;
}

/** gitlab-ci-local in `cwd`, jobs in the shell (the test machine has Buildah, not Docker). */
export function gcl(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      GCL,
      ['--shell-executor-no-image', '--force-shell-executor', ...args],
      { cwd, env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({
          code: err ? Number((err as { code?: number }).code ?? 1) : 0,
          output: `${stdout}${stderr}`,
        }),
    );
  });
}

export interface AppFixture {
  sb: Sandbox;
  registry: Registry;
  /** a clone of root/helloworld whose origin is the sandbox (as on a runner) */
  checkout: string;
}

/**
 * The sandbox, a docker-registry the ops repo deploys from, and a checkout of the app with a
 * Dockerfile that builds without network (FROM scratch: no base image can be pulled here).
 */
export async function appFixture(): Promise<AppFixture> {
  const [sb, registry] = await Promise.all([sandboxFixture(), startRegistry()]);
  const op = client(sb, 'operator');
  const dep = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await op.Commits.create(OPS, 'main', 'Use the local registry', [
    {
      action: 'update',
      filePath: 'deployment.yml',
      content: dep.replace('registry.example.com', registry.host),
    },
  ]);
  const checkout = join(await tempDir(), 'helloworld');
  await run(
    'git',
    ['clone', '-q', `http://oauth2:developer-token@${host(sb)}/root/helloworld.git`, checkout],
    {
      env: gitEnv,
    },
  );
  await run('git', ['remote', 'set-url', 'origin', `${sb.url}/root/helloworld.git`], { cwd: checkout });
  await writeFile(
    join(checkout, 'Dockerfile'),
    'FROM scratch\nCOPY index.html /usr/share/nginx/html/index.html\n',
  );
  return { sb, registry, checkout };
}

/** host:port of the sandbox, as in `$CI_SERVER_FQDN` of a pipeline whose origin it is */
export const host = (sb: Sandbox): string => sb.url.replace('http://', '');

/**
 * Commits `ci` as the app's .gitlab-ci.yml and runs the pipeline. With `push`, the commit is
 * pushed first: as on GitLab, the pipeline's commit is in the project (the bot compares
 * revisions there).
 */
export async function pipeline(
  checkout: string,
  ci: string,
  variables: Record<string, string> = {},
  opts: { push?: boolean; env?: NodeJS.ProcessEnv; args?: string[] } = {},
): Promise<Outcome> {
  await writeFile(join(checkout, '.gitlab-ci.yml'), ci);
  await run('git', ['add', '-A'], { cwd: checkout, env: gitEnv });
  await run('git', ['commit', '-qm', 'ci', '--allow-empty'], { cwd: checkout, env: gitEnv });
  if (opts.push) {
    const auth = `Authorization: Basic ${Buffer.from('reviewer:reviewer-token').toString('base64')}`;
    await run('git', ['-c', `http.extraHeader=${auth}`, 'push', '-q', 'origin', 'HEAD:main'], {
      cwd: checkout,
      env: gitEnv,
    });
  }
  const args = [
    ...(opts.args ?? []),
    ...Object.entries(variables).flatMap(([k, v]) => ['--variable', `${k}=${v}`]),
  ];
  const first = await gcl(args, checkout, opts.env);
  // Once only, and before any job ran: the fetch that lost the race left its component out
  // of the cache, so the second run fetches just that one.
  if (!componentFetchRace(first.output)) return first;
  process.stderr.write(
    '# gitlab-ci-local lost its component fetch race (see componentFetchRace): ran again\n',
  );
  return gcl(args, checkout, opts.env);
}

/**
 * gitlab-ci-local 4.73.0 fetches two components of one project at one ref at the same time,
 * each ending in `cp -r <clone>/templates <cache>`; when both create <cache>/templates at
 * once, one fails with "File exists" and so does the pipeline, before any job runs.
 */
export function componentFetchRace(output: string): boolean {
  return /Component include could not be fetched[\s\S]*cp: cannot create directory '[^']*\/templates': File exists/.test(
    output,
  );
}

/** Files of this working tree, as Commits.create actions at the same paths. */
export async function treeFiles(
  paths: string[],
): Promise<Array<{ action: 'create'; filePath: string; content: string }>> {
  return Promise.all(
    paths.map(async (filePath) => ({
      action: 'create' as const,
      filePath,
      content: await readFile(join(ROOT, filePath), 'utf8'),
    })),
  );
}

/** root/gitops-bot, public as a team's shared CI project is, with these files of this tree on main. */
export async function publishGitopsBot(sb: Sandbox, paths: string[]): Promise<void> {
  const root = client(sb, 'root');
  await root.Projects.create({
    name: 'gitops-bot',
    visibility: 'public',
    // the CI/CD Catalog lists a project only with a description
    description: 'GitOps image-promotion merge requests for GitLab: build, promote and gate components',
  } as never);
  await root.Commits.create(GITOPS_BOT, 'main', 'gitops-bot CI', await treeFiles(paths));
}

/** The bot's open MRs in the ops repo (label gitops-bot), as operator lists them. */
export function openBotMrs(sb: Sandbox) {
  return client(sb, 'operator').MergeRequests.all({ projectId: OPS, state: 'opened', labels: 'gitops-bot' });
}

/**
 * A README example's pipeline as the reader's app runs it: pushed first, the bot's token,
 * pipeline #`iid`, the image in the test `registry`, gitops-bot on PATH as in the bot image.
 */
export async function readmePipeline(
  checkout: string,
  registry: Registry,
  ci: string,
  iid: number,
): Promise<Outcome> {
  const variables = {
    GITOPS_BOT_TOKEN: 'gitops-bot-token',
    CI_PIPELINE_IID: String(iid),
    CI_REGISTRY_IMAGE: `${registry.host}/root/helloworld`,
    CI_REGISTRY: '',
  };
  return pipeline(checkout, ci, variables, { push: true, env: await botOnPath() });
}

/** A wrapper dir with `gitops-bot` on PATH, as in the bot image the promote job runs in. */
export async function botOnPath(): Promise<NodeJS.ProcessEnv> {
  const bin = await tempDir();
  await writeFile(join(bin, 'gitops-bot'), `#!/bin/sh\nexec node ${CLI} "$@"\n`, { mode: 0o755 });
  return { ...process.env, PATH: `${bin}:${process.env.PATH}` };
}
