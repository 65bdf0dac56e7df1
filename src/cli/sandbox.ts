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
        const { startSandbox } = await import('../sandbox/index.js');
        const sandbox = await startSandbox({
          host: opts.host,
          port,
          dataDir: opts.data,
          seed: opts.seed,
          allowNonLoopback: explicitHost,
          rateLimit,
          faults,
        });
        const out = process.stdout;
        out.write(`sandbox ready: ${sandbox.url}\n`);
        const width = Math.max(8, ...sandbox.users.map((u) => u.username.length));
        out.write(`\n${'user'.padEnd(width)}  token\n`);
        for (const u of sandbox.users)
          out.write(`${u.username.padEnd(width)}  ${u.token}${u.admin ? '  (admin)' : ''}\n`);
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
