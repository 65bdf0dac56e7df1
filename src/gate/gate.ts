// gate: evaluate the approval rules on one merge request and publish the verdict (commit
// status `gitops-bot/approval`, one sticky comment); merge it when the policy says
// `merge: bot`. Also the checks after a merge and after a push in strict mode.

import { type Approval, GitLabError, type GitLabGate, type MergeRequestDetail } from '../gitlab/client.js';
import { fastForward } from '../gitlab/git-push.js';
import { log } from '../log.js';
import { findImages } from '../manifests/index.js';
import { evaluate, type Facts, type Verdict } from '../policy/evaluate.js';
import { DEFAULT_POLICY, PolicyError, parsePolicy } from '../policy/schema.js';
import { type ChangeKind, changeKind } from '../promote/version-order.js';
import { code } from '../render/markdown.js';

export const STATUS_NAME = 'gitops-bot/approval';
export const POLICY_FILE = '.gitops-bot.yml';
const VERDICT_MARKER = '<!-- gitops-bot:verdict -->';
const ALERT_MARKER = '<!-- gitops-bot:alert ';
const SEVERITY: Record<string, number> = { major: 3, minor: 2, patch: 1, prerelease: 1, 'build number': 1 };

export interface GateContext {
  gitlab: GitLabGate;
  botUserId: number;
  now?: () => Date;
  /** called for alerts about bypasses (metrics) */
  onAlert?: (kind: 'merge' | 'push', project: string, detail: string) => void;
  onDeployRefMove?: (project: string, ref: string, sha: string) => void;
}

async function readPolicy(ctx: GateContext, project: string, ref: string): Promise<Facts['policy']> {
  const text = await ctx.gitlab.rawFile(project, POLICY_FILE, ref);
  if (text === null) return null;
  try {
    return parsePolicy(text, POLICY_FILE);
  } catch (e) {
    if (e instanceof PolicyError) return { error: e.message };
    throw e;
  }
}

/** The largest tag change between the target and the MR head, read from the YAML files. */
async function bumpKind(
  ctx: GateContext,
  project: string,
  base: string,
  head: string,
  paths: string[],
): Promise<ChangeKind | null> {
  let worst: ChangeKind | null = null;
  for (const path of paths.filter((p) => /\.ya?ml$/.test(p)).slice(0, 20)) {
    const [before, after] = await Promise.all([
      ctx.gitlab.rawFile(project, path, base),
      ctx.gitlab.rawFile(project, path, head),
    ]);
    if (before === null || after === null) continue;
    try {
      const old = new Map(
        findImages(before, path).map((r) => [`${r.document}${r.path.join('/')}${r.normalized}`, r.tag]),
      );
      for (const r of findImages(after, path)) {
        const prev = old.get(`${r.document}${r.path.join('/')}${r.normalized}`);
        if (prev === undefined || prev === r.tag) continue;
        const kind = changeKind(prev, r.tag);
        if (!worst || (SEVERITY[kind] ?? 0) > (SEVERITY[worst] ?? 0)) worst = kind;
      }
    } catch {
      // not YAML we can read: no bump known
    }
  }
  return worst;
}

export async function gatherFacts(
  ctx: GateContext,
  project: string,
  mr: MergeRequestDetail,
  policyRef: string,
  diffBase: string,
): Promise<Facts> {
  const gl = ctx.gitlab;
  const [policy, approvals, lastPushAt, committers, changedPaths, accessLevels] = await Promise.all([
    readPolicy(ctx, project, policyRef),
    gl.approvals(project, mr.iid),
    gl.lastPushAt(project, mr.iid),
    gl.committers(project, mr.iid),
    gl.changedPaths(project, mr.iid),
    gl.accessLevels(project),
  ]);
  const groupPaths = [
    ...new Set(
      policy && !('error' in policy)
        ? policy.environments.flatMap((e) => e.approvals.groups ?? []).map((g) => g.toLowerCase())
        : [],
    ),
  ];
  const [people, groupMembers] = await Promise.all([
    Promise.all(approvals.map((a: Approval) => gl.user(a.user.id))),
    Promise.all(groupPaths.map((g) => gl.groupMembers(g))),
  ]);
  return {
    mr: {
      iid: mr.iid,
      state: mr.state,
      draft: mr.draft,
      author: mr.author,
      sha: mr.sha,
      targetBranch: mr.targetBranch,
      changedPaths,
    },
    policy,
    approvals: approvals.map((a, i) => ({
      user: {
        id: a.user.id,
        username: a.user.username,
        bot: people[i].bot,
        email: people[i].email,
        name: people[i].name,
      },
      approvedAt: a.approvedAt,
    })),
    groups: new Map(groupPaths.map((g, i) => [g, groupMembers[i]])),
    accessLevels,
    committers,
    lastPushAt,
    bumpKind: await bumpKind(ctx, project, diffBase, mr.sha, changedPaths),
    botUserId: ctx.botUserId,
    now: ctx.now?.() ?? new Date(),
  };
}

