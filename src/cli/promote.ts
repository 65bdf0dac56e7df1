// `gitops-bot promote`: the command an app pipeline runs after pushing an image.
// Heavy modules (gitbeaker, yaml, pino) load inside the action: `--help` and `--version`
// stay fast.
import type { Command } from 'commander';
import { connection } from '../gitlab/connection.js';
import type { PromoteRequest } from '../promote/promote.js';
import { CliError } from './errors.js';
import { list, progressTo, reportProposal } from './proposal-outcome.js';

/** commander's options: the request's own fields, plus the flags spelled in the singular */
type PromoteCliOptions = Pick<
  PromoteRequest,
  | 'project'
  | 'image'
  | 'tag'
  | 'digest'
  | 'env'
  | 'app'
  | 'container'
  | 'targetBranch'
  | 'allowDowngrade'
  | 'allowRejected'
> & {
  file?: string[];
  assignee?: string[];
  reviewer?: string[];
  label?: string[];
  sourceProject?: string;
  sourceSha?: string;
  verifyImage?: boolean;
  pinDigest?: boolean;
  dryRun?: boolean;
  json?: boolean;
  gitlabUrl?: string;
  timeout: string;
};

export function registerPromote(program: Command): void {
  program
    .command('promote')
    .description('open or update the merge request that deploys an image tag through the ops repository')
    .requiredOption('--project <path>', 'the ops project, e.g. root/helloworld-ops')
    .option(
      '--file <path...>',
      'manifest(s) in the ops project to edit (repeat, or comma-separate); default: the files the policy maps --env to',
      list,
    )
    .requiredOption(
      '--image <repo>',
      'image repository without tag, e.g. registry.example.com/root/helloworld',
    )
    .option('--tag <tag>', 'the new tag, e.g. ci-34')
    .option('--digest <digest>', 'pin the digest too (repo:tag@sha256:...)')
    .option(
      '--env <name>',
      "environment name (default: the target branch); an environment of the ops project's .gitops-bot.yml maps it to its files and branch",
    )
    .option('--app <name>', 'app name (default: the last path segment of --image)')
    .option('--container <name>', 'only the container with this name')
    .option('--assignee <user...>', 'assign these users (the operator), by username', list)
    .option('--reviewer <user...>', 'request review from these users, by username', list)
    .option('--label <name...>', 'labels to add besides gitops-bot', list)
    .option('--target-branch <branch>', "branch the agent deploys (default: the project's default branch)")
    .option('--source-project <path>', 'app project the image was built from (default: $CI_PROJECT_PATH)')
    .option('--source-sha <sha>', 'commit the image was built from (default: $CI_COMMIT_SHA)')
    .option('--allow-downgrade', 'allow a tag older than the one deployed or proposed')
    .option(
      '--allow-rejected',
      'allow a tag that was rolled back from this environment (or replace an open rollback)',
    )
    .option(
      '--verify-image',
      'refuse unless the registry confirms the tag (default: when the registry can be reached)',
    )
    .option('--no-verify-image', 'do not ask the registry')
    .option('--pin-digest', 'write repo:tag@sha256:... with the digest the registry resolves the tag to')
    .option('--dry-run', 'read and decide, write nothing (action: would-create or would-update)')
    .option('--json', 'print one JSON object on one line instead of the MR URL')
    .option('--gitlab-url <url>', 'GitLab URL (default: $GITLAB_URL, then $CI_SERVER_URL)')
    .option('--timeout <seconds>', 'timeout of each GitLab request', '30')
    .addHelpText(
      'after',
      `
Environment:
  GITOPS_BOT_TOKEN (or GITLAB_TOKEN)  token with the api scope and the Developer role in
                                      the ops project. CI_JOB_TOKEN cannot write there.
  CI_PROJECT_PATH, CI_COMMIT_SHA, CI_PIPELINE_URL, CI_PIPELINE_IID, CI_PROJECT_URL
                                      source facts shown in the merge request (set by GitLab CI)
  GITOPS_BOT_REGISTRY_USER, GITOPS_BOT_REGISTRY_PASSWORD
                                      registry credentials (GITOPS_BOT_REGISTRY limits them
                                      to one host); in GitLab CI, CI_REGISTRY_USER and
                                      CI_REGISTRY_PASSWORD are used for CI_REGISTRY

The registry: promote asks it whether the tag exists and which digest it is, reads the
org.opencontainers.image.revision label of the deployed and the new image (the build
template sets it), and lists the app commits and merge requests between them in the MR.

What it does: reads each --file at the target branch, sets the image's tag (only those
bytes change), and opens - or updates in place - one merge request per app and
environment on branch gitops-bot/<env>/<app>, assigned to --assignee, with a sticky
comment showing the diff. Re-running with the same tag changes nothing.

Output: progress on stderr, the merge request URL on stdout; with --json one line:
  {"action":"created|updated|noop|refused","mr":{"iid":1,"url":"..."},"branch":"...",
   "commit":"...","changes":[...],"requests":6}
  (--dry-run: "would-create" or "would-update" instead of "created" or "updated")

Exit codes: 0 done (or nothing to do); 1 failure; 2 bad arguments or configuration
(missing file, unknown user, no token); 3 the image is not referenced in a --file;
4 a --file is not valid YAML; 5 refused: the tag is older than the one deployed or
proposed (--allow-downgrade), or was rolled back from the environment (--allow-rejected); 7 the image tag does not exist in the registry (or could
not be verified with --verify-image or --pin-digest); 8 the token was rejected or lacks
access.

Example (in an app pipeline):
  $ GITOPS_BOT_TOKEN=... gitops-bot promote --project root/helloworld-ops \\
      --file deployment.yml --image $CI_REGISTRY_IMAGE --tag ci-$CI_PIPELINE_IID \\
      --assignee operator --target-branch main

Example (the policy maps environments to files, e.g. envs/staging/**):
  $ gitops-bot promote --project root/helloworld-ops --env staging \
      --image $CI_REGISTRY_IMAGE --tag ci-$CI_PIPELINE_IID
`,
    )
    .action(promoteAction);
}

