// The feedback loop's entry points, observe → decide → apply: an agent's report, a timeout
// check, and (after a restart) which deployments are still waiting for one.
import { log } from '../base/log.js';
import type { GateContext } from '../gate/facts.js';
import { type RulesInForce, rulesInForce } from '../gate/trust.js';
import type { AgentObservation } from '../model/agent.js';
import { agentKey, durationMs } from '../policy/schema.js';
import { type Applied, type ApplyHooks, applyFeedback } from './apply.js';
import { decideFeedback, type FeedbackDecision } from './decide.js';
import { agentAppOf, observeFeedback, trackedBranch } from './observe.js';

export interface FeedbackRun {
  decision: FeedbackDecision;
  applied: Applied;
  /** when to check the timeout of what is still running (ISO), or null */
  recheckAt: string | null;
  /** GitLab requests this run made (retries included) */
  requests: number;
}

async function run(
  ctx: GateContext,
  project: string,
  agentApp: string,
  revision: string,
  o: AgentObservation | null,
  hooks: ApplyHooks,
  rules?: RulesInForce,
): Promise<FeedbackRun | null> {
  const before = ctx.gitlab.requests;
  const observed = await observeFeedback(ctx, project, agentApp, revision, o, rules);
  if (!observed) return null;
  const decision = decideFeedback(observed.facts);
  const applied = await applyFeedback(ctx, observed.facts, decision, observed.notes, hooks);
  log.info(
    {
      project,
      agentApp,
      revision,
      phase: o?.phase ?? 'timeout check',
      health: o?.health,
      deployments: decision.deployments.map((x) => `${x.environment}:${x.action}:${x.status}`),
      requests: ctx.gitlab.requests - before,
      ...(applied.rollbacks.length
        ? { rollbacks: applied.rollbacks.map((r) => `${r.environment}/${r.app}:${r.outcome}`) }
        : {}),
    },
    `${agentApp} at ${revision.slice(0, 8)}: ${decision.deployments.map((x) => `${x.environment} ${x.action === 'none' ? 'unchanged' : x.status}`).join(', ') || 'nothing to report'}`,
  );
  return { decision, applied, recheckAt: decision.recheckAt, requests: ctx.gitlab.requests - before };
}

/** One agent report, for the ops project `project`. */
export async function handleAgentReport(
  ctx: GateContext,
  project: string,
  o: AgentObservation,
  hooks: ApplyHooks = {},
  rules?: RulesInForce,
): Promise<FeedbackRun | null> {
  if (!o.revision) {
    log.info(
      { project, app: o.app },
      `${o.agent} ${o.app}: a report without a revision; nothing to attribute`,
    );
    return null;
  }
  return run(ctx, project, agentAppOf(o), o.revision, o, hooks, rules);
}

/** The timeout check of `revision` (deploy_timeout after its merge, no Healthy yet). */
export function checkDeployTimeout(
  ctx: GateContext,
  project: string,
  agentApp: string,
  revision: string,
  hooks: ApplyHooks = {},
  rules?: RulesInForce,
): Promise<FeedbackRun | null> {
  return run(ctx, project, agentApp, revision, null, hooks, rules);
}

/**
 * After a (re)start: what may still time out, read from GitLab rather than remembered. The
 * deployments of watched environments still running (due at created + deploy_timeout at
 * the latest; the check itself counts from the merge), and the head of each branch an agent
 * tracks that has no deployment yet (the agent may never have said a word: due now, and the
 * check sets its own time if it is not yet).
 */
export async function pendingDeployments(
  ctx: GateContext,
  project: string,
): Promise<Array<{ agentApp: string; revision: string; dueAt: string }>> {
  const rules = await rulesInForce(ctx.gitlab, project, ctx.policy);
  const p = rules.policy;
  if (!p || 'error' in p) return [];
  const watched = p.environments.filter((e) => agentKey(e));
  if (!watched.length) return [];
  const recent = await ctx.gitlab.listDeployments(project, { orderBy: 'id', sort: 'desc', perPage: 100 });
  const now = (ctx.now?.() ?? new Date()).toISOString();
  const out = new Map<string, { agentApp: string; revision: string; dueAt: string }>();
  for (const d of recent) {
    if (d.status !== 'running' && d.status !== 'created') continue;
    const env = watched.find((e) => d.environment.startsWith(`${e.name}/`));
    if (!env) continue;
    const agentApp = agentKey(env)!;
    const dueAt = new Date(Date.parse(d.createdAt) + durationMs(env.deploy_timeout)).toISOString();
    out.set(`${agentApp} ${d.sha}`, { agentApp, revision: d.sha, dueAt });
  }
  for (const env of watched) {
    const agentApp = agentKey(env)!;
    const head = await ctx.gitlab.branch(project, trackedBranch(env, rules.defaultBranch));
    if (!head || out.has(`${agentApp} ${head.head}`)) continue;
    if (recent.some((d) => d.sha === head.head && d.environment.startsWith(`${env.name}/`))) continue;
    out.set(`${agentApp} ${head.head}`, { agentApp, revision: head.head, dueAt: now });
  }
  return [...out.values()];
}
