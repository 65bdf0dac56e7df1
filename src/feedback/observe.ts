// The facts decideFeedback needs, read from GitLab. The agent's report says only which
// application, which revision and what it saw; which environments, apps and merge requests
// that revision deploys comes from what a Developer cannot write: the rules on the protected
// default branch (as the gate reads them), the revision's place on the branch the agent
// tracks, and the bot's promotion records in that branch's history.
//
// Reads for one report about a revision that deploys one bot MR (bench/feedback counts them):
// the deployments (1); one compare from the last successful deployment to the tracked branch
// (1), which says both that the revision is on the branch now and which commits it brings;
// the MR's notes (1), only for a report that can change the MR's Deployment section (an
// outcome or a timeout check; not a sync under way). The first report of a merge reads the merged MR too (1), and the first
// report of an environment that never deployed reads the revision's first parent (1): both
// are immutable and kept in a bounded in-process cache, as is a compare between two fixed
// SHAs (the fallback below). Never cached: whether the revision is on the branch (a force-push
// can take it away), the deployments, the notes. The rules come from the caller (serve keeps
// them between pushes) or cost 2-4 more.
import { log } from '../base/log.js';
import type { GateContext } from '../gate/facts.js';
import { type RulesInForce, rulesInForce } from '../gate/trust.js';
import type { DeploymentInfo, Note } from '../gitlab/client.js';
import { stickyNotes } from '../gitlab/sticky.js';
import type { AgentObservation } from '../model/agent.js';
import { DIFF_MARKER } from '../model/markers.js';
import { readRecordTrailer } from '../model/record.js';
import { agentKey, durationMs, type Environment } from '../policy/schema.js';
import {
  type FeedbackFacts,
  type OpsMergeRequest,
  readSection,
  type WatchedEnvironment,
  writesSection,
} from './decide.js';

export interface Observed {
  facts: FeedbackFacts;
  /** the notes of each ops MR as read (apply edits the sticky comment among them) */
  notes: Map<number, Note[]>;
}

const MERGE_REF = /^See merge request (\S+?)!(\d+)\s*$/m;

/** The branch an environment's agent tracks: its deploy_ref, else the branch it governs. */
export function trackedBranch(env: Environment, defaultBranch: string): string {
  return env.deploy_ref ?? env.match.target_branches?.[0] ?? defaultBranch;
}

/** The policy environments watched by `agentApp` (`argocd:<name>` / `flux:<ns>/<name>`). */
export function watchedBy(policy: unknown, agentApp: string): Environment[] {
  if (!policy || typeof policy !== 'object' || 'error' in policy) return [];
  return (policy as { environments: Environment[] }).environments.filter((e) => agentKey(e) === agentApp);
}

export const agentAppOf = (o: Pick<AgentObservation, 'agent' | 'app'>) => `${o.agent}:${o.app}`;

/**
 * Reads the facts about `revision` for the agent application `agentApp`. `observation`
 * null: a timeout check. Null when the policy names no environment for the application (an
 * unknown app: nothing to write).
 */