/** Builds the request from flags and GitLab CI's variables, runs it, prints the outcome. */
async function promoteAction(opts: PromoteCliOptions): Promise<void> {
  const env = process.env;
  const conn = connection(opts.gitlabUrl, env);
  const timeout = Number(opts.timeout);
  if (!(timeout > 0))
    throw new CliError(`--timeout '${opts.timeout}' is not a positive number of seconds`, 2);
  const req: PromoteRequest = {
    project: opts.project,
    files: opts.file ?? [],
    image: opts.image,
    tag: opts.tag,
    digest: opts.digest,
    env: opts.env,
    app: opts.app,
    container: opts.container,
    assignees: opts.assignee ?? [],
    reviewers: opts.reviewer ?? [],
    labels: opts.label ?? [],
    targetBranch: opts.targetBranch,
    allowDowngrade: opts.allowDowngrade,
    allowRejected: opts.allowRejected,
    verifyImage: opts.verifyImage,
    pinDigest: opts.pinDigest,
    dryRun: opts.dryRun,
    source: {
      project: opts.sourceProject ?? env.CI_PROJECT_PATH,
      sha: opts.sourceSha ?? env.CI_COMMIT_SHA,
      pipelineUrl: env.CI_PIPELINE_URL,
      pipelineIid: env.CI_PIPELINE_IID,
      projectUrl: opts.sourceProject ? undefined : env.CI_PROJECT_URL,
    },
  };
  const [{ GitLab }, { promote }, { RegistryClient, credentialsFromEnv }] = await Promise.all([
    import('../gitlab/client.js'),
    import('../promote/promote.js'),
    import('../registry/client.js'),
  ]);
  const gitlab = new GitLab({ url: conn.url, token: conn.token, timeoutMs: timeout * 1000 });
  await reportProposal('promote', opts.json, () =>
    promote(req, {
      gitlab,
      registry: new RegistryClient({ credentials: credentialsFromEnv(env) }),
      progress: progressTo(opts.json),
    }),
  );
}
