// Moving branches with git: GitLab's REST API cannot move a branch on the condition that
// nobody moved it since we read it, so the bot pushes over HTTPS with
// --force-with-lease=<ref>:<head read>: a compare-and-swap. Two users: deploy_ref moves only
// ever forward (fastForward), and promote's MR branch is replaced by one new commit
// (replaceRef). The token travels in an HTTP header given on the command line of a private
// process, never in a URL or a log.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

interface LeasedPush {
  url: string;
  token: string;
  project: string;
  /** the branch to move */
  ref: string;
  /** the commit it should point at, already on the server */
  sha: string;
  /** the head we read, or null when the branch must not exist yet */
  expected: string | null;
  /** a branch deleted in the same atomic push */
  alsoDelete?: string;
}

/**
 * Points `ref` at `sha` if it is still at `expected`, in one atomic push. 'stale' (nothing
 * changed) when it is not: git compared the advertised head, or the server's own
 * compare-and-swap failed because the branch moved between advertisement and update.
 * Four git HTTP requests: a shallow fetch of `sha` (git needs the object locally to push
 * it) and the push.
 */
async function leasedPush(o: LeasedPush): Promise<'moved' | 'stale'> {
  const dir = await mkdtemp(join(tmpdir(), 'gitops-bot-push-'));
  const remote = `${o.url.replace(/\/+$/, '')}/${o.project}.git`;
  const auth = `Authorization: Basic ${Buffer.from(`gitops-bot:${o.token}`).toString('base64')}`;
  const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: dir };
  const git = (...args: string[]) =>
    run('git', ['-c', `http.extraHeader=${auth}`, '-c', 'protocol.version=2', ...args], { cwd: dir, env });
  try {
    await run('git', ['init', '-q', '--bare', dir], { env });
    await git('fetch', '-q', '--depth=1', '--no-tags', remote, o.sha);
    const lease = `--force-with-lease=refs/heads/${o.ref}:${o.expected ?? ''}`;
    const refspecs = [
      `${o.sha}:refs/heads/${o.ref}`,
      ...(o.alsoDelete ? [`:refs/heads/${o.alsoDelete}`] : []),
    ];
    try {
      await git('push', '-q', '--atomic', lease, remote, ...refspecs);
      return 'moved';
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? '');
      if (
        /stale info|non-fast-forward|fetch first|already exists|cannot lock ref|failed to update ref/.test(
          msg,
        )
      )
        return 'stale';
      throw new Error(
        `pushing ${o.ref} failed: ${msg.split('\n').find((l) => l.trim()) ?? 'git push failed'}`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface FastForward {
  url: string;
  token: string;
  project: string;
  ref: string;
  sha: string;
  /** current head of `ref` (null: it does not exist yet), read through the API */
  current: string | null;
  /** whether `current` is an ancestor of `sha`, asked of GitLab (merge_base) */
  isAncestor: (ancestor: string, of: string) => Promise<boolean>;
}

/**
 * Fast-forwards `ref` to `sha`, only ever forward: the agent's branch never goes backwards
 * or sideways. Ancestry is checked through the API (a shallow fetch cannot tell); the lease
 * makes the push a no-op if someone moved the ref after that check.
 */
export async function fastForward(o: FastForward): Promise<'moved' | 'already' | 'diverged'> {
  if (o.current === o.sha) return 'already';
  if (o.current && !(await o.isAncestor(o.current, o.sha))) return 'diverged';
  const moved = await leasedPush({ ...o, expected: o.current });
  return moved === 'moved' ? 'moved' : 'diverged';
}

export interface ReplaceRef extends Omit<LeasedPush, 'alsoDelete'> {
  /** a scratch branch holding `sha`, deleted in the same atomic push */
  from: string;
}

/**
 * Points `ref` at `sha` and deletes the scratch branch `from`, together: GitLab's Commits
 * API can reset a branch (`force`), but not on the condition that nobody moved it since we
 * read it. Without the lease, a slow promotion of an older tag can overwrite a newer one
 * that landed meanwhile. 'stale' when the branch is no longer at `expected`.
 */
export function replaceRef(o: ReplaceRef): Promise<'moved' | 'stale'> {
  return leasedPush({ ...o, alsoDelete: o.from });
}
