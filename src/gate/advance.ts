// Decide: how far deploy_ref may move. Pure: the observation (one piece of evidence per
// commit on the target's first-parent chain, oldest first) is read elsewhere. History up
// to the current deploy_ref is trusted as it stands; after it, every commit must be
// accounted for: the merge of an MR that passed the rules in force before it, or a commit
// explicitly accepted by enough eligible approvers. A commit that is neither (a bypass) holds
// deploy_ref until it is accepted or reverted by an accounted commit.

export interface Bypass {
  sha: string;
  /** merged without passing the rules, or pushed without a merge request */
  kind: 'merge' | 'push';
  /** the MR it merged, for a merge */
  iid?: number;
  /** who merged or pushed it, as GitLab recorded it; null when GitLab does not say */
  who: string | null;
  /** why it did not pass (the verdict's summary), or that no MR produced it */
  why: string;
  /** acceptances counted so far, and how many are needed */
  accepted: { by: string[]; required: number };
}

export type Evidence =
  | { accounted: true; how: 'merge'; iid: number }
  | { accounted: true; how: 'accepted'; bypass: Bypass }
  | { accounted: false; bypass: Bypass };

export interface WalkState {
  /** the newest commit up to which every commit is accounted for */
  clean: string;
  /** bypasses after `clean`, oldest first */
  pending: Bypass[];
  /** bypasses accepted on the way (their alerts say so) */
  accepted: Bypass[];
}

export function startWalk(base: string): WalkState {
  return { clean: base, pending: [], accepted: [] };
}

/** One commit of the chain: `reverts` lists the pending bypasses this commit undoes. */
export function step(s: WalkState, sha: string, e: Evidence, reverts: string[] = []): WalkState {
  const accepted = e.accounted && e.how === 'accepted' ? [...s.accepted, e.bypass] : s.accepted;
  const pending = e.accounted ? s.pending.filter((p) => !reverts.includes(p.sha)) : [...s.pending, e.bypass];
  return { clean: pending.length ? s.clean : sha, pending, accepted };
}

export type Decision =
  | { action: 'move'; from: string | null; to: string; held: Bypass[] }
  | { action: 'hold'; at: string | null; held: Bypass[] }
  | { action: 'already' };

/**
 * Where deploy_ref goes: to the newest commit up to which everything is accounted for
 * (the whole chain when nothing bypassed the rules), or nowhere. `base` is where the walk
 * started: the current deploy_ref, or the candidate's parent when there is none yet.
 */
export function decide(current: string | null, base: string, candidate: string, s: WalkState): Decision {
  if (current === candidate) return { action: 'already' };
  if (s.clean !== base) return { action: 'move', from: current, to: s.clean, held: s.pending };
  return { action: 'hold', at: current, held: s.pending };
}

export interface FileDiff {
  path: string;
  /** GitLab's unified diff text of the file */
  diff: string;
}

function changedLines(diff: string): { added: string[]; removed: string[] } {
  const added: string[] = [];
  const removed: string[] = [];
  for (const line of diff.split('\n')) {
    if (line.startsWith('+++') || line.startsWith('---')) continue;
    if (line.startsWith('+')) added.push(line.slice(1));
    else if (line.startsWith('-')) removed.push(line.slice(1));
  }
  return { added: added.sort(), removed: removed.sort() };
}

const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Whether `candidate` undoes `bypass`: for every file the bypass changed, the candidate
 * removes exactly the lines it added and adds back exactly the lines it removed (what
 * `git revert` produces, wherever the lines moved since).
 */
export function isRevertOf(candidate: FileDiff[], bypass: FileDiff[]): boolean {
  if (!bypass.length) return false;
  return bypass.every((b) => {
    const c = candidate.find((x) => x.path === b.path);
    if (!c) return false;
    const bl = changedLines(b.diff);
    const cl = changedLines(c.diff);
    return same(cl.added, bl.removed) && same(cl.removed, bl.added);
  });
}

/** `/gitops-bot accept <sha>` in a comment: the sha prefix it accepts, or null. */
export function acceptedSha(body: string): string | null {
  const m = /^\s*\/gitops-bot accept ([0-9a-f]{7,40})\s*$/i.exec(body);
  return m ? m[1].toLowerCase() : null;
}
