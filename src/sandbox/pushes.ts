// What GitLab records about a branch push besides moving the ref: the commits it counts
// (Git::BranchHooksService), the push event payload (PushEventPayloadService) and the
// "added N commits" system note on the merge requests of that branch
// (SystemNotes::CommitService#add_commits, called by MergeRequests::RefreshService).
import type { CommitInfo, Repo } from './git.js';
import { ZERO_SHA } from './git.js';
import type { MergeRequest, Project, PushPayload } from './state.js';

/** Git::BaseHooksService::PROCESS_COMMIT_LIMIT: the newest commits a push processes. */
const PROCESS_COMMIT_LIMIT = 100;
/** SystemNotes::CommitService::NEW_COMMIT_DISPLAY_LIMIT */
const NOTE_COMMIT_LIMIT = 10;

export const isBlank = (sha: string | null | undefined) => !sha || /^0+$/.test(sha);

/**
 * The commits a branch push counts, as Git::BranchHooksService does: for a new default
 * branch its history, for another new branch what the default branch does not have, for an
 * update `before..after`, for a deletion none. `commits` holds the newest 100, oldest first;
 * `count` is the whole number.
 */
export async function pushedCommits(
  repo: Repo,
  project: Project,
  branch: string,
  before: string,
  after: string,
): Promise<{ commits: CommitInfo[]; count: number }> {
  if (isBlank(after)) return { commits: [], count: 0 };
  let range: string[];
  if (isBlank(before)) {
    const main = branch === project.defaultBranch ? null : await repo.branchHead(project.defaultBranch);
    range = main ? [after, `^${main}`] : [after];
  } else {
    const linear = await linearRange(repo, before, after, PROCESS_COMMIT_LIMIT);
    if (linear) return { commits: linear.reverse(), count: linear.length };
    range = [`${before}..${after}`];
  }
  const newest = await repo.log(range, { max: PROCESS_COMMIT_LIMIT + 1 });
  const count = newest.length > PROCESS_COMMIT_LIMIT ? await repo.countCommits(range) : newest.length;
  return { commits: newest.slice(0, PROCESS_COMMIT_LIMIT).reverse(), count };
}

/** `before..after` newest first without a git process, when `after` descends from `before` in a line. */
async function linearRange(repo: Repo, before: string, after: string, limit: number) {
  const out: CommitInfo[] = [];
  let at = after;
  while (at !== before) {
    if (out.length >= limit) return null;
    const c = await repo.commit(at);
    if (c?.parentIds.length !== 1) return null;
    out.push(c);
    at = c.parentIds[0];
  }
  return out;
}

/** PushEventPayloadService: the row GitLab keeps for a push event. */
export function pushPayload(
  branch: string,
  before: string,
  after: string,
  commits: CommitInfo[],
  count: number,
): PushPayload {
  const created = isBlank(before);
  const removed = isBlank(after);
  const last = commits.at(-1);
  return {
    commitCount: count,
    action: created ? 'created' : removed ? 'removed' : 'pushed',
    refType: 'branch',
    commitFrom: created ? null : before,
    commitTo: removed ? null : after,
    ref: branch,
    commitTitle: last ? truncate(firstLine(last.message).trim(), 70, '...') : null,
    refCount: null,
  };
}

/** The push event's `action_name` (Event#push_action_name). */
export function pushActionName(p: PushPayload): string {
  return p.action === 'created' ? 'pushed new' : p.action === 'removed' ? 'deleted' : 'pushed to';
}

/**
 * The commits MergeRequests::RefreshService puts in the push note of an MR: `before..after`,
 * or for a source branch pushed anew, what it has beyond the MR's last head. Oldest first.
 */
export async function noteCommits(
  repo: Repo,
  previousHead: string,
  before: string,
  after: string,
  pushed: { commits: CommitInfo[]; count: number },
): Promise<CommitInfo[]> {
  if (!isBlank(before)) {
    if (pushed.commits.length === pushed.count) return pushed.commits;
    return (await repo.log([`${before}..${after}`])).reverse();
  }
  const base = await repo.mergeBase(previousHead, after);
  return base ? (await repo.log([`${base}..${after}`])).reverse() : [];
}

/** How GitLab names a run of commits in a push note: one id, `from...to` after a known
 * start, or `first..last` when the push created the branch. */
function commitRange(commits: CommitInfo[], start: string): string {
  if (commits.length === 1) return shortId(commits[0].id);
  return !isBlank(start)
    ? `${shortId(start)}...${shortId(commits.at(-1)!.id)}`
    : `${shortId(commits[0].id)}..${shortId(commits.at(-1)!.id)}`;
}

/**
 * SystemNotes::CommitService#add_commits: `added N commit(s)`, the list, the compare link.
 * `newCommits` are the pushed commits the MR now contains; `existing` the pushed commits it
 * does not (they came from the target branch, e.g. the branch was reset onto it).
 */
export function pushNoteBody(
  project: Project,
  mr: MergeRequest,
  diffId: number,
  oldrev: string,
  newCommits: CommitInfo[],
  existing: CommitInfo[],
): string {
  const total = newCommits.length + existing.length;
  const parts = [`added ${plural(total, 'commit')}`];
  let items = '';
  if (existing.length) {
    items += `<li>${commitRange(existing, oldrev)} - ${plural(existing.length, 'commit')} from branch <code>${escapeHtml(mr.targetBranch)}</code></li>`;
  }
  let shown = newCommits;
  if (newCommits.length > NOTE_COMMIT_LIMIT) {
    const hidden = newCommits.slice(0, newCommits.length - NOTE_COMMIT_LIMIT);
    shown = newCommits.slice(hidden.length);
    const start = existing.length ? existing.at(-1)!.id : oldrev;
    items += `<li>${commitRange(hidden, start)} - ${plural(hidden.length, 'earlier commit')}</li>`;
  }
  for (const c of shown) items += `<li>${escapeHtml(`${shortId(c.id)} - ${commitTitle(c.message)}`)}</li>`;
  parts.push(`<ul>${items}</ul>`);
  const path = `/${project.namespace}/${project.path}/-/merge_requests/${mr.iid}/diffs`;
  parts.push(`[Compare with previous version](${path}?diff_id=${diffId}&start_sha=${oldrev || ZERO_SHA})`);
  return parts.join('\n\n');
}

/** Commit#short_id: the first 8 characters. */
export const shortId = (sha: string) => sha.slice(0, 8);

/** Commit#title: the first line; from 100 characters on, cut at a word before 81 with "…". */
export function commitTitle(message: string): string {
  if (!message.trim()) return 'No commit message';
  const full = message.split(/[\r\n]/, 1)[0];
  return [...full].length < 100 ? full : truncate(full, 81, '…', ' ');
}

function firstLine(message: string): string {
  const i = message.indexOf('\n');
  return i < 0 ? message : message.slice(0, i + 1);
}

/** ActiveSupport's String#truncate, counting characters. */
function truncate(s: string, at: number, omission: string, separator?: string): string {
  const chars = [...s];
  if (chars.length <= at) return s;
  let stop = at - [...omission].length;
  if (separator) {
    const i = chars.slice(0, stop + 1).lastIndexOf(separator);
    if (i >= 0) stop = i;
  }
  return chars.slice(0, stop).join('') + omission;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** ERB::Util.html_escape, as content_tag applies it. */
export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}