export function verdictComment(v: Verdict, sha: string): string {
  const icon = v.pass ? '✅' : v.state === 'failed' ? '⛔' : '⏳';
  const rows = v.approvals.map(
    (a) => `| @${a.username} | ${a.counted ? 'counted' : `not counted: ${a.reason}`} |`,
  );
  return [
    VERDICT_MARKER,
    `${icon} **${v.pass ? 'Ready to deploy' : 'Not ready to deploy'}**: ${v.summary}`,
    '',
    `Environment: ${v.environment ? code(v.environment) : 'none'}; rules read from the target branch; evaluated at ${code(sha.slice(0, 8))}.`,
    ...(v.blockers.length ? ['', ...v.blockers.map((b) => `- ${b}`)] : []),
    ...(rows.length ? ['', '| approval | |', '|---|---|', ...rows] : ['', 'No approvals yet.']),
    '',
    '<sub>Comment `/gitops-bot recheck` to evaluate again.</sub>',
  ].join('\n');
}

export interface GateResult {
  verdict: Verdict;
  sha: string;
  merged: boolean;
  requests: number;
}

/** Evaluates one open MR, publishes the verdict, and merges when the policy asks the bot to. */
export async function gate(
  ctx: GateContext,
  project: string,
  iid: number,
  opts: { merge?: boolean } = {},
): Promise<GateResult> {
  const gl = ctx.gitlab;
  const mr = await gl.mergeRequest(project, iid);
  const facts = await gatherFacts(ctx, project, mr, mr.targetBranch, mr.targetBranch);
  const verdict = evaluate(facts, DEFAULT_POLICY);
  if (mr.state === 'opened') {
    await gl.setStatus(project, mr.sha, verdict.state, { name: STATUS_NAME, description: verdict.summary });
    await ensureNote(gl, project, iid, VERDICT_MARKER, verdictComment(verdict, mr.sha));
  }
  let merged = false;
  if (opts.merge && verdict.pass && verdict.merge === 'bot' && mr.state === 'opened') {
    try {
      // `sha` makes GitLab refuse if the head moved after we evaluated it.
      await gl.merge(project, iid, mr.sha);
      merged = true;
      log.info({ project, iid, sha: mr.sha }, 'merged by policy');
    } catch (e) {
      if (!(e instanceof GitLabError && [405, 406, 409, 422].includes(e.status))) throw e;
      log.warn({ project, iid, status: e.status }, 'merge refused; waiting for the next event');
    }
  }
  // A recheck of a merged MR finishes what a merge started: a bot killed between the merge
  // and moving deploy_ref converges here (afterMerge is idempotent).
  if (merged || (opts.merge && mr.state === 'merged')) await afterMerge(ctx, project, iid);
  return { verdict, sha: mr.sha, merged, requests: gl.requests };
}

/** Creates or edits the one note that starts with `marker`; leaves it alone when unchanged. */
async function ensureNote(
  gl: GitLabGate,
  project: string,
  iid: number,
  marker: string,
  body: string,
): Promise<void> {
  const notes = await gl.notes(project, iid);
  const mine = notes.find((n) => n.body.startsWith(marker));
  if (!mine) await gl.createNote(project, iid, body);
  else if (mine.body !== body) await gl.updateNote(project, iid, mine.id, body);
}

/**
 * After a merge: check that the MR passed the rules at its final head (with the policy as
 * it was on the target before the merge), and only then fast-forward deploy_ref to the
 * merge commit. A merge that bypassed the rules gets an alert and deploy_ref stays.
 */
