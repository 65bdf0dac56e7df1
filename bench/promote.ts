// bench/promote: 20 promotions against the sandbox, in-process and as fresh `gitops-bot`
// processes; prints the median time per promotion and the requests per promotion.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GitLab } from '../src/gitlab/client.js';
import { type PromoteRequest, type PromoteResult, promote } from '../src/promote/promote.js';
import { startSandbox } from '../src/sandbox/index.js';

const run = promisify(execFile);

/** The story's promotion (tag and environment left to each run). */
export const STORY_PROMOTION: PromoteRequest = {
  project: 'root/helloworld-ops',
  files: ['deployment.yml'],
  image: 'registry.example.com/root/helloworld',
  assignees: ['operator'],
  targetBranch: 'main',
};

/** The argv of `gitops-bot promote` for `req`, as a pipeline would run it (shared with bench/startup). */
export function promoteArgs(cli: string, req: PromoteRequest, tag: string, env: string): string[] {
  return [
    cli,
    'promote',
    '--project',
    req.project,
    '--file',
    req.files.join(','),
    '--image',
    req.image,
    '--tag',
    tag,
    '--env',
    env,
    '--assignee',
    (req.assignees ?? []).join(','),
    '--target-branch',
    req.targetBranch ?? 'main',
    '--json',
  ];
}
const N = 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchPromote(): Promise<Record<string, number | string>> {
  const sb = await startSandbox({ port: 0, seed: 'story' });
  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const base = STORY_PROMOTION;
  try {
    const inProcess: number[] = [];
    const requests: number[] = [];
    const actions: Record<string, number> = {};
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const r = await promote(
        { ...base, env: `bench${i % 2}`, tag: `ci-${100 + i}` },
        { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
      );
      inProcess.push(performance.now() - t);
      requests.push(r.requests);
      actions[r.action] = (actions[r.action] ?? 0) + 1;
    }
    const fresh: number[] = [];
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const { stdout } = await run(process.execPath, promoteArgs(cli, base, `ci-${200 + i}`, `cli${i % 2}`), {
        env: { ...process.env, GITLAB_URL: sb.url, GITOPS_BOT_TOKEN: 'gitops-bot-token' },
      });
      fresh.push(performance.now() - t);
      const r = JSON.parse(stdout) as PromoteResult;
      requests.push(r.requests);
      actions[r.action] = (actions[r.action] ?? 0) + 1;
    }
    return {
      promotions: 2 * N,
      actions: Object.entries(actions)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
      'median ms per promotion, in-process': Math.round(median(inProcess)),
      'median ms per promotion, fresh process': Math.round(median(fresh)),
      'fresh / in-process': (median(fresh) / median(inProcess)).toFixed(2),
      'requests per promotion (mean)': (requests.reduce((a, b) => a + b, 0) / requests.length).toFixed(2),
      'requests per promotion (max)': Math.max(...requests),
    };
  } finally {
    await sb.close();
  }
}
