// What the tests of `serve` against the sandbox share: the bot's requests while serve works,
// the MRs it gated, its verdict comments, and bot MRs of apps of their own (see addApps).
import { GitLab } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { RequestLogEntry, Sandbox } from '../../src/sandbox/index.js';
import { client, OPS } from '../helpers.js';

/** The body of gitops-bot's verdict comment on the ops repo's MR `iid` ('' while there is none). */
export async function verdictNote(sandbox: Sandbox, iid: number): Promise<string> {
  const notes = await client(sandbox, 'operator').MergeRequestNotes.all(OPS, iid);
  return String(notes.find((n) => String(n.body).startsWith('<!-- gitops-bot:verdict'))?.body ?? '');
}

/** gitops-bot's requests at the sandbox while `fn` runs and `serve` settles. */
export async function botRequestsDuring(
  sandbox: Sandbox,
  serve: { idle(): Promise<void> },
  fn: () => Promise<unknown>,
): Promise<RequestLogEntry[]> {
  await sandbox.settle(serve);
  const from = sandbox.requests.length;
  await fn();
  await sandbox.settle(serve);
  return sandbox.requests.slice(from).filter((r) => r.user === 'gitops-bot');
}

/** The ops repo's MRs whose gate ran during `reqs` (each gate reads its MR first), ascending. */
export function gatedMrs(reqs: Array<{ method: string; path: string }>): number[] {
  const re = new RegExp(`^/api/v4/projects/${encodeURIComponent(OPS)}/merge_requests/(\\d+)$`);
  return [...new Set(reqs.filter((r) => r.method === 'GET').flatMap((r) => re.exec(r.path)?.[1] ?? []))]
    .map(Number)
    .sort((a, b) => a - b);
}

/** gitops-bot promotes apps/app<i>.yml (see addApps) to root/app<i>:ci-2 into main, as `env`: its MR's iid. */
export async function promoteApp(sandbox: Sandbox, i: number, env: string): Promise<number> {
  const r = await promote(
    {
      project: OPS,
      env,
      files: [`apps/app${i}.yml`],
      image: `registry.example.com/root/app${i}`,
      tag: 'ci-2',
      targetBranch: 'main',
    },
    { gitlab: new GitLab({ url: sandbox.url, token: 'gitops-bot-token' }) },
  );
  return r.mr!.iid;
}
