// The GitHub Action's entry (action/action.yml runs its bundle, action/dist/index.mjs): an
// app repository on GitHub promotes its image through a GitLab ops repository. The runner
// passes inputs as INPUT_<NAME> variables (upper case, spaces as underscores, dashes kept)
// and reads outputs from the file named by GITHUB_OUTPUT; `::error::` lines annotate the run.
import '../startup.js';
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { GitLab } from '../gitlab/client.js';
import { connection } from '../gitlab/connection.js';
import { PromoteError, PromoteExit, type PromoteRequest, promote } from '../promote/promote.js';
import { credentialsFromEnv, RegistryClient } from '../registry/client.js';

const env = process.env;

function input(name: string): string {
  return (env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? '').trim();
}

function list(name: string): string[] {
  return input(name)
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Appends an output for later steps; a random delimiter keeps any value on its own. */
function output(name: string, value: string): void {
  const file = env.GITHUB_OUTPUT;
  if (!file) {
    process.stdout.write(`${name}=${value}\n`);
    return;
  }
  const delimiter = `ghadelimiter_${randomUUID()}`;
  appendFileSync(file, `${name}<<${delimiter}\n${value}\n${delimiter}\n`);
}

/** A workflow-command annotation; its message escaped as the runner expects. */
function error(message: string): void {
  const escaped = message.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  process.stdout.write(`::error title=gitops-bot::${escaped}\n`);
}

async function main(): Promise<number> {
  const token = input('token');
  if (!token) {
    throw Object.assign(
      new Error(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, shown to the user
        'the token input is empty: pass a GitLab token from a secret (token: ${{ secrets.GITOPS_BOT_TOKEN }})',
      ),
      { exitCode: 2 },
    );
  }
  const conn = connection(input('gitlab-url') || undefined, { ...env, GITOPS_BOT_TOKEN: token });
  const req: PromoteRequest = {
    project: input('ops-project'),
    files: list('file'),
    image: input('image'),
    tag: input('tag') || undefined,
    env: input('env') || undefined,
    targetBranch: input('target-branch') || undefined,
    assignees: list('assignees'),
    reviewers: list('reviewers'),
    labels: list('labels'),
    source: {
      // GitHub's facts about the build, shown in the merge request
      project: env.GITHUB_REPOSITORY,
      sha: env.GITHUB_SHA,
      projectUrl: env.GITHUB_REPOSITORY
        ? `${env.GITHUB_SERVER_URL ?? 'https://github.com'}/${env.GITHUB_REPOSITORY}`
        : undefined,
      pipelineUrl:
        env.GITHUB_RUN_ID && env.GITHUB_REPOSITORY
          ? `${env.GITHUB_SERVER_URL ?? 'https://github.com'}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}`
          : undefined,
      pipelineIid: env.GITHUB_RUN_NUMBER,
    },
  };
  const result = await promote(req, {
    gitlab: new GitLab({ url: conn.url, token: conn.token }),
    registry: new RegistryClient({ credentials: credentialsFromEnv(env) }),
    progress: (line) => process.stdout.write(`gitops-bot: ${line}\n`),
  });
  output('action', result.action);
  output('mr-url', result.mr?.url ?? '');
  output('mr-iid', result.mr ? String(result.mr.iid) : '');
  if (result.action === 'refused') {
    error(result.reason);
    return PromoteExit.REFUSED;
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (e) {
  const err = e as Error & { exitCode?: number };
  error(err.message);
  process.exitCode = e instanceof PromoteError || typeof err.exitCode === 'number' ? (err.exitCode ?? 1) : 1;
}
