// bench/startup: how fast the bundle (dist/gitops-bot.mjs and its .data, `npm run bundle`;
// GITOPS_BOT_BUNDLE=path for another build) starts, against the floor on this machine: an
// empty `node -e ''`. The goal is a ratio, so that a loaded machine moves both sides: a
// fresh process that opens a new MR against the sandbox takes at most 3x a bare Node start
// (fresh_over_bare). The two are sampled alternately, in one run, against one sandbox.
// Also: `--version` (goal < 150 ms), and a fresh process that updates its MR (that path's
// cost is git: the compare-and-swap push, see src/promote/promote.ts).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { PromoteResult } from '../src/promote/promote.js';
import { startSandbox } from '../src/sandbox/index.js';
import { promoteArgs, STORY_PROMOTION } from './promote.js';

const run = promisify(execFile);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const BUNDLE =
  process.env.GITOPS_BOT_BUNDLE ?? fileURLToPath(new URL('../../dist/gitops-bot.mjs', import.meta.url));
const N = 15;

/** Milliseconds of one fresh `node args` process, to its exit; its stdout. */
async function timed(args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; stdout: string }> {
  const t = performance.now();
  const { stdout } = await run(process.execPath, args, { env });
  return { ms: performance.now() - t, stdout };
}

export async function benchStartup(): Promise<Record<string, number | string>> {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run bundle first`);
  const out: Record<string, number | string> = {};
  const bare = ['-e', ''];
  // NODE_EXTRA_CA_CERTS (set on this machine) makes Node read and parse a CA bundle before
  // any of our code runs: shown separately, since it is the environment's cost, not ours.
  const envs: Array<[string, NodeJS.ProcessEnv]> = [['', process.env]];
  if (process.env.NODE_EXTRA_CA_CERTS) {
    const { NODE_EXTRA_CA_CERTS: _, ...rest } = process.env;
    envs.push([' (without NODE_EXTRA_CA_CERTS)', rest]);
  }
  for (const [label, env] of envs) {
    const node: number[] = [];
    const version: number[] = [];
    for (let i = 0; i < N; i++) {
      node.push((await timed(bare, env)).ms);
      version.push((await timed([BUNDLE, '--version'], env)).ms);
    }
    out[`median ms, node -e ''${label}`] = Math.round(median(node));
    out[`median ms, gitops-bot --version${label}`] = Math.round(median(version));
  }

  const sb = await startSandbox({ port: 0, seed: 'story' });
  try {
    const cliEnv = { ...process.env, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' };
    const promotion = async (tag: string, env: string, expected: PromoteResult['action']) => {
      const { ms, stdout } = await timed(promoteArgs(BUNDLE, STORY_PROMOTION, tag, env), cliEnv);
      const r = JSON.parse(stdout) as PromoteResult;
      if (r.action !== expected) throw new Error(`${env} ${tag}: expected ${expected}, got ${r.action}`);
      return { ms, requests: r.requests };
    };
    // one of each first, not counted: the file system's caches, the sandbox's first git runs
    await timed(bare, process.env);
    await promotion('ci-100', 'startup-warm', 'created');

    const node: number[] = [];
    const created: number[] = [];
    const requests = new Set<number>();
    for (let i = 0; i < N; i++) {
      node.push((await timed(bare, process.env)).ms);
      // a new environment each time: a new branch and a new MR
      const c = await promotion(`ci-${101 + i}`, `startup-new-${i}`, 'created');
      created.push(c.ms);
      requests.add(c.requests);
    }
    out.node_bare_ms = Math.round(median(node));
    out.fresh_new_mr_ms = Math.round(median(created));
    out.fresh_over_bare = (median(created) / median(node)).toFixed(2);
    out['fresh_over_bare target'] = '<= 3';
    out['requests per new MR (fresh process)'] = [...requests].join(', ');

    const updated: number[] = [];
    for (let i = 0; i < 7; i++)
      updated.push((await promotion(`ci-${200 + i}`, 'startup-warm', 'updated')).ms);
    out['median ms, promote updated, fresh bundle process'] = Math.round(median(updated));
  } finally {
    await sb.close();
  }
  return out;
}
