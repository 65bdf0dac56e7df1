// Rejected tags: a tag rolled back from an environment is refused there afterwards
// (`promote` exits 5 unless --allow-rejected). The facts are GitLab's: the merged MRs of
// gitops-bot's branch for the app and environment, newest merge first, and the records in
// them. A rollback's record names the tag it rolled back from; a later merged promotion of
// that very tag (someone passed --allow-rejected) lifts the rejection. Newer tags are never
// affected.
//
// Trust: a record in a description can be edited by a Developer of the ops project, so a
// rejection is a guard against accidents, not against Developers (who may pass
// --allow-rejected anyway). What it steers stays under the gate: a lifted rejection lets the
// chain propose a tag to `to`, whose approval rules still decide; an added one makes a
// rollback skip a tag, and the rollback rules apply only to a target GitLab's Deployments
// show healthy.
import type { MergeRequest } from '../gitlab/client.js';
import { readRecordComment } from '../model/record.js';

export interface Rejection {
  tag: string;
  env: string;
  app: string;
  /** when the rollback merged (ISO) */
  at: string | null;
  reason: string;
  /** the rollback MR */
  iid: number;
  webUrl: string;
}

/** Merged MRs as rejections reads them: newest merge first (GitLab.mergedMergeRequests). */
export type MergedMergeRequest = Pick<MergeRequest, 'iid' | 'webUrl' | 'description'> & {
  mergedAt: string | null;
};

/** The tags rejected in this app and environment, from its merged MRs. Pure. */
export function rejections(merged: MergedMergeRequest[]): Rejection[] {
  const decided = new Set<string>();
  const out: Rejection[] = [];
  for (const mr of merged) {
    const r = readRecordComment(mr.description);
    if (!r) continue;
    if (r.rollback?.fromTag && !decided.has(r.rollback.fromTag)) {
      decided.add(r.rollback.fromTag);
      out.push({
        tag: r.rollback.fromTag,
        env: r.env,
        app: r.app,
        at: mr.mergedAt,
        reason: r.rollback.reason,
        iid: mr.iid,
        webUrl: mr.webUrl,
      });
    }
    // a promotion of the tag merged after (newer in this list than) any rollback from it
    if (r.tag && !r.rollback) decided.add(r.tag);
  }
  return out;
}

/** "ci-35 was rolled back from production at 12:10: Degraded: ImagePullBackOff" */
export function rejectionMessage(r: Rejection): string {
  const at = r.at ? ` at ${r.at.slice(11, 16)}` : '';
  return `${r.tag} was rolled back from ${r.env}${at} (!${r.iid}): ${r.reason}`;
}
