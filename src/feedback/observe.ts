// The facts decideFeedback needs, read from GitLab. The agent's report says only which
// application, which revision and what it saw; which environments, apps and merge requests
// that revision deploys comes from what a Developer cannot write: the rules on the protected
// default branch (as the gate reads them), the revision's place on the branch the agent
// tracks, and the bot's promotion records in that branch's history.
//
// Reads for one report about a revision that deploys one bot MR (measured in
// test/feedback/loop.test.ts: 11): the rules as the gate reads them (4 in strict mode), the
// deployments (1), the revision on the tracked branch (1), the first
// parent when nothing was deployed yet (1), the compare since the last successful
// deployment (1), the MR and its notes (2). Then only the writes that change something.
import { log } from '../base/log.js';
import type { GateContext } from '../gate/facts.js';
import { type RulesInForce, rulesInForce } from '../gate/trust.js';
import type { DeploymentInfo, Note } from '../gitlab/client.js';
import type { AgentObservation } from '../model/agent.js';
import { readRecordTrailer } from '../model/record.js';
import { agentKey, durationMs, type Environment } from '../policy/schema.js';
import { DIFF_MARKER } from '../render/diff-comment.js';
import { type FeedbackFacts, type OpsMergeRequest, readSection, type WatchedEnvironment } from './decide.js';

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
  const byIid = new Map<number, OpsMergeRequest>();
  const watched: WatchedEnvironment[] = [];
  for (const env of envs) {
    const ref = trackedBranch(env, rules.defaultBranch);
    const governed = env.match.target_branches ?? [rules.defaultBranch];
    const w: WatchedEnvironment = {
      name: env.name,
      ref,
      timeoutMs: durationMs(env.deploy_timeout),
      mergeRequests: [],
    };
    watched.push(w);
    // Only a revision on the branch the agent tracks deploys anything (a report about a
    // commit elsewhere, say a Developer's branch, changes nothing in GitLab).
    if ((await gl.mergeBase(project, revision, ref)) !== revision) {
      log.warn({ project, agentApp, revision, ref }, `${agentApp}: ${revision.slice(0, 8)} is not on ${ref}`);
      continue;
    }
    const mine = deployments.filter((d) => d.environment.startsWith(`${env.name}/`));
    const base = await baseOf(ctx, project, revision, mine);
    const compare = base ? await gl.compare(project, base, revision) : null;
    const commits = compare?.commits ?? [];
    for (const c of commits) {
      const record = readRecordTrailer(c.message);
      if (!record || !governed.includes(record.target)) continue;
      const iid = await mergeRequestOf(ctx, project, c.id, commits);
      if (iid === null) continue;
      const mr = byIid.get(iid) ?? {
        iid,
        webUrl: '',
        mergedAt: null,
        apps: [],
        appMergeRequests: [],
        section: {},
      };
      if (!mr.apps.includes(record.app)) mr.apps.push(record.app);
      for (const m of record.registry?.changes?.mergeRequests ?? [])
        if (!mr.appMergeRequests.includes(m.ref)) mr.appMergeRequests.push(m.ref);
      byIid.set(iid, mr);
      if (!w.mergeRequests.includes(mr)) w.mergeRequests.push(mr);
    }
  }
  const notes = new Map<number, Note[]>();
  await Promise.all(
    [...byIid.values()].map(async (mr) => {
      const [detail, list] = await Promise.all([gl.mergeRequest(project, mr.iid), gl.notes(project, mr.iid)]);
      mr.webUrl = detail.webUrl;
      mr.mergedAt = detail.mergedAt;
      notes.set(mr.iid, list);
      const sticky = list.find((n) => n.authorId === ctx.botUserId && n.body.startsWith(DIFF_MARKER));
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
  const c = await ctx.gitlab.commitInfo(project, revision);
  return c?.parentIds[0] ?? null;
}

/**
 * The MR that merged the bot commit `sha`: GitLab's merge commit says so ("See merge request
 * …!N", written by GitLab on a protected branch), else GitLab's list of the commit's MRs.
 */
async function mergeRequestOf(
  ctx: GateContext,
  project: string,
  sha: string,
  commits: Array<{ id: string; message: string; parentIds: string[] }>,
): Promise<number | null> {
  const merge = commits.find((c) => c.parentIds.length > 1 && c.parentIds.includes(sha));
  const m = merge ? MERGE_REF.exec(merge.message) : null;
  if (m && m[1].toLowerCase() === project.toLowerCase()) return Number(m[2]);
  const mrs = await ctx.gitlab.commitMergeRequests(project, sha);
  const merged = mrs.find((x) => x.state === 'merged');
  return merged ? merged.iid : null;
}