export async function observeFeedback(
  ctx: GateContext,
  project: string,
  agentApp: string,
  revision: string,
  observation: AgentObservation | null,
  /** the rules in force, when the caller read them a moment ago (serve keeps them briefly) */
  known?: RulesInForce,
): Promise<Observed | null> {
  const gl = ctx.gitlab;
  const rules = known ?? (await rulesInForce(gl, project, ctx.policy));
  const envs = watchedBy(rules.policy, agentApp);
  if (!envs.length) {
    log.warn(
      { project, agentApp },
      `${agentApp}: no environment of ${project}'s policy names this agent application`,
    );
    return null;
  }
  const deploymentsP = gl.listDeployments(project, { orderBy: 'id', sort: 'desc', perPage: 100 });
  const deployments = (await deploymentsP).filter((d) =>
    envs.some((e) => d.environment.startsWith(`${e.name}/`)),
  );
  const policyEnvs = new Set(
    rules.policy && !('error' in rules.policy) ? rules.policy.environments.map((e) => e.name) : [],
  );
  const byIid = new Map<number, OpsMergeRequest>();
  const watched: WatchedEnvironment[] = [];
  for (const env of envs) {
    const ref = trackedBranch(env, rules.defaultBranch);
    const governed = env.match.target_branches ?? [rules.defaultBranch];
    const w: WatchedEnvironment = {
      name: env.name,
      ref,
      timeoutMs: durationMs(env.deploy_timeout),
      ...(env.on_degraded === 'rollback' ? { onDegraded: 'rollback' as const } : {}),
      mergeRequests: [],
    };
    watched.push(w);
    const mine = deployments.filter((d) => d.environment.startsWith(`${env.name}/`));
    const base = await baseOf(ctx, project, revision, mine);
    const brought = await broughtBy(ctx, project, base, revision, ref);
    // Only a revision on the branch the agent tracks deploys anything (a report about a
    // commit elsewhere, say a Developer's branch, changes nothing in GitLab).
    if (!brought) {
      log.warn({ project, agentApp, revision, ref }, `${agentApp}: ${revision.slice(0, 8)} is not on ${ref}`);
      continue;
    }
    const commits = brought;
    for (const c of commits) {
      const record = readRecordTrailer(c.message);
      if (!record || !governed.includes(record.target)) continue;
      // Environments that share a branch (a directory per environment on main): a record
      // for another environment of the policy is that one's, not this one's. (A record
      // naming no environment of the policy, as older promotions named it after the branch,
      // still counts by its branch.)
      if (record.env !== env.name && policyEnvs.has(record.env)) continue;
      const found = await mergeRequestOf(ctx, project, c.id, commits);
      if (found === null) continue;
      const mr = byIid.get(found.iid) ?? {
        iid: found.iid,
        webUrl: '',
        mergedAt: null,
        apps: [],
        appMergeRequests: [],
        section: {},
      };
      if (!mr.apps.includes(record.app)) mr.apps.push(record.app);
      // the newest of the MR's bot commits (the compare lists oldest first) says what it proposed
      mr.records = {
        ...mr.records,
        [record.app]: {
          image: record.image,
          ...(record.tag ? { tag: record.tag } : {}),
          files: record.files.map((x) => x.path),
          target: record.target,
          ...(record.rollback ? { rollback: true } : {}),
        },
      };
      for (const m of record.registry?.changes?.mergeRequests ?? [])
        if (!mr.appMergeRequests.includes(m.ref)) mr.appMergeRequests.push(m.ref);
      byIid.set(found.iid, mr);
      if (!w.mergeRequests.includes(mr)) w.mergeRequests.push(mr);
    }
  }
  const notes = new Map<number, Note[]>();
  // Still observe → decide → apply: the observation's phase only tells which facts decide
  // can use. For a sync under way decide writes no Deployment section (writesSection), so
  // the MR's notes, which hold the section's state and the comment apply would edit, are
  // not read (their section stays {}); the merged MR is, for the merge time the timeout
  // counts from.
  const withNotes = writesSection(observation);
  await Promise.all(
    [...byIid.values()].map(async (mr) => {
      const [detail, list] = await Promise.all([
        mergedRequest(ctx, project, mr.iid),
        withNotes ? gl.notes(project, mr.iid) : null,
      ]);
      mr.webUrl = detail.webUrl;
      mr.mergedAt = detail.mergedAt;
      if (!list) return;
      notes.set(mr.iid, list);
      const [sticky] = stickyNotes(list, DIFF_MARKER, ctx.botUserId);
      mr.section = (sticky && readSection(sticky.body)) || {};
    }),
  );
  return {
    facts: {
      project,
      agentApp,
      revision,
      observation,
      now: (ctx.now?.() ?? new Date()).toISOString(),
      environments: watched,
      deployments,
      // not read: decide writes it whenever what it describes changes (one request saved on
      // every report; a status someone else posted under the name is fixed at the next change)
    },
    notes,
  };
}

/**
 * Where the revision's changes start: the newest successful deployment of another revision
 * in the environment, else (nothing deployed yet) the revision's first parent, which is what
 * a merge brought in.
 */
async function baseOf(
  ctx: GateContext,
  project: string,
  revision: string,
  deployments: DeploymentInfo[],
): Promise<string | null> {
  const done = deployments
    .filter((d) => d.status === 'success' && d.sha !== revision)
    .sort((a, b) => b.id - a.id);
  if (done.length) return done[0].sha;
  const key = `${project} ${revision}`;
  const caches = cachesOf(ctx);
  if (caches.firstParent.has(key)) return caches.firstParent.get(key) ?? null;
  const c = await ctx.gitlab.commitInfo(project, revision);
  // a commit's parents are part of its SHA: immutable (an unknown commit is not kept)
  if (c) caches.firstParent.set(key, c.parentIds[0] ?? null);
  return c?.parentIds[0] ?? null;
}

type Commit = { id: string; message: string; parentIds: string[] };

/**
 * The commits `revision` brings since `base` (`revision` included), or null when `revision`
 * is not on `ref` now. One compare from `base` to the branch answers both: GitLab lists the
 * commits of `ref` that `base` lacks (from their merge base, as `git log base..ref`), so
 * `revision` among them is on the branch, and its ancestors among them are what it brings.
 * A revision the list lacks (base itself or behind it, or a list GitLab cut) is asked
 * about as before: merge_base, then the compare between the two SHAs (immutable: cached).
 */
