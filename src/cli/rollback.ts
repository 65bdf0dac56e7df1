// `gitops-bot rollback`: the merge request that brings an environment back to a tag that ran
// healthy there. Heavy modules load inside the action: `--help` stays fast.
import type { Command } from 'commander';
import { connection } from '../gitlab/connection.js';
import { ExitCode } from '../model/exit-codes.js';
import { CliError } from './errors.js';
import { list, progressTo, reportProposal } from './proposal-outcome.js';

interface RollbackCliOptions {
  project: string;
  env: string;
  app: string;
  to?: string;
  toPrevious?: boolean;
  reason?: string;
  image?: string;
  file?: string[];
  targetBranch?: string;
  assignee?: string[];
  reviewer?: string[];
  dryRun?: boolean;
  json?: boolean;
  gitlabUrl?: string;
  timeout: string;
}

export function registerRollback(program: Command): void {
  program
    .command('rollback')
    .description('open the merge request that rolls an app back to a tag that ran healthy in an environment')
    .requiredOption('--project <path>', 'the ops project, e.g. root/helloworld-ops')
    .requiredOption('--env <name>', 'the environment to roll back, e.g. production')
    .requiredOption('--app <name>', 'the app (its branch is gitops-bot/<env>/<app>)')
    .option(
      '--to <tag>',
      'the tag to go back to (default: the last one that ran healthy before the deployed one)',
    )
    .option('--to-previous', 'go back to the last tag that ran healthy before the deployed one (the default)')
    .option('--reason <text>', 'why: shown in the merge request, and in why the tag is rejected afterwards')
    .option('--image <repo>', "the image repository (default: the one the app's promotions here wrote)")
    .option('--file <path...>', 'manifest(s) to edit (default: the files the policy maps --env to)', list)
    .option(
      '--target-branch <branch>',
      "the branch the agent deploys (default: the policy's, else the default branch)",
    )
    .option('--assignee <user...>', "assign these users (default: the environment's approvers)", list)
    .option('--reviewer <user...>', 'request review from these users', list)
    .option('--dry-run', 'read and decide, write nothing')
    .option('--json', 'print one JSON object on one line instead of the MR URL')
    .option('--gitlab-url <url>', 'GitLab URL (default: $GITLAB_URL, then $CI_SERVER_URL)')
    .option('--timeout <seconds>', 'timeout of each GitLab request', '30')
    .addHelpText(
      'after',
      `
What it does: reads the Deployments gitops-bot recorded in the GitLab environment
<env>/<app> (from the agent's reports), picks the newest that ran healthy with a tag other
than the one deployed now (or --to), and opens - or turns the open promotion into - the
merge request "Roll back <app> to <tag> in <env>" on gitops-bot/<env>/<app>, labelled
rollback, with the reason, the agent's last message and the diff. The downgrade guard is
waived for this merge request only, and the record says so. Once merged, the tag rolled
back from is rejected in that environment: promote refuses it (exit 5, --allow-rejected).
The policy's rollback: rules (approvals, merge, freeze) apply to it in the gate.

Environment: GITOPS_BOT_TOKEN (or GITLAB_TOKEN), as for promote.

Output: progress on stderr, the merge request URL on stdout; with --json one line:
  {"action":"created|updated|noop","tag":"ci-34","fromTag":"ci-35","mr":{...},"replaced":3,...}

Exit codes: 0 done (or nothing to do); 1 failure; 2 bad arguments, or nothing healthy on
record to roll back to (pass --to); 8 the token was rejected or lacks access.

Example:
  $ gitops-bot rollback --project root/helloworld-ops --env production --app helloworld \\
      --reason "HW-002 breaks the login page"
`,
    )
    .action(rollbackAction);
}

async function rollbackAction(opts: RollbackCliOptions): Promise<void> {
  const conn = connection(opts.gitlabUrl, process.env);
  const timeout = Number(opts.timeout);
  if (!(timeout > 0))
    throw new CliError(`--timeout '${opts.timeout}' is not a positive number of seconds`, ExitCode.USAGE);
  const [{ GitLabGate }, { rollback }] = await Promise.all([
    import('../gitlab/client.js'),
    import('../rollback/rollback.js'),
  ]);
  const gitlab = new GitLabGate({ url: conn.url, token: conn.token, timeoutMs: timeout * 1000 });
  await reportProposal('rollback', opts.json, () =>
    rollback(
      {
        project: opts.project,
        env: opts.env,
        app: opts.app,
        to: opts.to,
        toPrevious: opts.toPrevious,
        reason: opts.reason,
        image: opts.image,
        files: opts.file,
        targetBranch: opts.targetBranch,
        assignees: opts.assignee,
        reviewers: opts.reviewer,
        dryRun: opts.dryRun,
        by: 'command',
      },
      { gitlab, progress: progressTo(opts.json) },
    ),
  );
}
