// Apply: each `open` decision becomes a promotion into `to`, by promote itself, so that the
// chain's MR is an ordinary one: the same branch (gitops-bot/<to>/<app>), the same record,
// the same idempotence (noop when already proposed, compare-and-swap on the branch when two
// runs race), the same refusals (a rejected tag, a downgrade), and the gate judges it under
// `to`'s rules like any other.
import { log } from '../base/log.js';
import type { GateContext } from '../gate/facts.js';
import { alertOnce } from '../gate/notify.js';
import { readRecordComment } from '../model/record.js';
import { type PromoteResult, promote } from '../promote/promote.js';
import { PromoteError } from '../promote/types.js';
import type { ChainDecision, ChainStep } from './decide.js';

export type Opened = {
  decision: Extract<ChainDecision, { open: unknown }>;
} & ({ result: PromoteResult } | { error: string });

export async function applyChain(
  ctx: GateContext,
  project: string,
  decisions: ChainDecision[],
  steps: ChainStep[],
): Promise<Opened[]> {
  const out: Opened[] = [];
  for (const d of decisions) {
    if ('retract' in d) {
      await retract(ctx, project, d);
      continue;
    }
    if (!('open' in d)) continue;
    const step = steps.find((s) => s.from === d.from && s.to === d.to)!;
    try {
      const result = await promote(
        {
          project,
          env: d.to,
          app: d.app,
          image: d.open.image,
          tag: d.open.tag,
          ...(d.open.digest ? { digest: d.open.digest } : {}),
          files: d.open.files,
          ...(d.open.targetBranch ? { targetBranch: d.open.targetBranch } : {}),
          chain: { from: d.from, since: d.open.since },
          assignees: step.assignees,
          reviewers: step.reviewers,
          // healthy in `from` means the registry served it there: not asked again
          verifyImage: false,
        },
        { gitlab: ctx.gitlab },
      );
      out.push({ decision: d, result });
    } catch (e) {
      // one app's refusal (an assignee unknown, a file gone) does not stop the others
      if (!(e instanceof PromoteError)) throw e;
      log.warn(
        { project, from: d.from, to: d.to, app: d.app, tag: d.open.tag, error: e.message },
        `chain ${d.from} → ${d.to}: cannot promote ${d.app} ${d.open.tag}: ${e.message}`,
      );
      out.push({ decision: d, error: e.message });
    }
  }
  return out;
}

/**
 * Closes the chain's MR of a tag rolled back since, with a comment saying why: only when the
 * MR, read again now, is still open and still proposes that tag (a newer one may have
 * replaced it meanwhile). Closed, it is not proposed again (decide.ts closedMr).
 */
async function retract(
  ctx: GateContext,
  project: string,
  d: Extract<ChainDecision, { retract: unknown }>,
): Promise<void> {
  const { iid, tag, reason } = d.retract;
  const mr = await ctx.gitlab.mergeRequest(project, iid);
  if (mr.state !== 'opened' || readRecordComment(mr.description)?.tag !== tag) return;
  await alertOnce(
    ctx,
    project,
    { iid },
    `chain-retract ${tag}`,
    `⛔ **gitops-bot closed this merge request**: ${reason}. The chain ${d.from} → ${d.to} does not deploy a tag rolled back since it was proposed; a newer tag healthy in ${d.from} gets a new one.`,
  );
  await ctx.gitlab.updateMergeRequest(project, iid, { stateEvent: 'close' });
  log.warn({ project, iid, tag, from: d.from, to: d.to }, `chain: closed !${iid} (${tag}): ${reason}`);
}
