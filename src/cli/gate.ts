// `gitops-bot gate`, `gitops-bot serve` and `gitops-bot schema`: the approval rules.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { connection } from '../gitlab/connection.js';
import { CliError, ExitCode } from './errors.js';

export const GATE_EXIT_NOT_PASSED = ExitCode.GATE_PENDING;

/** gate, serve and schema. */
export function registerGate(program: Command): void {
  registerGateCommand(program);
  registerServe(program);
  registerSchema(program);
}

function registerGateCommand(program: Command): void {
  program
    .command('gate')
    .description("evaluate a merge request against the ops repo's approval rules; publish the verdict")
    .requiredOption('--project <path>', 'the ops project')
    .requiredOption('--mr <iid>', 'merge request IID')
    .option('--merge', 'merge it when the rules pass and the policy says merge: bot')
    .option('--json', 'print the verdict as JSON')
    .option('--policy <file>', 'rules from this file instead of .gitops-bot.yml on the default branch')
    .option('--gitlab-url <url>', 'GitLab URL (default: $GITLAB_URL, then $CI_SERVER_URL)')
    .addHelpText(
      'after',
      `
Reads .gitops-bot.yml from the ops project's protected default branch (in strict mode, as
deployed at deploy_ref; never from the MR or its target branch) or from --policy, evaluates
who approved and whose approval counts, sets the commit status gitops-bot/approval on the
MR head, and keeps one comment with the verdict.

Exit codes: 0 the rules pass; 6 they do not (yet); 2 bad arguments; 8 token problems; 1 other.

Example (ops repo MR pipeline, see ci-templates/gate.yml):
  $ gitops-bot gate --project root/helloworld-ops --mr $CI_MERGE_REQUEST_IID
`,
    )
    .action(gateAction);
}

function registerServe(program: Command): void {
  program
    .command('serve')
    .description('receive GitLab webhooks: enforce the approval rules, merge, and move deploy_ref')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
    .option('--secret-file <file>', 'file holding the webhook secret (default: $GITOPS_BOT_WEBHOOK_SECRET)')
    .option(
      '--signing-token-file <file>',
      'file holding the hook signing token, whsec_... (default: $GITOPS_BOT_WEBHOOK_SIGNING_TOKEN)',
    )
    .option('--project <path...>', 'ops projects this bot manages (others are ignored)')
    .option('--register-hook', 'create the project hook in each --project, pointing at --url, and exit')
    .option('--url <url>', 'public URL of this server, for --register-hook (e.g. https://bot.example.com)')
    .option('--gitlab-url <url>', 'GitLab URL (default: $GITLAB_URL, then $CI_SERVER_URL)')
    .option(
      '--job-timeout <seconds>',
      'a job running longer has failed: counted, alerted, /healthz 503',
      '120',
    )
    .option('--worker-heap <MB>', "the worker thread's heap limit; past it the worker is restarted", '96')
    .option('--policy <file>', 'rules from this file instead of .gitops-bot.yml on the default branch')
    .option(
      '--argocd-url <url>',
      "poll this Argo CD for the policy's applications (token: $ARGOCD_AUTH_TOKEN), for when notifications cannot be configured",
    )
    .option('--argocd-poll <seconds>', 'how often --argocd-url is read', '30')
    .addHelpText(
      'after',
      `
Endpoints: POST /webhook, POST /argocd (Argo CD Notifications), POST /flux (Flux
notification-controller), GET /healthz, GET /metrics (Prometheus).
/argocd and /flux take the header X-Gitops-Bot-Token = $GITOPS_BOT_WEBHOOK_SECRET (Flux's
generic-hmac X-Signature with it as key works too); README "Deployment feedback" has the
Argo CD and Flux snippets.
Each --project is resolved through the API at startup; deliveries are matched by their
numeric project id, and the bot acts on the path GitLab gave for it.
Logs: JSON lines on stderr, level info (GITOPS_BOT_LOG_LEVEL overrides); alerts (merges
and pushes that bypassed the rules, failed or timed-out jobs, a dead worker) at error.
/healthz answers 503 while the worker thread is down or a job runs past --job-timeout.
Deliveries must carry the secret (X-Gitlab-Token, compared in constant time) and, when a
signing token is configured, a valid webhook-signature no older than 5 minutes.
Stateless: every fact lives in GitLab, so several replicas can run side by side.
SIGTERM/SIGINT: stop taking deliveries (503), finish the work in flight, exit 0.
--register-hook creates the hook, or updates the one already pointing at --url.

Examples:
  $ GITOPS_BOT_TOKEN=... GITOPS_BOT_WEBHOOK_SECRET=... gitops-bot serve --project root/helloworld-ops
  $ gitops-bot serve --register-hook --project root/helloworld-ops --url https://bot.example.com
`,
    )
    .action(serveAction);
}

