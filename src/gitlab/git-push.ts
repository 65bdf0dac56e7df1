// Moving branches with git's push protocol: GitLab's REST API cannot move a branch on the
// condition that nobody moved it since we read it, but receive-pack can: each command names
// the ref's old value, and the server updates it only if it still has that value (a
// compare-and-swap). Two users: deploy_ref moves only ever forward (fastForward), and
// promote's MR branch is replaced by one new commit (replaceRef).
//
// We speak smart HTTP ourselves (receive-pack.ts) instead of running git: the commit is
// already on the server (GitLab made it through the API), so there is nothing to upload and
// nothing to download. git push needed the object locally, i.e. a fetch of the commit's
// whole tree, whose cost grew with the ops repo (issue 16). Two requests: the advertisement
// (GET info/refs, where we check the lease first) and the update (POST git-receive-pack,
// where the server checks it again under its ref lock) with an empty pack.
//
// The token travels in an Authorization header to the GitLab URL only: no child process
// (whose argv every local user can read), no redirect followed. Whatever the server answers
// is scrubbed of the token, its base64 forms and URL credentials before it leaves this file,
// in the one kind of error thrown here (GitPushError).

import { networkCause } from '../base/network-error.js';
import {
  type Advertisement,
  demuxSideBand,
  ProtocolError,
  parseAdvertisement,
  parseReport,
  type RefCommand,
  type Report,
  updateRequest,
  ZERO_ID,
} from './receive-pack.js';

/** Each HTTP request is abandoned after this long (a hung connection must not hold a job forever). */
export const GIT_TIMEOUT_MS = 60_000;
/** HTTP requests one leased push makes: info/refs (the advertisement) + git-receive-pack. */
export const GIT_REQUESTS_PER_PUSH = 2;

/** A push that failed; the message is scrubbed of credentials. */
export class GitPushError extends Error {
  override name = 'GitPushError';
}

/** No answer (reset, timeout): the request may or may not have taken effect. */
class NoAnswerError extends GitPushError {}

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
  /** per HTTP request, ms (default GIT_TIMEOUT_MS) */
  timeoutMs?: number;
}

/** The forms in which `token` could show up in an answer or an error. */
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

export type PushPlan =
  | { kind: 'stale'; advertised: string | null }
  | { kind: 'push'; commands: RefCommand[]; capabilities: string[] };

/**
 * What to send, decided from the advertisement: 'stale' without a request when the branch
 * is no longer at `expected` (absent, when null). The scratch branch is deleted at the value
 * advertised for it (it is gone already: nothing to delete). Throws when the server lacks
 * what the compare-and-swap needs: report-status (to know whether the update happened),
 * atomic (the move and the delete together), delete-refs.
 */
export function planLeasedPush(
  adv: Advertisement,
  o: Pick<LeasedPush, 'ref' | 'sha' | 'expected' | 'alsoDelete'>,
): PushPlan {
  const ref = `refs/heads/${o.ref}`;
  const advertised = adv.refs.get(ref) ?? null;
  if (advertised !== o.expected) return { kind: 'stale', advertised };
  const commands: RefCommand[] = [{ ref, old: o.expected ?? ZERO_ID, new: o.sha }];
  const scratch = o.alsoDelete ? `refs/heads/${o.alsoDelete}` : null;
  const scratchAt = scratch ? adv.refs.get(scratch) : undefined;
  if (scratch && scratchAt) commands.push({ ref: scratch, old: scratchAt, new: ZERO_ID });
  const format = [...adv.capabilities].find((c) => c.startsWith('object-format='));
  if (format && format !== 'object-format=sha1')
    throw new ProtocolError(`the repository uses ${format.slice(14)} object ids; gitops-bot speaks sha1`);
  const needed = ['report-status', ...(commands.length > 1 ? ['atomic', 'delete-refs'] : [])];
  const missing = needed.filter((c) => !adv.capabilities.has(c));
  if (missing.length) throw new ProtocolError(`the server does not offer ${missing.join(', ')}`);
  // side-band-64k: a hook's reasons for refusing come along (band 2), not only "pre-receive
  // hook declined"; quiet: no unpack progress in it; agent= only when the server sent its
  // own (gitprotocol-capabilities)
  const optional = ['side-band-64k', 'quiet'].filter((c) => adv.capabilities.has(c));
  const capabilities = [
    ...needed,
    ...optional,
    ...([...adv.capabilities].some((c) => c.startsWith('agent=')) ? ['agent=gitops-bot'] : []),
  ];
  return { kind: 'push', commands, capabilities };
}

