// Moving branches with git: GitLab's REST API cannot move a branch on the condition that
// nobody moved it since we read it, so the bot pushes over HTTPS with
// --force-with-lease=<ref>:<head read>: a compare-and-swap. Two users: deploy_ref moves only
// ever forward (fastForward), and promote's MR branch is replaced by one new commit
// (replaceRef).
//
// The token never reaches git's command line (which every local user can read in the
// process list): git gets its Authorization header through the environment
// (GIT_CONFIG_COUNT/KEY/VALUE, private to our user), scoped to the GitLab URL. Whatever git
// prints is scrubbed of the token, its base64 forms and URL credentials before it leaves this
// file, in the one kind of error thrown here (GitPushError, no stderr or argv attached).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Each git command is killed after this long (a hung connection must not hold a job forever). */
export const GIT_TIMEOUT_MS = 60_000;
/** HTTP requests one leased push makes: info/refs + upload-pack (the fetch), info/refs + receive-pack. */
export const GIT_REQUESTS_PER_PUSH = 4;

/** A git command that failed; the message is scrubbed of credentials. */
export class GitPushError extends Error {
  override name = 'GitPushError';
}

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
  /** per git command, ms (default GIT_TIMEOUT_MS) */
  timeoutMs?: number;
}

// Variables a git child has no use for and that hold credentials of ours.
const SECRET_ENV = [
  'GITOPS_BOT_TOKEN',
  'GITLAB_TOKEN',
  'CI_JOB_TOKEN',
  'GITOPS_BOT_WEBHOOK_SECRET',
  'GITOPS_BOT_WEBHOOK_SIGNING_TOKEN',
  'GITOPS_BOT_REGISTRY_PASSWORD',
  'CI_REGISTRY_PASSWORD',
];

/** The forms in which `token` could show up in git's output. */
function secretForms(token: string): string[] {
  const forms = new Set<string>();
  for (const user of ['gitops-bot', 'oauth2', '']) {
    const plain = user ? `${user}:${token}` : token;
    forms.add(Buffer.from(plain).toString('base64'));
    forms.add(Buffer.from(plain).toString('base64').replace(/=+$/, ''));
  }
  forms.add(encodeURIComponent(token));
  forms.add(token);
  // longest first, so that a form containing another is replaced whole
  return [...forms].filter((f) => f.length >= 4).sort((a, b) => b.length - a.length);
}

/**
 * `text` without `token` (raw, URL-encoded, base64 alone or as basic-auth credentials),
 * without any Authorization header value and without URL userinfo.
 */
export function scrubSecrets(text: string, token: string): string {
  let out = text;
  for (const form of secretForms(token)) out = out.split(form).join('[REDACTED]');
  return out
    .replace(/(authorization:\s*)(\S+)(\s+\S+)?/gi, (_, h: string, scheme: string, rest?: string) =>
      rest ? `${h}${scheme} [REDACTED]` : `${h}[REDACTED]`,
    )
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, '$1');
}

/** git's environment: our header in GIT_CONFIG_*, after any the caller already set. */
function gitEnv(o: LeasedPush, home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of SECRET_ENV) delete env[k];
  // traces print headers (GIT_TRACE_CURL redacts them, unless told not to): none of that
  for (const k of Object.keys(env)) if (/^GIT_(TRACE|CURL_VERBOSE)/.test(k)) delete env[k];
  const auth = `Authorization: Basic ${Buffer.from(`gitops-bot:${o.token}`).toString('base64')}`;
  const config: Array<[string, string]> = [
    // only for requests to this GitLab: never sent along a redirect to another host
    [`http.${o.url.replace(/\/+$/, '')}/.extraHeader`, auth],
    ['protocol.version', '2'],
  ];
  const start = Math.max(0, Number(env.GIT_CONFIG_COUNT) || 0);
  config.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${start + i}`] = key;
    env[`GIT_CONFIG_VALUE_${start + i}`] = value;
  });
  env.GIT_CONFIG_COUNT = String(start + config.length);
  return { ...env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: home };
}

interface GitFailure {
  /** what git printed, scrubbed */
  stderr: string;
  message: string;
}

/**
 * Runs git; rejects with a GitFailure whose texts are scrubbed (execFile's own error carries
 * the command line and the raw output, and must not travel).
 */
function runGit(args: string[], cwd: string, env: NodeJS.ProcessEnv, o: LeasedPush): Promise<void> {
  const timeout = o.timeoutMs ?? GIT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args,
      { cwd, env, timeout, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024 },
      (error, _stdout, stderr) => {
        if (!error) return resolve();
        const e = error as NodeJS.ErrnoException & { killed?: boolean; signal?: string };
        const err = scrubSecrets(String(stderr ?? ''), o.token);
        const first =
          err
            .split('\n')
            .map((l) => l.trim())
            .find(Boolean) ?? '';
        let why: string;
        if (e.code === 'ENOENT') why = 'git is not installed (or not on PATH)';
        else if (e.killed) why = `git ${args[0]} did not finish in ${Math.round(timeout / 1000)} s`;
        else why = first || `git ${args[0]} failed (${e.signal ?? `exit ${e.code}`})`;
        reject({ stderr: err, message: why } satisfies GitFailure);
      },
    );
  });
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
  const env = gitEnv(o, dir);
  const git = (...args: string[]) => runGit(args, dir, env, o);
  const fail = (what: string, f: GitFailure): never => {
    throw new GitPushError(scrubSecrets(`${what}: ${f.message}`, o.token));
  };
  try {
    await git('init', '-q', '--bare', dir).catch((f: GitFailure) => fail('preparing a git directory', f));
    await git('fetch', '-q', '--depth=1', '--no-tags', remote, o.sha).catch((f: GitFailure) =>
      fail(`fetching ${o.sha.slice(0, 12)} of ${o.project}`, f),
    );
    const lease = `--force-with-lease=refs/heads/${o.ref}:${o.expected ?? ''}`;
    const refspecs = [
      `${o.sha}:refs/heads/${o.ref}`,
      ...(o.alsoDelete ? [`:refs/heads/${o.alsoDelete}`] : []),
    ];
    try {
      await git('push', '-q', '--atomic', lease, remote, ...refspecs);
      return 'moved';
    } catch (e) {
      const f = e as GitFailure;
      if (
        /stale info|non-fast-forward|fetch first|already exists|cannot lock ref|failed to update ref/.test(
          f.stderr,
        )
      )
        return 'stale';
      return fail(`pushing ${o.ref}`, f);
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
  timeoutMs?: number;
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
