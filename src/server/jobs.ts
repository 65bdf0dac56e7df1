// The work behind webhook deliveries: one queue per merge request (its events stay in
// order), at most `concurrency` jobs at once. Jobs are plain data so that they can cross to
// a worker thread, where `serve` runs them away from the thread that acknowledges deliveries.
// The runner only runs them and reports each one's start and end; timeouts, failure counts
// and alerts are the webhook server's (webhook.ts), the same for both ways of running.
import { log } from '../base/log.js';
import { runChain } from '../chain/index.js';
import {
  checkDeployTimeout,
  type FeedbackRun,
  handleAgentReport,
  pendingDeployments,
} from '../feedback/loop.js';
import { agentAppOf, trackedBranch, watchedBy } from '../feedback/observe.js';
import { nextFreezeEdge } from '../gate/freeze-edges.js';
import { acceptBypass, afterMerge, afterPushRead, type GateContext, gate } from '../gate/gate.js';
import { deployRefs, POLICY_FILE, parse, type RulesInForce, rulesInForce } from '../gate/trust.js';
import type { AgentObservation } from '../model/agent.js';
import { governedBranches } from '../policy/evaluate.js';
import { agentKey, DEFAULT_POLICY, durationMs, type Policy } from '../policy/schema.js';
import { ProjectDirectory } from './projects.js';
import { affectedMergeRequests, listingFor, needsRulesInForce, type PushFacts } from './push-scope.js';

export type JobSpec =
  | { type: 'gate'; project: string; iid: number }
  | { type: 'merged'; project: string; iid: number }
  /** `before`: the push's previous head as the delivery gives it ('' when it gives none) */
  | { type: 'push'; project: string; branch: string; before?: string; after: string }
  /** `/gitops-bot accept <sha>`: a bypass on the target branch is accepted */
  | { type: 'accept'; project: string; sha: string }
  /** read the rules and set the timer for their next freeze edge */
  | { type: 'schedule'; project: string }
  /** a freeze edge passed: re-evaluate the open MRs into these branches */
  | { type: 'edge'; project: string; branches: string[] }
  /** an in-cluster agent's report (POST /argocd, /flux, or the Argo CD poller) */
  | { type: 'agent'; project: string; observation: AgentObservation }
  /** deploy_timeout may have passed for `revision` of `agentApp` (`argocd:<name>`) */
  | { type: 'deploy-check'; project: string; agentApp: string; revision: string }
  /** after a start: the deployments still running get their timeout timers again */
  | { type: 'deploy-resume'; project: string }
  /**
   * the environment chains (`promotion:`): after a successful deployment, at the time a
   * wait named (the soak's end, a freeze's end), and at start; stateless, so any repeat is safe
   */
  | { type: 'chain'; project: string };

/** MRs whose changed paths are remembered (for deciding what a push affects), per runner. */
const REMEMBERED_MRS = 50_000;
/** setTimeout's longest delay; a later edge is reached by scheduling again. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** after an edge before re-evaluating, so that the verdict's clock is past it */
const EDGE_MARGIN_MS = 1000;
/** a schedule that could not read the rules tries again after this, doubling to the max */
const SCHEDULE_RETRY_MS = 60_000;
const SCHEDULE_RETRY_MAX_MS = 3_600_000;
const NULL_SHA = /^0+$/;

export interface JobEvents {
  /** a job the runner queued itself (a follow-up), with the id it gave it */
  added(id: string, job: JobSpec): void;
  /** it got a slot and runs now */
  started(id: string): void;
  /** it finished; `error` is why it failed (undefined: it succeeded) */
  ended(id: string, error?: string): void;
  verdict(state: string): void;
  /** a deployment failed (degraded, sync_failed, timeout): alerted once per revision */
  deployFailure?(environment: string, reason: string): void;
}

/** after a timeout falls due before checking it, so that the check's clock is past it */
const DEPLOY_MARGIN_MS = 1000;
/**
 * How long agent reports reuse the rules a report read (a burst of notifications reads them
 * once); any push to the project forgets them at once, as a policy change comes by a push.
 */
const AGENT_RULES_TTL_MS = 30_000;