// receive-pack's reasons when a ref's old value did not match under the lock: the ref
// moved between the advertisement and the update (refs.c "cannot lock ref ... is at X but
// expected Y", reported as "failed to update ref"; "atomic transaction failed" for every
// ref of an atomic push that failed that way; "failed to lock" from older gits), or a
// create found it existing (also "failed to update ref"). Not among them: "non-fast-forward"
// is receive-pack's answer when receive.denyNonFastForwards refuses an update that is not a
// fast-forward (builtin/receive-pack.c, "denying non-fast-forward ... (you should pull
// first)") - a standing refusal of replaceRef, not a race to retry; "stale info", "fetch
// first" and "already exists" are git push's own words (transport.c), never the server's.
const STALE_REASON =
  /failed to update ref|failed to lock|cannot lock ref|atomic transaction failed|incorrect old value/;
// what the other refs of an atomic push are told when one of them was refused
const ATOMIC_COLLATERAL = /^atomic push failure$/;

/** The server's messages (a hook's refusal) as one line: "GitLab: You are not allowed ...". */
export function serverSays(messages: string): string {
  const lines = messages
    .split(/[\r\n]+/)
    .map((l) => l.trim())
    .filter(Boolean);
  const text = lines.join(' / ');
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}

/**
 * 'moved' when every ref moved, 'stale' when a lease failed on the server, else why not
 * (with what the server printed, `messages`, when there is something).
 */
export function pushOutcome(
  report: Report,
  commands: RefCommand[],
  messages = '',
): 'moved' | 'stale' | { error: string } {
  const said = serverSays(messages);
  const withSaid = (error: string) => ({ error: said ? `${error} (${said})` : error });
  if (report.unpack !== 'ok') return withSaid(`the server could not unpack: ${report.unpack}`);
  const refused: Array<[string, string]> = [];
  for (const c of commands) {
    if (!report.refs.has(c.ref)) return { error: `no status for ${c.ref} in the report` };
    const reason = report.refs.get(c.ref);
    if (reason != null) refused.push([c.ref, reason]);
  }
  if (refused.length === 0) return 'moved';
  const own = refused.filter(([, reason]) => !ATOMIC_COLLATERAL.test(reason));
  if (own.length === 0) return withSaid(`${refused[0][0]}: ${refused[0][1]}`);
  if (own.every(([, reason]) => STALE_REASON.test(reason))) return 'stale';
  const [ref, reason] = own.find(([, r]) => !STALE_REASON.test(r)) ?? own[0];
  return withSaid(`${ref.replace(/^refs\/heads\//, '')}: ${reason}`);
}

/** Whether every command of an update shows in `adv`: each ref at its new value (gone, for a delete). */
export function tookEffect(adv: Advertisement, commands: RefCommand[]): boolean {
  return commands.every((c) => (adv.refs.get(c.ref) ?? ZERO_ID) === c.new);
}

/** The first line of an error page, short and scrubbed. */
function firstLine(text: string, token: string): string {
  const line =
    scrubSecrets(text, token)
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}

/** Why a fetch rejected, in words: the timeout, or the network's cause ("connection refused"). */
function whyNoAnswer(e: unknown, timeoutMs: number, url: string): string {
  const err = e as Error;
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError')
    return `no answer in ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}`;
  return networkCause(e, url) ?? err?.message ?? String(e);
}

/**
 * One request to `<project>.git/<path>` on the GitLab at `o.url`, with the token as basic
 * auth. Redirects are not followed (they would take the header, or a push, elsewhere).
 * Returns the body when the answer is 200 with `type`.
 */
