// bench/startup: how fast the single-file bundle (dist/gitops-bot.mjs, `npm run bundle`)
// starts, and what a fresh process costs a promotion compared with one in a warm process.
// Prints medians of fresh processes: `--version` (goal < 150 ms) next to an empty `node`
// (the floor on this machine), and promotions in-process vs fresh (goal: at most 2x).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GitLab } from '../src/gitlab/client.js';
import { type PromoteResult, promote } from '../src/promote/promote.js';
import { RegistryClient } from '../src/registry/client.js';
import { startSandbox } from '../src/sandbox/index.js';
import { promoteArgs, STORY_PROMOTION } from './promote.js';

const run = promisify(execFile);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const BUNDLE = fileURLToPath(new URL('../../dist/gitops-bot.mjs', import.meta.url));

async function timed(args: string[], env: NodeJS.ProcessEnv, n: number): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await run(process.execPath, args, { env });
    ms.push(performance.now() - t);
  }
  return median(ms);
}

export async function benchStartup(): Promise<Record<string, number | string>> {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run bundle first`);
  const out: Record<string, number | string> = {};
  // NODE_EXTRA_CA_CERTS (set on this machine) makes Node read and parse a CA bundle before
  // any of our code runs: shown separately, since it is the environment's cost, not ours.
  const envs: Array<[string, NodeJS.ProcessEnv]> = [['', process.env]];
  if (process.env.NODE_EXTRA_CA_CERTS) {
    const { NODE_EXTRA_CA_CERTS: _, ...rest } = process.env;
    envs.push([' (without NODE_EXTRA_CA_CERTS)', rest]);
  }
  for (const [label, env] of envs) {
    out[`median ms, node -e ''${label}`] = Math.round(await timed(['-e', ''], env, 15));
    out[`median ms, gitops-bot --version${label}`] = Math.round(await timed([BUNDLE, '--version'], env, 15));
  }

  const sb = await startSandbox({ port: 0, seed: 'story' });
  try {
    const base = STORY_PROMOTION;
    const gitlab = () => new GitLab({ url: sb.url, token: 'gitops-bot-token' });
    const cli = (tag: string, env: string) => promoteArgs(BUNDLE, base, tag, env);
    const cliEnv = { ...process.env, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' };
    // warm the in-process path (JIT, connections) as a long-lived process would be
    for (let i = 0; i < 3; i++)
      await promote({ ...base, env: 'warm', tag: `ci-${40 + i}` }, { gitlab: gitlab() });
    for (const kind of ['created', 'updated'] as const) {
      const inProcess: number[] = [];
      const fresh: number[] = [];
      for (let i = 0; i < 10; i++) {
        // a new environment each time opens an MR; the same one updates it
        const env = (where: string) => (kind === 'created' ? `${where}-${kind}-${i}` : `${where}-${kind}`);
        let t = performance.now();
        // the same work as the CLI, registry check included (registry.example.com: not found)
        const a = await promote(
          { ...base, env: env('lib'), tag: `ci-${100 + i}` },
          { gitlab: gitlab(), registry: new RegistryClient() },
        );
        inProcess.push(performance.now() - t);
        t = performance.now();
        const { stdout } = await run(process.execPath, cli(`ci-${100 + i}`, env('cli')), { env: cliEnv });
        fresh.push(performance.now() - t);
        const b = JSON.parse(stdout) as PromoteResult;
        if (i > 0 && (a.action !== kind || b.action !== kind))
          throw new Error(`expected ${kind}: ${a.action}, ${b.action}`);
      }
      out[`median ms, promote ${kind}, in-process`] = Math.round(median(inProcess));
      out[`median ms, promote ${kind}, fresh bundle process`] = Math.round(median(fresh));
      out[`fresh / in-process, promote ${kind}`] = (median(fresh) / median(inProcess)).toFixed(2);
    }
  } finally {
    await sb.close();
  }
  return out;
}