export function jobKey(job: JobSpec): string {
  if (job.type === 'push') return `${job.project}:push:${job.branch}`;
  if (job.type === 'accept') return `${job.project}:accept`;
  if (job.type === 'schedule' || job.type === 'edge' || job.type === 'deploy-resume' || job.type === 'chain')
    return `${job.project}:${job.type}`;
  // an agent application's reports and timeout checks, in order, one at a time
  if (job.type === 'agent') return `${job.project}:agent:${agentAppOf(job.observation)}`;
  if (job.type === 'deploy-check') return `${job.project}:agent:${job.agentApp}`;
  return `${job.project}!${job.iid}`;
}

/** One line naming the job's project and MR, branch or commit (for logs and alerts). */
export function describeJob(job: JobSpec): string {
  if (job.type === 'push') return `push to ${job.branch} of ${job.project} (${job.after.slice(0, 8)})`;
  if (job.type === 'accept') return `accept ${job.sha.slice(0, 12)} in ${job.project}`;
  if (job.type === 'schedule') return `freeze schedule of ${job.project}`;
  if (job.type === 'edge') return `freeze edge on ${job.branches.join(', ')} of ${job.project}`;
  if (job.type === 'agent') {
    const o = job.observation;
    return `${o.agent} report on ${o.app} at ${o.revision?.slice(0, 8) ?? 'no revision'} for ${job.project}`;
  }
  if (job.type === 'deploy-check')
    return `deploy timeout of ${job.agentApp} at ${job.revision.slice(0, 8)} in ${job.project}`;
  if (job.type === 'deploy-resume') return `deployments waiting in ${job.project}`;
  if (job.type === 'chain') return `environment chains of ${job.project}`;
  return `${job.type === 'gate' ? 'gate of' : 'after the merge of'} ${job.project}!${job.iid}`;
}

/**
 * `idPrefix` keeps the ids of follow-ups unique across runners (a restarted worker starts
 * counting again).
 */
