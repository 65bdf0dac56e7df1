// Environment chains (`promotion:` in the policy): observe → decide → apply, from GitLab facts
// each time. serve runs this after a feedback run wrote a successful deployment, at the
// earliest time a wait names (the soak's end, a freeze's end), and once per project when it
// starts; any of them may run twice, or on two replicas, and open one MR.
import { log } from '../base/log.js';
import type { GateContext } from '../gate/facts.js';
import type { RulesInForce } from '../gate/trust.js';
import { applyChain, type Opened } from './apply.js';
import { type ChainDecision, decideChain, nextCheck } from './decide.js';
import { observeChain } from './observe.js';

export { type ChainDecision, decideChain, nextCheck } from './decide.js';

export interface ChainRun {
  decisions: ChainDecision[];
  opened: Opened[];
  /** when to run again without an event (ISO), or null */
  nextAt: string | null;
  skipped: string | null;
  requests: number;
}

/** One line for a decision. */
export function describeDecision(d: ChainDecision): string {
  const what = `${d.app} ${d.from} → ${d.to}`;
  if ('open' in d) return `${what}: promote ${d.open.tag} (${d.reason})`;
  if ('wait' in d) return `${what}: waiting: ${d.wait}`;
  if ('retract' in d) return `${what}: close !${d.retract.iid} (${d.retract.tag}): ${d.retract.reason}`;
  return `${what}: ${d.none}`;
}

export async function runChain(
  ctx: GateContext,
  project: string,
  o: { rules?: RulesInForce; dryRun?: boolean } = {},
): Promise<ChainRun> {
  const before = ctx.gitlab.requests;
  const observed = await observeChain(ctx, project, o.rules);
  const decisions = decideChain(observed.facts);
  const policySteps = observed.facts.steps.map((s) => s.step);
  const opened = o.dryRun ? [] : await applyChain(ctx, project, decisions, policySteps);
  for (const d of decisions)
    log.info(
      { project, from: d.from, to: d.to, app: d.app, ...('wait' in d && d.until ? { until: d.until } : {}) },
      `chain: ${describeDecision(d)}`,
    );
  for (const x of opened)
    if ('result' in x)
      log.info(
        { project, app: x.decision.app, to: x.decision.to, action: x.result.action, mr: x.result.mr?.iid },
        `chain: ${x.decision.app} ${x.decision.open.tag} → ${x.decision.to}: ${x.result.action} (${x.result.reason})`,
      );
  if (observed.skipped) log.debug({ project, reason: observed.skipped }, 'chain: nothing to look at');
  return {
    decisions,
    opened,
    nextAt: nextCheck(decisions),
    skipped: observed.skipped,
    requests: ctx.gitlab.requests - before,
  };
}
