// Decide: which open MRs a push must re-evaluate. Pure: the push's facts (read from GitLab
// by the push job: what the compare API says changed, the rules' governed branches and
// deploy refs) and the open MRs' plain data in, the MRs and why out. A push costs its reads
// and the gates it asks for; a README-only push to main asks for none, however many MRs
// are open.
//
// What a verdict reads from branches other than the MR's own (src/gate/trust.ts, facts.ts):
// - the policy file on the default branch (the rules of every MR, whatever its target), and
//   in strict mode at the default branch's deploy ref (the rules in force);
// - the policy file on a non-default target (only to say, in the comment, that it is ignored);
// - the target branch's existence and protection (a deleted target is unprotected);
// - the target's copy of the YAML files the MR changes (the tag bump is measured from it);
// Nothing else of a push changes a verdict: approvals, push records, members and freeze
// windows are not in the pushed tree (freeze windows' edges are timed, see freeze-edges.ts).
import { readAtTarget } from '../gate/facts.js';
import { POLICY_FILE } from '../gate/trust.js';

export interface PushFacts {
  branch: string;
  /**
   * The paths whose content differs between the push's `before` and `after` (GitLab's
   * compare, straight). Null when that is not known: a new or deleted branch, a comparison
   * GitLab timed out on or does not know: then anything may have changed.
   */
  changedPaths: string[] | null;
  defaultBranch: string;
  /** the target branches the rules govern (at the default branch's head, and in force) */
  governed: string[];
  /** the deploy refs the rules read the policy in force from (strict mode) */
  deployRefs: string[];
}

export interface OpenMr {
  iid: number;
  targetBranch: string;
  /** the MR's head */
  sha: string;
  /** the paths the MR changes at `sha`, when this process read them (null: not known) */
  changedPaths: string[] | null;
}

/** Which open MRs the push job must list: none, those into the pushed branch, or all. */
export type Listing = { list: 'none' } | { list: 'target' | 'project'; reason: string };

const changed = (p: PushFacts, path: string) => p.changedPaths === null || p.changedPaths.includes(path);

/** What the push can affect, before any MR is listed (so that most pushes list none). */
export function listingFor(p: PushFacts): Listing {
  const policy = changed(p, POLICY_FILE);
  const what = p.changedPaths === null ? 'may have changed (what changed is not known)' : 'changed';
  if (policy && p.branch === p.defaultBranch)
    return { list: 'project', reason: `the policy on ${p.branch} ${what}: it holds every MR's rules` };
  if (policy && p.deployRefs.includes(p.branch))
    return { list: 'project', reason: `the policy at ${p.branch} ${what}: it holds the rules in force` };
  if (policy)
    return { list: 'target', reason: `the policy copy on ${p.branch} ${what} (named in its MRs' verdicts)` };
  // A governed target whose tree changed: only the MRs that change the same manifests read
  // it (their tag bump is measured from the target). Branches no rule governs: their MRs
  // are blocked whatever the files say.
  // (Here changedPaths is known: an unknown change counts as a policy change above.)
  if (!p.governed.includes(p.branch)) return { list: 'none' };
  const manifests = (p.changedPaths ?? []).filter(readAtTarget);
  if (!manifests.length) return { list: 'none' };
  return { list: 'target', reason: `${p.branch} changed ${manifests.slice(0, 3).join(', ')}` };
}

/**
 * Whether the push's reach depends on rules not read yet: the branch is governed by no rule
 * read so far (a non-default target: the default branch's head only), and the push changed
 * manifests there, whose MRs a governing rule would re-evaluate. In strict mode the rules in
 * force (the deploy ref's) may govern a branch the head's rules no longer name; a policy
 * change or an unknown change lists the branch's MRs whoever governs it, so it needs none.
 */
export function needsRulesInForce(p: PushFacts): boolean {
  if (changed(p, POLICY_FILE) || p.governed.includes(p.branch)) return false;
  return (p.changedPaths ?? []).some(readAtTarget);
}

/** The open MRs the push must re-evaluate, each with the reason. */
export function affectedMergeRequests(p: PushFacts, mrs: OpenMr[]): Array<{ iid: number; reason: string }> {
  const l = listingFor(p);
  if (l.list === 'none') return [];
  if (l.list === 'project') return mrs.map((m) => ({ iid: m.iid, reason: l.reason }));
  const into = mrs.filter((m) => m.targetBranch === p.branch);
  // The policy copy changed, or the branch changed in ways not known (a new or deleted
  // branch: a deleted target is unprotected now): every MR into it.
  if (changed(p, POLICY_FILE)) return into.map((m) => ({ iid: m.iid, reason: l.reason }));
  const manifests = (p.changedPaths ?? []).filter(readAtTarget);
  const out: Array<{ iid: number; reason: string }> = [];
  for (const m of into) {
    if (m.changedPaths === null) {
      out.push({ iid: m.iid, reason: `${l.reason}; the files !${m.iid} changes are not known here` });
      continue;
    }
    const both = manifests.filter((f) => m.changedPaths!.includes(f));
    if (both.length)
      out.push({ iid: m.iid, reason: `${p.branch} changed ${both.join(', ')}, which !${m.iid} changes` });
  }
  return out;
}
