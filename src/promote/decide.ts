// Decide: what one promotion does with what was observed. Pure: the action (create, update,
// noop, refuse with reason; would-create / would-update in a dry run) and the writes it
// implies, which apply performs. A repair after a race is a write of a refusal or a noop:
// a newer proposal overwritten by an older run is restored, a missing comment is posted.
import type { MergeRequest } from '../gitlab/client.js';
import { type PromotionRecord, sameProposal } from '../model/record.js';
import { compareTags } from '../model/version-order.js';
import type { Observation } from './observe.js';
import { type Rejection, rejectionMessage } from './rejections.js';
import type { PromoteAction, PromoteRequest } from './types.js';

export type Write =
  /** a run stopped between opening the MR and commenting: post the diff comment for its head */
  | { kind: 'finish-comment'; iid: number; commit: string }
  /** a race left the MR out of step: make branch, description and comment show the newest proposal */
  | { kind: 'repair'; iid: number; proposal: PromotionRecord }
  /** one commit on the target head, by compare-and-swap of the branch (null: it must not exist) */
  | { kind: 'commit'; expected: string | null }
  | { kind: 'open-mr' }
  /** title, description, labels, people and the diff comment of the open MR */
  | { kind: 'update-mr'; iid: number };

export interface Decision {
  action: PromoteAction;
  reason: string;
  writes: Write[];
  /** the commit the result names when nothing is written (the MR's head) */
  commit?: string;
  /** the progress line */
  say: string;
}

export type DecideRequest = Pick<
  PromoteRequest,
  'image' | 'tag' | 'digest' | 'allowDowngrade' | 'allowRejected' | 'rollback' | 'dryRun'
>;

/**
 * `rejected`: the tags rolled back from this app and environment (rejections.ts), when they
 * were read; promote reads them only once a decision would write (a run with nothing to do
 * stays at two requests) and decides again with them.
 */
export function decide(obs: Observation, req: DecideRequest, rejected: Rejection[] = []): Decision {
  const { mr, plan, scope } = obs;
  const what = `${req.image}:${req.tag ?? req.digest}`;
  if (!plan.diffs.length)
    return {
      action: 'noop',
      reason: 'already deployed',
      writes: [],
      say: `${scope.target} already runs ${what}`,
    };
  const rejection = req.allowRejected || req.rollback ? undefined : rejected.find((r) => r.tag === req.tag);
  if (rejection) {
    const reason = `${rejectionMessage(rejection)} (pass --allow-rejected to promote it anyway)`;
    return { action: 'refused', reason, writes: [], say: `refused: ${reason}` };
  }
  if (mr && obs.consistent && obs.described && sameProposal(obs.described, plan.record)) {
    return {
      action: 'noop',
      reason: 'already proposed',
      writes: mr.userNotesCount === 0 ? [{ kind: 'finish-comment', iid: mr.iid, commit: mr.sha }] : [],
      commit: mr.sha,
      say: `!${mr.iid} already proposes ${what}: ${mr.webUrl}`,
    };
  }
  // What the open MR proposes. When the description and the branch disagree, a race left
  // them so: the branch head's record is what would deploy, but a newer proposal in the
  // description was overwritten by an older run and must win.
  const proposed = !mr
    ? null
    : obs.consistent
      ? obs.described
      : newest(obs.branch?.record ?? null, obs.described);
  const refusal = replacesRollback(req, proposed, mr) ?? downgrade(req, plan.deployedTag, proposed, mr);
  if (refusal) {
    const repair = mr && proposed && !obs.consistent;
    return {
      action: 'refused',
      reason: refusal,
      writes: repair ? [{ kind: 'repair', iid: mr.iid, proposal: proposed }] : [],
      say: `refused: ${refusal}`,
    };
  }
  const writes: Write[] = [
    { kind: 'commit', expected: obs.head },
    mr ? { kind: 'update-mr', iid: mr.iid } : { kind: 'open-mr' },
  ];
  if (req.dryRun) {
    return {
      action: mr ? 'would-update' : 'would-create',
      reason: 'dry run: nothing written',
      writes,
      say: `dry run: would ${mr ? `update !${mr.iid}` : 'open a merge request'} on ${scope.branch}`,
    };
  }
  const foreign = obs.branch?.foreign ?? [];
  const discarded = foreign.length ? `; discarded foreign commits pushed by ${foreign.join(', ')}` : '';
  return {
    action: mr ? 'updated' : 'created',
    reason: mr ? `updated the open merge request${discarded}` : 'opened a merge request',
    writes,
    say: `committing ${what} to ${scope.branch}`,
  };
}

/** The record with the newer tag (the branch's when they cannot be ordered). */
export function newest(
  onBranch: PromotionRecord | null,
  described: PromotionRecord | null,
): PromotionRecord | null {
  if (!onBranch || !described) return onBranch ?? described;
  if (onBranch.tag && described.tag && described.image === onBranch.image) {
    return compareTags(described.tag, onBranch.tag) === 1 ? described : onBranch;
  }
  return onBranch;
}

/**
 * Why a promotion must not replace the open rollback, or null: the rollback is what the
 * environment needs now, and the tag it rolls back from is as good as rejected already.
 */
export function replacesRollback(
  req: DecideRequest,
  proposed: PromotionRecord | null,
  mr: MergeRequest | null,
): string | null {
  if (req.rollback || req.allowRejected || !proposed?.rollback) return null;
  return `!${mr?.iid} rolls ${proposed.app} back to ${proposed.tag ?? proposed.digest} in ${proposed.env} (${proposed.rollback.reason}); merge or close it first (or pass --allow-rejected to replace it)`;
}

/** Why this promotion would go backwards, or null. A rollback waives the guard (and says so in its record). */
export function downgrade(
  req: DecideRequest,
  deployed: string | undefined,
  proposed: PromotionRecord | null,
  mr: MergeRequest | null,
): string | null {
  if (req.allowDowngrade || req.rollback || !req.tag) return null;
  if (deployed && compareTags(req.tag, deployed) === -1) {
    return `${req.tag} is older than ${deployed}, which the target branch already runs (pass --allow-downgrade to roll back)`;
  }
  if (proposed?.tag && proposed.image === req.image && compareTags(req.tag, proposed.tag) === -1) {
    return `${req.tag} is older than ${proposed.tag}, already proposed in !${mr?.iid} (pass --allow-downgrade to replace it)`;
  }
  return null;
}

/**
 * Whether a newer promotion moved the branch after our commit (its commit is on top of
 * ours, since the move is a compare-and-swap) and has shown itself in the diff comment
 * already: then our run lost, and leaves that comment alone.
 */
export function overtakenBy(
  shown: PromotionRecord | null,
  commit: string,
  req: Pick<PromoteRequest, 'tag' | 'allowDowngrade' | 'rollback'>,
): boolean {
  return !!(
    shown?.tag &&
    req.tag &&
    shown.commit !== commit &&
    compareTags(req.tag, shown.tag) === -1 &&
    !req.allowDowngrade &&
    !req.rollback
  );
}
