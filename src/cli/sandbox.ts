import type { Command } from 'commander';
import { CliError, ExitCode } from './errors.js';

export function registerSandbox(program: Command): void {
  program
    .command('sandbox')
    .description('run a local GitLab sandbox: GitLab REST API v4 subset + git over HTTP, on real git')
    .option('--host <host>', 'address to bind (loopback unless named explicitly)', '127.0.0.1')
    .option('--port <port>', 'port to listen on; 0 picks a free one', '8929')
    .option('--data <dir>', 'keep state in DIR across restarts (default: a temporary folder removed on exit)')
    .option('--seed <name>', 'initial content when DIR is new: story | empty', 'story')
    .option(
      '--rate-limit <n/min>',
      "GitLab's API throttle: answer 429 (Retry-After, RateLimit-* headers) past N requests per minute per user; GitLab.com's is 2000/min (default: no throttle, no headers)",
    )
    .option(
      '--faults <spec>',
      'turn a seeded share of API answers into faults, e.g. rate=0.2,seed=7 or rate=0.2,kinds=503,429,reset',
    )
    .option(
      '--argocd',
      "also serve an Argo CD (Argo CD's REST API on its own loopback port) tracking sandbox branches",
    )
    .option(
      '--argocd-notify <url>',
      'with --argocd: send Argo CD Notifications there (header X-Gitops-Bot-Token = $GITOPS_BOT_WEBHOOK_SECRET when set)',
    )
    .option('--argocd-poll <ms>', "with --argocd: reconciliation interval (Argo CD's default: 180000)")
    .option(
      '--argocd-registry <url>',
      'with --argocd: a registry whose images are checked (repeatable); images elsewhere count as present',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .addHelpText(
      'after',
      `
Seeds:
  story   users root (admin), developer, reviewer, operator, argocd, gitops-bot,
          each with token <username>-token; projects root/helloworld and
          root/helloworld-ops with the roles of the GitOps story.
  empty   only root (token root-token).

Examples:
  $ gitops-bot sandbox --port 0
  $ gitops-bot sandbox --data .sandbox-data --seed story
  $ gitops-bot sandbox --rate-limit 2000/min     # GitLab.com's authenticated API limit
  $ curl -H 'PRIVATE-TOKEN: operator-token' http://127.0.0.1:8929/api/v4/projects/root%2Fhelloworld-ops
  $ git clone http://oauth2:reviewer-token@127.0.0.1:8929/root/helloworld-ops.git

Faults (--faults): rate=R (0-1), seed=N, kinds=K,K,... (default all of 500, 502, 503,
429, slow, reset, drop-after-write; also hold), slow_ms=MS (default 1000), retry_after=S
(default 1), only='METHOD /path' (fault only that route below /api/v4; :name matches any
one segment), after='METHOD /path' (no faults until a request to that route succeeded; its
answer is the first faulted). drop-after-write performs a write and then closes the
connection without an answer; hold performs it and keeps the answer back for slow_ms (or
until the client leaves).
  $ gitops-bot sandbox --port 0 --faults rate=0.2,seed=7
  $ gitops-bot sandbox --faults rate=0.1,kinds=503,429,drop-after-write
  $ gitops-bot sandbox --faults 'rate=1,kinds=hold,slow_ms=60000,only=PUT /projects/:id/merge_requests/:iid/merge'
  $ gitops-bot sandbox --faults 'rate=1,kinds=503,after=PUT /projects/:id/merge_requests/:iid/merge'

Argo CD (--argocd): user admin, password argocd-admin; the story's application
helloworld tracks root/helloworld-ops at deploy/prod (create the branch to deploy). It
polls (--argocd-poll) and takes GitLab Push Hooks at <argocd>/api/webhook; a sync renders
the path (kubectl kustomize when there is a kustomization), an image missing from an
--argocd-registry is Degraded (ImagePullBackOff), others go Progressing, then Healthy.
  $ GITOPS_BOT_WEBHOOK_SECRET=s gitops-bot sandbox --argocd --argocd-notify http://127.0.0.1:8080/argocd
  $ curl -s -d '{"username":"admin","password":"argocd-admin"}' <argocd>/api/v1/session

Outside /api/v4, /-/sandbox/requests lists (GET) or resets (DELETE) the request log, and
/-/sandbox/faults (GET) counts the faults injected.
`,
    )
    .action(
      async (
        opts: {
          host: string;
          port: string;
          data?: string;
          seed: string;
          rateLimit?: string;
          faults?: string;
          argocd?: boolean;
          argocdNotify?: string;
          argocdPoll?: string;
          argocdRegistry?: string[];
        },
        cmd: Command,
      ) => {
        const port = Number(opts.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          throw new CliError(`--port: '${opts.port}' is not a port number (0-65535)`, ExitCode.USAGE);
        }
        if (opts.seed !== 'story' && opts.seed !== 'empty') {
          throw new CliError(`--seed: '${opts.seed}' is not a seed (story | empty)`, ExitCode.USAGE);
        }
        let rateLimit: number | undefined;
        if (opts.rateLimit !== undefined) {
          const { parseRateLimit } = await import('../sandbox/rest.js');
          try {
            rateLimit = parseRateLimit(opts.rateLimit);
          } catch (e) {
            throw new CliError((e as Error).message, ExitCode.USAGE);
          }
        }
        const explicitHost = cmd.getOptionValueSource('host') === 'cli';
        let faults: import('../sandbox/faults.js').FaultSpec | undefined;
        if (opts.faults !== undefined) {
          const { parseFaults } = await import('../sandbox/faults.js');
          try {
            faults = parseFaults(opts.faults);
          } catch (e) {
            throw new CliError((e as Error).message, ExitCode.USAGE);
          }
        }
        const argocd = argocdOptions(opts);
        const { startSandbox } = await import('../sandbox/index.js');
        const sandbox = await startSandbox({
          host: opts.host,
          port,
          dataDir: opts.data,
          seed: opts.seed,
          allowNonLoopback: explicitHost,
          rateLimit,
          faults,
          argocd,
        });
        const out = process.stdout;
        out.write(`sandbox ready: ${sandbox.url}\n`);
        if (sandbox.argocdUrl) out.write(`argocd ready: ${sandbox.argocdUrl}\n`);
        const width = Math.max(8, ...sandbox.users.map((u) => u.username.length));
        out.write(`\n${'user'.padEnd(width)}  token\n`);
        for (const u of sandbox.users)
          out.write(`${u.username.padEnd(width)}  ${u.token}${u.admin ? '  (admin)' : ''}\n`);
        if (sandbox.argocdUrl) {
          out.write(`\nargocd user admin, password argocd-admin; applications: helloworld\n`);
          if (argocd && typeof argocd === 'object' && argocd.notifyUrl)
            out.write(
              `argocd notifications: ${argocd.notifyUrl}${argocd.notifyToken ? ' (X-Gitops-Bot-Token set)' : ''}\n`,
            );
        }
        if (rateLimit) out.write(`rate limit: ${rateLimit}/min per user (429 with Retry-After past it)\n`);
        if (faults)
          out.write(`faults: rate=${faults.rate} seed=${faults.seed} kinds=${faults.kinds.join(',')}\n`);
        out.write(
          `\ndata: ${opts.data ? sandbox.dataDir : `${sandbox.dataDir} (temporary, removed on exit)`}\n`,
        );
        let stopping = false;
        const stop = async () => {
          if (stopping) return;
          stopping = true;
          await sandbox.close();
          process.exit(0);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      },
    );
}

function argocdOptions(opts: {
  argocd?: boolean;
  argocdNotify?: string;
  argocdPoll?: string;
  argocdRegistry?: string[];
}): import('../sandbox/index.js').ArgocdOptions | undefined {
  const used = opts.argocdNotify ?? opts.argocdPoll ?? opts.argocdRegistry;
  if (!opts.argocd) {
    if (used !== undefined)
      throw new CliError(
        '--argocd-notify, --argocd-poll and --argocd-registry need --argocd',
        ExitCode.USAGE,
      );
    return undefined;
  }
  const url = (flag: string, value: string) => {
    try {
      const u = new URL(value);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
      return value;
    } catch {
      throw new CliError(`${flag}: '${value}' is not an http(s) URL`, ExitCode.USAGE);
    }
  };
  let pollMs: number | undefined;
  if (opts.argocdPoll !== undefined) {
    pollMs = Number(opts.argocdPoll);
    if (!Number.isInteger(pollMs) || pollMs < 10) {
      throw new CliError(
        `--argocd-poll: '${opts.argocdPoll}' is not a number of milliseconds (10 or more)`,
        ExitCode.USAGE,
      );
    }
  }
  return {
    pollMs,
    notifyUrl: opts.argocdNotify === undefined ? undefined : url('--argocd-notify', opts.argocdNotify),
    // The secret comes from the environment only: never from argv, where `ps` shows it.
    notifyToken: process.env.GITOPS_BOT_WEBHOOK_SECRET || undefined,
    registries: (opts.argocdRegistry ?? []).map((r) => url('--argocd-registry', r)),
  };
}