export function createJobRunner(ctx: GateContext, concurrency: number, events: JobEvents, idPrefix = 'f') {
  const now = () => ctx.now?.() ?? new Date();
  // What each MR changes, as its last gate here read it at its head: a push to its target
  // re-evaluates it only if the push changes one of the same manifests. Keyed by head, so a
  // new push to the MR (a new head) makes it unknown again, and unknown means re-evaluate.
  const mrPaths = new Map<string, { sha: string; paths: string[] }>();
  const remember = (project: string, iid: number, sha: string, paths: string[]) => {
    const key = `${project}!${iid}`;
    mrPaths.delete(key);
    mrPaths.set(key, { sha, paths });
    if (mrPaths.size > REMEMBERED_MRS) mrPaths.delete(mrPaths.keys().next().value as string);
  };
  const known = (project: string, iid: number, sha: string): string[] | null => {
    const m = mrPaths.get(`${project}!${iid}`);
    return m && m.sha === sha ? m.paths : null;
  };
  // One freeze timer per project; the projects it was set for (a job for any other project
  // schedules it, so that serving without --project times the projects it hears of).
  const timers = new Map<string, NodeJS.Timeout>();
  const scheduled = new Set<string>();
  const scheduleFailures = new Map<string, number>();
  // Timeout checks of deployments, by project, agent application and revision.
  const deployTimers = new Map<string, NodeJS.Timeout>();
  // The next chain run of each project without an event (a soak's or a freeze's end).
  const chainTimers = new Map<string, NodeJS.Timeout>();
  const chainFailures = new Map<string, number>();
  const agentRules = new Map<string, { until: number; rules: Promise<RulesInForce> }>();
  const rulesFor = (project: string): Promise<RulesInForce> => {
    const hit = agentRules.get(project);
    if (hit && hit.until > Date.now()) return hit.rules;
    const rules = rulesInForce(ctx.gitlab, project, ctx.policy);
    rules.catch(() => agentRules.delete(project));
    agentRules.set(project, { until: Date.now() + AGENT_RULES_TTL_MS, rules });
    return rules;
  };
  // Pushes forget the rules (a policy change comes by a push); one whose job read the rules
  // after it, and moved nothing itself, leaves them for the agent's reports that follow (a
  // merge's first report would read them again otherwise) unless a newer push came since.
  const rulesGeneration = new Map<string, number>();
  const forgetAgentRules = (project: string): number => {
    agentRules.delete(project);
    const g = (rulesGeneration.get(project) ?? 0) + 1;
    rulesGeneration.set(project, g);
    return g;
  };
  const keepAgentRules = (project: string, generation: number, rules: RulesInForce) => {
    if (rulesGeneration.get(project) !== generation) return;
    agentRules.set(project, { until: Date.now() + AGENT_RULES_TTL_MS, rules: Promise.resolve(rules) });
  };
  const hooks = {
    onDeployFailure: (environment: string, reason: string) => events.deployFailure?.(environment, reason),
  };
  let stopped = false;
  const queues = new Map<string, Promise<void>>();
  let running = 0;
  let seq = 0;
  const waiting: Array<() => void> = [];
  const slot = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (running >= concurrency) await new Promise<void>((r) => waiting.push(r));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
  // Without --project, a delivery names its project by id only (its path is the sender's
  // word): the path is GitLab's answer for that id.
  let directory: ProjectDirectory | null = null;
  const paths = new Map<string, Promise<string>>();
  const canonical = (project: string): Promise<string> => {
    if (!/^\d+$/.test(project)) return Promise.resolve(project);
    directory ??= new ProjectDirectory(ctx.gitlab.opts);
    let p = paths.get(project);
    if (!p) {
      p = directory.identity(project).then((x) => x.path);
      p.catch(() => paths.delete(project));
      paths.set(project, p);
    }
    return p;
  };

  async function run(spec: JobSpec): Promise<void> {
    const job = { ...spec, project: await canonical(spec.project) } as JobSpec;
    if (
      job.type !== 'schedule' &&
      job.type !== 'deploy-resume' &&
      job.type !== 'chain' &&
      !scheduled.has(job.project)
    ) {
      scheduled.add(job.project);
      enqueue({ type: 'schedule', project: spec.project });
    }
    if (job.type === 'gate') {
      const r = await gate(ctx, job.project, job.iid, { merge: true });
      remember(job.project, job.iid, r.sha, r.changedPaths);
      events.verdict(r.verdict.state);
    } else if (job.type === 'merged') {
      await afterMerge(ctx, job.project, job.iid);
    } else if (job.type === 'accept') {
      await acceptBypass(ctx, job.project, job.sha);
    } else if (job.type === 'push') {
      await push(job, spec.project);
    } else if (job.type === 'schedule') {
      scheduled.add(job.project);
      await schedule(job.project, spec.project);
    } else if (job.type === 'agent') {
      const rules = await rulesFor(job.project);
      const r = await handleAgentReport(ctx, job.project, job.observation, hooks, rules);
      recheck(spec.project, agentAppOf(job.observation), job.observation.revision, r);
      chainAfter(spec.project, r, rules);
    } else if (job.type === 'deploy-check') {
      const rules = await rulesFor(job.project);
      const r = await checkDeployTimeout(ctx, job.project, job.agentApp, job.revision, hooks, rules);
      recheck(spec.project, job.agentApp, job.revision, r);
      chainAfter(spec.project, r, rules);
    } else if (job.type === 'chain') {
      await chain(job.project, spec.project);
    } else if (job.type === 'deploy-resume') {
      for (const p of await pendingDeployments(ctx, job.project))
        setDeployTimer(spec.project, p.agentApp, p.revision, Date.parse(p.dueAt) - now().getTime());
    } else {
      await edge(job, spec.project);
    }
  }

  /**
   * After a feedback run: a deployment that became successful may be the start of a soak
   * (or its tag may move on at once), so the chains are decided again. Only for a run that
   * wrote one (a repeated report writes nothing); the rules go along when the policy has steps.
   */
  function chainAfter(project: string, r: FeedbackRun | null, rules: RulesInForce): void {
    const p = rules.policy;
    if (!r || !p || 'error' in p || !p.promotion.length) return;
    if (r.decision.deployments.some((d) => d.action !== 'none' && d.status === 'success'))
      enqueue({ type: 'chain', project });
  }

  /**
   * The chains of a project, then the timer to the earliest wait they named. When GitLab
   * cannot be read, it tries again later (1 minute, doubling to an hour) as the freeze
   * schedule does, rather than failing as a job: the soak it may be timing must not be lost.
   */
  async function chain(project: string, id: string): Promise<void> {
    try {
      const r = await runChain(ctx, project, { rules: await rulesFor(project) });
      chainFailures.delete(project);
      setChainTimer(id, r.nextAt);
    } catch (e) {
      const n = (chainFailures.get(project) ?? 0) + 1;
      chainFailures.set(project, n);
      const ms = Math.min(SCHEDULE_RETRY_MAX_MS, SCHEDULE_RETRY_MS * 2 ** (n - 1));
      log.warn(
        { project, error: (e as Error).message, retryInMs: ms },
        `environment chains of ${project}: ${(e as Error).message}; trying again in ${ms / 1000} s`,
      );
      setChainTimer(id, new Date(now().getTime() + ms).toISOString());
    }
  }

  /** Sets the project's next chain run to `at` (replacing the one it had); null: none. */
  function setChainTimer(project: string, at: string | null): void {
    clearTimeout(chainTimers.get(project));
    chainTimers.delete(project);
    if (stopped || !at) return;
    const ms = Date.parse(at) - now().getTime();
    const timer = setTimeout(
      () => {
        chainTimers.delete(project);
        if (!stopped) enqueue({ type: 'chain', project });
      },
      Math.min(Math.max(0, ms) + EDGE_MARGIN_MS, MAX_TIMER_MS),
    );
    timer.unref();
    chainTimers.set(project, timer);
  }

  /** Sets the timeout check of `revision` to run in `ms` (replacing the one it had). */
  function setDeployTimer(project: string, agentApp: string, revision: string, ms: number): void {
    const key = `${project} ${agentApp} ${revision}`;
    clearTimeout(deployTimers.get(key));
    deployTimers.delete(key);
    if (stopped) return;
    const timer = setTimeout(
      () => {
        deployTimers.delete(key);
        if (!stopped) enqueue({ type: 'deploy-check', project, agentApp, revision });
      },
      Math.min(Math.max(0, ms) + DEPLOY_MARGIN_MS, MAX_TIMER_MS),
    );
    timer.unref();
    deployTimers.set(key, timer);
  }

  /** After a report or a check: the next timeout check, while something is still running. */
  function recheck(project: string, agentApp: string, revision: string | null, r: FeedbackRun | null): void {
    if (!revision) return;
    const key = `${project} ${agentApp} ${revision}`;
    if (!r?.recheckAt) {
      clearTimeout(deployTimers.get(key));
      deployTimers.delete(key);
      return;
    }
    setDeployTimer(project, agentApp, revision, Date.parse(r.recheckAt) - now().getTime());
  }

  /**
   * A push to a branch an agent tracks: the agent has deploy_timeout to report the new head
   * Healthy (it may never report at all, which is what the timeout is for).
   */
  function watchLanding(
    project: string,
    policy: Policy | null,
    defaultBranch: string,
    branch: string,
    after: string,
  ) {
    if (!policy || NULL_SHA.test(after) || !/^[0-9a-f]{40}$/.test(after)) return;
    for (const env of policy.environments) {
      const agentApp = agentKey(env);
      if (!agentApp || trackedBranch(env, defaultBranch) !== branch || !watchedBy(policy, agentApp).length)
        continue;
      setDeployTimer(project, agentApp, after, durationMs(env.deploy_timeout));
    }
  }

  /**
   * A push: deploy_ref's walk (afterPush), then the open MRs whose verdict the push can
   * change (push-scope.ts decides). What changed is GitLab's answer (the compare between
   * the push's before and after), never the delivery's `commits[].modified`: that list is
   * the sender's word and stops at 20 commits. The delivery's `before` is GitLab's record of
   * the ref before this push, and each push's job compares its own before and after (in
   * order, one job per branch at a time), so a run of pushes is covered by its compares.
   * No other commit may stand in for `before`: a straight compare from an older one can show
   * less (X → Y → X shows nothing from X). A missing or malformed one, or a compare that
   * fails or overflows, counts as "anything may have changed".
   */
  async function push(job: Extract<JobSpec, { type: 'push' }>, id: string): Promise<void> {
    const gl = ctx.gitlab;
    const generation = forgetAgentRules(job.project);
    const defaultBranch = await gl.projectDefaultBranch(job.project);
    const headText = ctx.policy ? null : await gl.rawFile(job.project, POLICY_FILE, defaultBranch);
    const comparable =
      /^[0-9a-f]{40}$/.test(job.before ?? '') && !NULL_SHA.test(job.before!) && !NULL_SHA.test(job.after);
    const [read, changedPaths] = await Promise.all([
      afterPushRead(ctx, job.project, job.branch, job.after, { defaultBranch, headText }),
      comparable ? changedBetween(job.project, job.branch, job.before!, job.after) : Promise.resolve(null),
    ]);
    const headPolicy = ctx.policy ? ctx.policy.policy : parse(headText);
    const factsFrom = (rules: RulesInForce | null): PushFacts => {
      // The rules at the default branch's head, and in force (strict mode: they may be the
      // deploy ref's, which govern until the head's reach it).
      const policies = [headPolicy, ...(rules ? [rules.policy] : [])];
      return {
        branch: job.branch,
        changedPaths,
        defaultBranch,
        governed: [
          ...new Set(
            policies.flatMap((p) =>
              p && 'error' in p ? [] : governedBranches(p ?? DEFAULT_POLICY, defaultBranch),
            ),
          ),
        ],
        deployRefs: [...new Set(policies.flatMap((p) => deployRefs(p, defaultBranch).map((d) => d.ref)))],
      };
    };
    let rules = read.rules;
    let facts = factsFrom(rules);
    // afterPush reads the rules in force only for a branch the rules deploy from; for another
    // target, the head's rules alone would decide whether it is governed. In strict mode the
    // deploy ref's rules may govern it still: read them (1-3 requests) when that matters.
    if (
      !rules &&
      !ctx.policy &&
      deployRefs(headPolicy, defaultBranch).some((d) => d.branch === defaultBranch) &&
      needsRulesInForce(facts)
    ) {
      rules = await rulesInForce(gl, job.project, undefined, { defaultBranch, headText });
      facts = factsFrom(rules);
    }
    if (rules && read.outcome === 'none') keepAgentRules(job.project, generation, rules);
    const inForce = rules ? rules.policy : headPolicy;
    watchLanding(id, inForce && !('error' in inForce) ? inForce : null, defaultBranch, job.branch, job.after);
    const listing = listingFor(facts);
    if (listing.list === 'none') return;
    if (listing.list === 'project') enqueue({ type: 'schedule', project: id });
    const open = await gl.openMergeRequestList(
      job.project,
      listing.list === 'target' ? job.branch : undefined,
    );
    const affected = affectedMergeRequests(
      facts,
      open.map((m) => ({ ...m, changedPaths: known(job.project, m.iid, m.sha) })),
    );
    log.info(
      {
        project: job.project,
        branch: job.branch,
        open: open.length,
        affected: affected.length,
        reason: listing.reason,
      },
      `push to ${job.branch}: ${affected.length} of ${open.length} open MR(s) to evaluate again`,
    );
    for (const a of affected) enqueue({ type: 'gate', project: id, iid: a.iid });
  }

  /**
   * The paths the push changed (GitLab's compare), or null: not known. A compare that still
   * fails after the client's retries fails open (the push may have changed anything, so
   * its MRs are evaluated again) rather than failing the job, which would re-evaluate none.
   */
  async function changedBetween(
    project: string,
    branch: string,
    before: string,
    after: string,
  ): Promise<string[] | null> {
    try {
      const paths = await ctx.gitlab.pathsBetween(project, before, after);
      if (paths === null)
        log.info({ project, branch }, `push to ${branch}: GitLab's compare is truncated or unknown`);
      return paths;
    } catch (e) {
      log.warn(
        { project, branch, error: (e as Error).message },
        `push to ${branch}: cannot compare ${before.slice(0, 8)}..${after.slice(0, 8)}; anything may have changed`,
      );
      return null;
    }
  }

  /** Sets the project's one timer (replacing the one it had) to enqueue `job` after `ms`. */
  function setTimer(project: string, ms: number, job: () => JobSpec): void {
    clearTimeout(timers.get(project));
    timers.delete(project);
    if (stopped) return;
    const timer = setTimeout(
      () => {
        timers.delete(project);
        if (!stopped) enqueue(job());
      },
      Math.min(ms, MAX_TIMER_MS),
    );
    // The timer alone must not keep a process alive (serve's listener does).
    timer.unref();
    timers.set(project, timer);
  }

  /**
   * Reads the rules in force and sets the project's timer to their next freeze edge. When
   * GitLab cannot be read, it tries again later (1 minute, doubling to an hour) rather than
   * failing as a job: no MR's work failed, and the next try may well succeed.
   */
  async function schedule(project: string, id: string): Promise<void> {
    let rules: Awaited<ReturnType<typeof rulesInForce>>;
    try {
      rules = await rulesInForce(ctx.gitlab, project, ctx.policy);
      scheduleFailures.delete(project);
    } catch (e) {
      const n = (scheduleFailures.get(project) ?? 0) + 1;
      scheduleFailures.set(project, n);
      const ms = Math.min(SCHEDULE_RETRY_MAX_MS, SCHEDULE_RETRY_MS * 2 ** (n - 1));
      log.warn(
        { project, error: (e as Error).message, retryInMs: ms },
        `freeze schedule of ${project}: cannot read the rules; trying again in ${ms / 1000} s`,
      );
      setTimer(project, ms, () => ({ type: 'schedule', project: id }));
      return;
    }
    const at = now().getTime();
    const next = nextFreezeEdge(rules.policy, rules.defaultBranch, new Date(at));
    if (!next) {
      clearTimeout(timers.get(project));
      timers.delete(project);
      return;
    }
    const wait = next.at.getTime() - at + EDGE_MARGIN_MS;
    // nextFreezeEdge looks 8 days ahead, well inside setTimeout's ~24.8 days, so today the
    // timer always reaches the edge itself; this guards a longer horizon (the timer is
    // capped at MAX_TIMER_MS: past it, schedule again rather than fire the edge early).
    // No branches: windows that change no verdict within the horizon; only look again then.
    setTimer(project, wait, () =>
      wait > MAX_TIMER_MS || !next.branches.length
        ? { type: 'schedule', project: id }
        : { type: 'edge', project: id, branches: next.branches },
    );
    log.debug({ project, at: next.at.toISOString(), branches: next.branches }, 'next freeze edge');
  }

  /** A freeze edge passed: the open MRs into its branches, evaluated again; then the next edge. */
  async function edge(job: Extract<JobSpec, { type: 'edge' }>, id: string): Promise<void> {
    const gl = ctx.gitlab;
    const open =
      job.branches.length === 1
        ? await gl.openMergeRequestList(job.project, job.branches[0])
        : (await gl.openMergeRequestList(job.project)).filter((m) => job.branches.includes(m.targetBranch));
    log.info(
      { project: job.project, branches: job.branches, affected: open.length },
      `freeze edge on ${job.branches.join(', ')}: ${open.length} open MR(s) to evaluate again`,
    );
    for (const m of open) enqueue({ type: 'gate', project: id, iid: m.iid });
    enqueue({ type: 'schedule', project: id });
  }

  /** `id`: the caller's id for the job (it reported it as added); else it is a follow-up. */
  function enqueue(job: JobSpec, id?: string): void {
    if (id === undefined) {
      id = `${idPrefix}${++seq}`;
      events.added(id, job);
    }
    const jobId = id;
    const key = jobKey(job);
    const prev = queues.get(key) ?? Promise.resolve();
    const next = prev
      .then(() =>
        slot(() => {
          events.started(jobId);
          return run(job);
        }),
      )
      .then(
        () => events.ended(jobId),
        (e: Error) => events.ended(jobId, e?.message ?? String(e)),
      )
      .finally(() => {
        if (queues.get(key) === next) queues.delete(key);
      });
    queues.set(key, next);
  }

  /** Clears the freeze timers (the runner takes no more timed work). */
  function stop(): void {
    stopped = true;
    for (const t of timers.values()) clearTimeout(t);
    timers.clear();
    for (const t of deployTimers.values()) clearTimeout(t);
    deployTimers.clear();
    for (const t of chainTimers.values()) clearTimeout(t);
    chainTimers.clear();
  }

  return { enqueue, stop };
}