export async function afterMerge(
  ctx: GateContext,
  project: string,
  iid: number,
): Promise<'moved' | 'unchanged' | 'alert' | 'none'> {
  const gl = ctx.gitlab;
  const mr = await gl.mergeRequest(project, iid);
  if (mr.state !== 'merged' || !mr.mergeCommitSha) return 'none';
  const parent = (await gl.commitInfo(project, mr.mergeCommitSha))?.parentIds[0] ?? mr.targetBranch;
  const facts = await gatherFacts(ctx, project, mr, parent, parent);
  const verdict = evaluate(facts, DEFAULT_POLICY);
  if (!verdict.deployRef) return 'none';
  if (!verdict.pass) {
    const detail = `!${iid} was merged by ${mr.mergedBy ?? 'someone'} without passing the rules (${verdict.summary}); ${verdict.deployRef} was not moved`;
    await alertOnce(gl, project, { iid }, `merge:${iid}`, `⛔ **Not deployed.** ${detail}.`);
    log.error({ project, iid, summary: verdict.summary }, 'merge bypassed the approval rules');
    ctx.onAlert?.('merge', project, detail);
    return 'alert';
  }
  const result = await fastForward({
    url: gl.opts.url,
    token: gl.opts.token,
    project,
    ref: verdict.deployRef,
    sha: mr.mergeCommitSha,
    current: await gl.branchHead(project, verdict.deployRef),
    isAncestor: async (a, b) => (await gl.mergeBase(project, a, b)) === a,
  });
  if (result === 'moved') {
    ctx.onDeployRefMove?.(project, verdict.deployRef, mr.mergeCommitSha);
    log.info({ project, iid, ref: verdict.deployRef, sha: mr.mergeCommitSha }, 'deploy ref moved');
  } else if (result === 'diverged') {
    log.error(
      { project, iid, ref: verdict.deployRef },
      'deploy ref is not an ancestor of the merge commit; not moved',
    );
  }
  return result === 'moved' ? 'moved' : 'unchanged';
}

/**
 * After a push to a branch: a new head that no merged MR produced is a direct push. In
 * strict mode it never reaches deploy_ref; the commit gets an alert.
 */
export async function afterPush(
  ctx: GateContext,
  project: string,
  branch: string,
  after: string,
): Promise<'direct' | 'merge' | 'none'> {
  const gl = ctx.gitlab;
  if (/^0+$/.test(after)) return 'none';
  const policy = await readPolicy(ctx, project, after);
  const envs = policy && !('error' in policy) ? policy.environments : [];
  // An environment without target_branches governs MRs into any branch; the branch it
  // deploys from is then the default one. Pushes to other branches (an MR's own) are not
  // deployments and get no alert.
  const needsDefault = envs.some((e) => e.deploy_ref && !e.match.target_branches);
  const defaultBranch = needsDefault ? await gl.projectDefaultBranch(project) : null;
  const strict = envs.some(
    (e) =>
      e.deploy_ref &&
      (e.match.target_branches ? e.match.target_branches.includes(branch) : branch === defaultBranch),
  );
  if (!strict) return 'none';
  const mrs = await gl.commitMergeRequests(project, after);
  if (mrs.some((m) => m.mergeCommitSha === after && m.state === 'merged')) return 'merge';
  const detail = `${after.slice(0, 8)} was pushed to ${branch} directly, not through a merge request; it will not be deployed`;
  await alertOnce(gl, project, { sha: after }, `push:${after}`, `⛔ **Not deployed.** ${detail}.`);
  log.error({ project, branch, sha: after }, 'direct push to a deployed branch');
  ctx.onAlert?.('push', project, detail);
  return 'direct';
}

async function alertOnce(
  gl: GitLabGate,
  project: string,
  on: { iid?: number; sha?: string },
  key: string,
  text: string,
) {
  const marker = `${ALERT_MARKER}${key} -->`;
  const body = `${marker}\n${text}`;
  if (on.iid !== undefined) {
    await ensureNote(gl, project, on.iid, marker, body);
  } else if (on.sha) {
    const existing = await gl.commitComments(project, on.sha);
    if (!existing.some((c) => c.startsWith(marker))) await gl.commitComment(project, on.sha, body);
  }
}