async function broughtBy(
  ctx: GateContext,
  project: string,
  base: string | null,
  revision: string,
  ref: string,
): Promise<Commit[] | null> {
  const gl = ctx.gitlab;
  if (base) {
    const c = await gl.compare(project, base, ref);
    const byId = new Map((c?.commits ?? []).map((x) => [x.id, x]));
    if (byId.has(revision)) {
      const reach = new Set<string>();
      const todo = [revision];
      for (let id = todo.pop(); id !== undefined; id = todo.pop()) {
        const x = byId.get(id);
        if (!x || reach.has(id)) continue;
        reach.add(id);
        todo.push(...x.parentIds);
      }
      return (c?.commits ?? []).filter((x) => reach.has(x.id));
    }
  }
  if ((await gl.mergeBase(project, revision, ref)) !== revision) return null;
  if (!base) return [];
  const key = `${project} ${base} ${revision}`;
  const caches = cachesOf(ctx);
  const known = caches.compares.get(key);
  if (known) return known;
  const c = await gl.compare(project, base, revision);
  if (c) caches.compares.set(key, c.commits);
  return c?.commits ?? [];
}

/** The merged MR `iid` (a merged MR's URL, merge time and merge commit never change: cached). */
async function mergedRequest(ctx: GateContext, project: string, iid: number) {
  const key = `${project}!${iid}`;
  const caches = cachesOf(ctx);
  const known = caches.mergedRequests.get(key);
  if (known) return known;
  const d = await ctx.gitlab.mergeRequest(project, iid);
  const detail = { webUrl: d.webUrl, mergedAt: d.mergedAt, mergeCommitSha: d.mergeCommitSha };
  if (d.state === 'merged') caches.mergedRequests.set(key, detail);
  return detail;
}

/** A Map that forgets its least recently used entries beyond `max`. */
export class Lru<K, V> {
  private readonly m = new Map<K, V>();
  constructor(private readonly max: number) {}
  has(k: K): boolean {
    return this.m.has(k);
  }
  get(k: K): V | undefined {
    if (!this.m.has(k)) return undefined;
    const v = this.m.get(k) as V;
    this.m.delete(k);
    this.m.set(k, v);
    return v;
  }
  set(k: K, v: V): void {
    this.m.delete(k);
    this.m.set(k, v);
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value as K);
  }
  get size(): number {
    return this.m.size;
  }
}

const CACHED = 1000;
interface Caches {
  firstParent: Lru<string, string | null>;
  compares: Lru<string, Commit[]>;
  mergedRequests: Lru<string, { webUrl: string; mergedAt: string | null; mergeCommitSha: string | null }>;
}
// Per GitLab client, so that two GitLab instances (tests, or a second --gitlab-url) never
// share what one said; in-process only (a restart reads them again).
const caches = new WeakMap<object, Caches>();
function cachesOf(ctx: GateContext): Caches {
  let c = caches.get(ctx.gitlab);
  if (!c) {
    c = { firstParent: new Lru(CACHED), compares: new Lru(CACHED), mergedRequests: new Lru(CACHED) };
    caches.set(ctx.gitlab, c);
  }
  return c;
}

/**
 * The MR that merged the bot commit `sha`. The merge commit's message names it ("See merge
 * request …!N", GitLab's template), but whoever merges may edit that message: the claim
 * stands only if GitLab's record of !N says it made this merge commit (its merge_commit_sha;
 * the MR is read anyway for its merge time, and cached). Otherwise GitLab's list of the
 * commit's MRs says. The attribution decides only where the bot reports (which MR's
 * comment); the Deployments and the commit status follow from the revision and the records.
 */
async function mergeRequestOf(
  ctx: GateContext,
  project: string,
  sha: string,
  commits: Commit[],
): Promise<{ iid: number } | null> {
  const merge = commits.find((c) => c.parentIds.length > 1 && c.parentIds.includes(sha));
  const m = merge ? MERGE_REF.exec(merge.message) : null;
  if (merge && m && m[1].toLowerCase() === project.toLowerCase()) {
    const iid = Number(m[2]);
    const detail = await mergedRequest(ctx, project, iid).catch(() => null);
    if (detail?.mergeCommitSha === merge.id) return { iid };
    log.warn(
      { project, iid, mergeCommit: merge.id, mergeCommitSha: detail?.mergeCommitSha ?? null },
      `merge commit ${merge.id.slice(0, 8)} names !${iid}, which GitLab says merged ${detail?.mergeCommitSha?.slice(0, 8) ?? 'nothing'}: asking GitLab which MR merged ${sha.slice(0, 8)}`,
    );
  }
  const mrs = await ctx.gitlab.commitMergeRequests(project, sha);
  const merged = mrs.find((x) => x.state === 'merged');
  return merged ? { iid: merged.iid } : null;
}
