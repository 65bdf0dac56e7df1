// `gitops-bot chain`: one run of the environment chains (`promotion:` in the policy) for an
// ops project, as serve runs it after a successful deployment; `--dry-run` says what it
// would open, or why it waits, without writing.
import type { Command } from 'commander';
import { connection } from '../gitlab/connection.js';
import { ExitCode } from '../model/exit-codes.js';
import { CliError } from './errors.js';
import { policyFrom } from './gate.js';

export function registerChain(program: Command): void {
  program
    .command('chain')
    .description(
      "run the policy's environment chains once: open the MRs whose soak is over, say why the others wait",
    )
    .requiredOption('--project <path>', 'the ops project, e.g. root/helloworld-ops')
    .option('--policy <file>', 'rules from this file instead of .gitops-bot.yml (as serve --policy)')
    .option('--dry-run', 'decide, write nothing')
    .option('--json', 'print one JSON object on one line')
    .option('--gitlab-url <url>', 'GitLab URL (default: $GITLAB_URL, then $CI_SERVER_URL)')
    .addHelpText(
      'after',
      `
What it does: for each step of the policy's promotion: list and each app gitops-bot deployed
in the step's "from" environment, reads GitLab's Deployments (the bot's own), the files of
"to", its open MR and the tags rolled back there, and either promotes the tag that has been
healthy in "from" for the soak time into "to" (an ordinary gitops-bot MR, judged by "to"'s
rules), or says why it waits (the soak, a freeze, a deployment under way) or does nothing.
serve runs the same after every successful deployment it writes and when a wait ends.

Output: one line per app and step; with --json
  {"decisions":[{"from":"staging","to":"production","app":"helloworld","wait":"soak: ...","until":"..."}],
   "opened":[{"app":"helloworld","to":"production","tag":"ci-34","action":"created","mr":{...}}],
   "nextAt":"...","requests":9}

Exit codes: 0 done (also: nothing to do, or waiting); 1 failure, also of one promotion; 2 bad arguments, an invalid --policy or
.gitops-bot.yml; 8 no access.

Example:
  $ gitops-bot chain --project root/helloworld-ops --dry-run
  helloworld staging → production: waiting: soak: ci-34 healthy in staging since 11:32 (12 min of 30 min); production at 12:02
`,
    )
    .action(chainAction);
}

async function chainAction(opts: {
  project: string;
  policy?: string;
  dryRun?: boolean;
  json?: boolean;
  gitlabUrl?: string;
}): Promise<void> {
  const policy = await policyFrom(opts.policy);
  const conn = connection(opts.gitlabUrl);
  const [{ GitLabGate, GitLabError }, { runChain, describeDecision }] = await Promise.all([
    import('../gitlab/client.js'),
    import('../chain/index.js'),
  ]);
  const gitlab = new GitLabGate({ url: conn.url, token: conn.token });
  try {
    const bot = await gitlab.currentUser();
    const run = await runChain(
      { gitlab, botUserId: bot.id, botUsername: bot.username, ...policy },
      opts.project,
      {
        dryRun: opts.dryRun,
      },
    );
    const opened = run.opened.map((o) => ({
      app: o.decision.app,
      to: o.decision.to,
      tag: o.decision.open.tag,
      ...('result' in o
        ? { action: o.result.action, reason: o.result.reason, mr: o.result.mr }
        : { action: 'failed', reason: o.error, mr: null }),
    }));
    // a promotion the chain could not make fails the run (a scheduled pipeline must notice)
    if (opened.some((o) => o.action === 'failed')) process.exitCode = ExitCode.FAILURE;
    if (opts.json && !run.skipped?.startsWith('invalid policy')) {
      process.stdout.write(
        `${JSON.stringify({ decisions: run.decisions, opened, nextAt: run.nextAt, skipped: run.skipped, requests: run.requests })}\n`,
      );
      return;
    }
    if (run.skipped?.startsWith('invalid policy'))
      throw new CliError(`${opts.project}: ${run.skipped}`, ExitCode.USAGE);
    if (run.skipped) process.stdout.write(`nothing to do: ${run.skipped}\n`);
    for (const d of run.decisions)
      process.stdout.write(
        `${opts.dryRun && 'open' in d ? `would ${describeDecision(d)}` : describeDecision(d)}\n`,
      );
    for (const o of opened)
      process.stdout.write(
        `  ${o.app} ${o.tag} → ${o.to}: ${o.action}${o.mr ? ` ${o.mr.url}` : ''} (${o.reason})\n`,
      );
  } catch (e) {
    if (e instanceof GitLabError && (e.status === 401 || e.status === 403 || e.status === 404))
      throw new CliError(`${opts.project}: ${e.message}`, ExitCode.AUTH);
    throw e;
  }
}