async function gitRequest(
  o: LeasedPush,
  path: string,
  type: string,
  init: { method: 'GET' } | { method: 'POST'; body: Buffer; contentType: string },
): Promise<Buffer> {
  const url = new URL(`${o.url.replace(/\/+$/, '')}/${o.project}.git/${path}`);
  const host = url.host;
  const timeoutMs = o.timeoutMs ?? GIT_TIMEOUT_MS;
  const headers: Record<string, string> = {
    Authorization: `Basic ${Buffer.from(`gitops-bot:${o.token}`).toString('base64')}`,
    Accept: type,
    // GitLab (as git) tells git clients from browsers by their agent
    'User-Agent': 'git/2 (gitops-bot)',
  };
  if (init.method === 'POST') headers['Content-Type'] = init.contentType;
  // as git: a cache between us and GitLab must not answer with an old advertisement
  else Object.assign(headers, { 'Cache-Control': 'no-cache', Pragma: 'no-cache' });
  let res: Response;
  try {
    res = await fetch(url, {
      method: init.method,
      headers,
      body: init.method === 'POST' ? new Uint8Array(init.body) : undefined,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new NoAnswerError(`cannot reach GitLab at ${url.origin}: ${whyNoAnswer(e, timeoutMs, url.href)}`);
  }
  let body: Buffer;
  try {
    body = Buffer.from(await res.arrayBuffer());
  } catch (e) {
    throw new NoAnswerError(`${host}: reading the answer: ${whyNoAnswer(e, timeoutMs, url.href)}`);
  }
  const text = () => firstLine(body.toString('utf8'), o.token);
  if (res.status >= 300 && res.status < 400) {
    const to = res.headers.get('location');
    let where = 'elsewhere';
    try {
      if (to) where = new URL(to, url).host;
    } catch {}
    throw new GitPushError(
      `${host} answered ${res.status}, a redirect to ${where}: not followed (the token goes to the GitLab URL only; is GITLAB_URL the canonical address?)`,
    );
  }
  if (res.status === 401)
    throw new GitPushError(`${host} refused the token (401): it is wrong, expired or revoked`);
  if (res.status === 403)
    throw new GitPushError(
      `${host} does not let gitops-bot push to ${o.project} (403)${text() ? `: ${text()}` : ''}`,
    );
  if (res.status !== 200)
    throw new GitPushError(`${host} answered ${res.status}${text() ? `: ${text()}` : ''}`);
  const got = (res.headers.get('content-type') ?? '').split(';')[0].trim();
  if (got !== type)
    throw new GitPushError(
      `${host} answered ${got || 'no content type'}, not ${type} (not a git smart-HTTP server?)`,
    );
  return body;
}

/**
 * Points `ref` at `sha` if it is still at `expected`, in one atomic push. 'stale' (nothing
 * changed) when it is not: the advertisement showed another head, or the server's own
 * compare-and-swap failed because the branch moved between advertisement and update.
 */
async function leasedPush(o: LeasedPush): Promise<'moved' | 'stale'> {
  const fail = (what: string, e: unknown): never => {
    const why = e instanceof GitPushError || e instanceof ProtocolError ? e.message : String(e);
    throw new GitPushError(scrubSecrets(`${what}: ${why}`, o.token));
  };
  const advertise = async () =>
    parseAdvertisement(
      await gitRequest(
        o,
        'info/refs?service=git-receive-pack',
        'application/x-git-receive-pack-advertisement',
        {
          method: 'GET',
        },
      ),
    );
  let plan: PushPlan;
  try {
    plan = planLeasedPush(await advertise(), o);
  } catch (e) {
    return fail(`reading the refs of ${o.project}`, e);
  }
  if (plan.kind === 'stale') return 'stale';
  let outcome: ReturnType<typeof pushOutcome>;
  try {
    const answer = await gitRequest(o, 'git-receive-pack', 'application/x-git-receive-pack-result', {
      method: 'POST',
      body: updateRequest(plan.commands, plan.capabilities),
      contentType: 'application/x-git-receive-pack-request',
    });
    if (plan.capabilities.includes('side-band-64k')) {
      const bands = demuxSideBand(answer);
      if (bands.fatal) throw new GitPushError(`the server gave up: ${bands.fatal}`);
      outcome = pushOutcome(parseReport(bands.data), plan.commands, bands.messages);
    } else outcome = pushOutcome(parseReport(answer), plan.commands);
  } catch (e) {
    // The update may have landed with its answer lost: the refs tell (a write is checked
    // before it is called failed, as in retry.ts). The branch at our commit and the scratch
    // branch gone is what we wanted, whoever made it so.
    // A 200 whose body is empty or cut short (a proxy that dropped the rest) is as good as
    // no answer: receive-pack may have updated the refs before the report was lost.
    if (e instanceof NoAnswerError || e instanceof ProtocolError) {
      const now = await advertise().catch(() => null);
      if (now && tookEffect(now, plan.commands)) return 'moved';
    }
    return fail(`pushing ${o.ref}`, e);
  }
  if (typeof outcome === 'object') return fail(`pushing ${o.ref}`, new GitPushError(outcome.error));
  return outcome;
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
 * or sideways. Ancestry is checked through the API (we hold no history to tell by); the lease
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