function registerSchema(program: Command): void {
  program
    .command('schema')
    .description('print a JSON Schema (for editors): gitops-bot schema policy')
    .argument('<name>', 'policy')
    .action(async (name: string) => {
      if (name !== 'policy') throw new CliError(`unknown schema '${name}' (known: policy)`, ExitCode.USAGE);
      const { policyJsonSchema } = await import('../policy/schema.js');
      process.stdout.write(`${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
    });
}

/** A secret from a file (trimmed) or else from the environment; never echoed. */
async function secretFrom(file: string | undefined, flag: string, env: string): Promise<string | undefined> {
  if (!file) return process.env[env] || undefined;
  const text = await readFile(file, 'utf8').catch(() => {
    throw new CliError(`${flag} ${file}: cannot read it`, ExitCode.USAGE);
  });
  return text.trim() || undefined;
}

/**
 * Rules given outside the repository (`--policy FILE`): a Maintainer's file on the bot's
 * host, which no MR can change. A bad file is exit 2, naming the file and the field.
 */
export async function policyFrom(
  file: string | undefined,
): Promise<{ policy?: { policy: import('../policy/schema.js').Policy; source: string } }> {
  if (!file) return {};
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError(
      `--policy ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      ExitCode.USAGE,
    );
  }
  const { parsePolicy, PolicyError } = await import('../policy/schema.js');
  try {
    return { policy: { policy: parsePolicy(text, file), source: `--policy ${file}` } };
  } catch (e) {
    if (e instanceof PolicyError) throw new CliError(e.message, ExitCode.USAGE);
    throw e;
  }
}

/** One MR: evaluate, publish the verdict, merge if asked; exit 6 when the rules do not pass. */
async function gateAction(opts: {
  project: string;
  mr: string;
  merge?: boolean;
  json?: boolean;
  policy?: string;
  gitlabUrl?: string;
}): Promise<void> {
  const iid = Number(opts.mr);
  if (!Number.isInteger(iid) || iid < 1)
    throw new CliError(`--mr '${opts.mr}' is not a merge request IID`, ExitCode.USAGE);
  const policy = await policyFrom(opts.policy);
  const conn = connection(opts.gitlabUrl);
  const [{ GitLabGate }, { gate }] = await Promise.all([
    import('../gitlab/client.js'),
    import('../gate/gate.js'),
  ]);
  const gitlab = new GitLabGate({ url: conn.url, token: conn.token });
  const bot = await gitlab.currentUser();
  const result = await gate(
    { gitlab, botUserId: bot.id, botUsername: bot.username, ...policy },
    opts.project,
    iid,
    {
      merge: opts.merge,
    },
  );
  if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(`${result.verdict.pass ? 'pass' : 'not passed'}: ${result.verdict.summary}\n`);
    for (const a of result.verdict.approvals) process.stdout.write(`  @${a.username}: ${a.reason}\n`);
  }
  if (!result.verdict.pass) process.exitCode = GATE_EXIT_NOT_PASSED;
}

/** The webhook receiver (or, with --register-hook, the hook's registration). */
async function serveAction(opts: {
  listen: string;
  secretFile?: string;
  signingTokenFile?: string;
  project?: string[];
  registerHook?: boolean;
  url?: string;
  gitlabUrl?: string;
  jobTimeout: string;
  workerHeap: string;
  policy?: string;
  argocdUrl?: string;
  argocdPoll: string;
}): Promise<void> {
  const { log, useDefaultLevel } = await import('../base/log.js');
  useDefaultLevel('info');
  const jobTimeout = Number(opts.jobTimeout);
  if (!(jobTimeout > 0))
    throw new CliError(
      `--job-timeout '${opts.jobTimeout}' is not a positive number of seconds`,
      ExitCode.USAGE,
    );
  const heapMb = Number(opts.workerHeap);
  if (!Number.isInteger(heapMb) || heapMb < 16)
    throw new CliError(`--worker-heap '${opts.workerHeap}' is not a whole number of MB, at least 16`, 2);
  const policy = await policyFrom(opts.policy);
  const secret = await secretFrom(opts.secretFile, '--secret-file', 'GITOPS_BOT_WEBHOOK_SECRET');
  const signingToken = await secretFrom(
    opts.signingTokenFile,
    '--signing-token-file',
    'GITOPS_BOT_WEBHOOK_SIGNING_TOKEN',
  );
  if (!secret && !signingToken)
    throw new CliError(
      'no webhook secret: pass --secret-file or set GITOPS_BOT_WEBHOOK_SECRET (or a signing token)',
      2,
    );
  if (signingToken) {
    const { signingKey } = await import('../server/signature.js');
    try {
      signingKey(signingToken);
    } catch (e) {
      throw new CliError(`signing token: ${(e as Error).message}`, ExitCode.USAGE);
    }
  }
  const conn = connection(opts.gitlabUrl);
  const { GitLabGate } = await import('../gitlab/client.js');
  const gitlab = new GitLabGate({ url: conn.url, token: conn.token });
  if (opts.registerHook) {
    if (!opts.url || !opts.project?.length)
      throw new CliError('--register-hook needs --url and --project', ExitCode.USAGE);
    const url = `${opts.url.replace(/\/+$/, '')}/webhook`;
    for (const p of opts.project) {
      const hook = await gitlab.ensureHook(p, url, { token: secret, signingToken });
      process.stdout.write(`hook ${hook.id} ${hook.action} in ${p}: ${url}\n`);
    }
    return;
  }
  let argocd: { url: string; token: string; pollMs: number } | undefined;
  if (opts.argocdUrl) {
    const poll = Number(opts.argocdPoll);
    if (!(poll >= 1))
      throw new CliError(
        `--argocd-poll '${opts.argocdPoll}' is not a number of seconds, at least 1`,
        ExitCode.USAGE,
      );
    try {
      new URL(opts.argocdUrl);
    } catch {
      throw new CliError(`--argocd-url '${opts.argocdUrl}' is not a URL`, ExitCode.USAGE);
    }
    const token = process.env.ARGOCD_AUTH_TOKEN?.trim();
    if (!token) throw new CliError('--argocd-url needs a token in $ARGOCD_AUTH_TOKEN', ExitCode.USAGE);
    if (!opts.project?.length)
      throw new CliError(
        '--argocd-url needs --project (the policies there name the applications)',
        ExitCode.USAGE,
      );
    argocd = { url: opts.argocdUrl, token, pollMs: poll * 1000 };
  }
  const m = /^(.*):(\d+)$/.exec(opts.listen);
  if (!m) throw new CliError(`--listen '${opts.listen}' is not host:port`, ExitCode.USAGE);
  const [{ createWebhookServer }, { ProjectDirectory, resolveProjects, UnknownProjectError }] =
    await Promise.all([import('../server/webhook.js'), import('../server/projects.js')]);
  const bot = await gitlab.currentUser();
  // The managed projects as GitLab knows them (id and canonical path), once.
  let projects: Awaited<ReturnType<typeof resolveProjects>> | undefined;
  if (opts.project?.length) {
    try {
      projects = await resolveProjects(new ProjectDirectory(gitlab.opts), opts.project);
    } catch (e) {
      if (e instanceof UnknownProjectError) throw new CliError(e.message, ExitCode.AUTH);
      throw e;
    }
  }
  // Jobs run on a worker thread: GitLab calls and garbage collection there never delay
  // the acknowledgement of a delivery here.
  const server = createWebhookServer({
    ctx: { gitlab, botUserId: bot.id, botUsername: bot.username, ...policy },
    secret,
    signingToken,
    projects,
    jobTimeoutMs: jobTimeout * 1000,
    worker: { heapMb },
    ...(argocd ? { argocd } : {}),
  });
  const url = await server.listen(Number(m[2]), m[1].replace(/^\[|\]$/g, ''));
  log.info(
    {
      url,
      bot: bot.username,
      projects: projects ?? 'all',
      jobTimeoutS: jobTimeout,
      workerHeapMb: heapMb,
      ...(argocd ? { argocd: new URL(argocd.url).origin, argocdPollS: argocd.pollMs / 1000 } : {}),
    },
    'serve listening',
  );
  process.stdout.write(`gitops-bot serve: listening on ${url} as ${bot.username}\n`);
  const stop = async () => {
    process.stdout.write('gitops-bot serve: finishing work in flight\n');
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
