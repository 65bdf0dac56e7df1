// gate: evaluate the approval rules on one merge request and publish the verdict (commit
// status `gitops-bot/approval`, one sticky comment); merge it when the policy says
// `merge: bot`. Also the checks after a merge, a push and an acceptance in strict mode.
//
// Trust: the rules come from rulesInForce (the protected default branch, as deployed in
// strict mode, or a file given to gitops-bot); facts from GitLab records a Developer
// cannot write (approvals, push system notes and events, file contents); the verdict from
// evaluate(), a pure function.
//
// Request budget of a gate on an MR into the default branch (strict mode, one approval):
// the MR (1), the rules (default branch, its protection, the policy there and at the deploy
// ref: 4), facts (approvals, diff versions, push notes, push events, changes, members, the
// approver: 7), tag bump (2 per changed YAML file), for gitops-bot's own MR the head commit
// (1, the files are already read), then the status and the comment: 2 reads, and a write for
// each that changed (an unchanged verdict writes nothing).

import { log } from '../base/log.js';
import { GitLabError, type MergeRequestDetail } from '../gitlab/client.js';
import { ensureSticky } from '../gitlab/sticky.js';
import { VERDICT_MARKER } from '../model/markers.js';
import { evaluate, type Verdict } from '../policy/evaluate.js';
import { DEFAULT_POLICY } from '../policy/schema.js';
import { code, fence } from '../render/markdown.js';
import { type AdvanceResult, advance } from './deploy-ref.js';
import { type GateContext, gatherFacts } from './facts.js';
import { deployRefs, POLICY_FILE, parse, type RulesInForce, rulesInForce, trustFor } from './trust.js';

export type { GateContext } from './facts.js';
export { POLICY_FILE };
export const STATUS_NAME = 'gitops-bot/approval';
/** Lines of foreign diff shown in the verdict; the rest is in the Changes tab. */
const FOREIGN_LINES = 120;

function foreignSection(v: Verdict, sha: string): string[] {
  const f = v.foreign;
  if (!f) return [];
  const lines: string[] = [];
  for (const file of f.files) for (const h of file.hunks) lines.push(`--- ${file.path}`, h);
  const text = lines.join('\n').split('\n');
  const shown = text.slice(0, FOREIGN_LINES).join('\n');
  const mark = fence(shown);
  return [
    '',
    `**Changes gitops-bot did not write**, at ${code(sha.slice(0, 8))}${f.pushedBy.length ? ` (pushed by ${f.pushedBy.join(', ')})` : ''}:`,
    '',
    ...(shown ? [`${mark}diff`, shown, mark] : [f.reason ?? '']),
    ...(text.length > FOREIGN_LINES
      ? ['', `_${text.length - FOREIGN_LINES} more lines in the Changes tab._`]
      : []),
  ];
}

export function verdictComment(v: Verdict, sha: string, source = 'the default branch'): string {
  const icon = v.pass ? '✅' : v.state === 'failed' ? '⛔' : '⏳';
  const rows = v.approvals.map(
    (a) => `| @${a.username} | ${a.counted ? 'counted' : `not counted: ${a.reason}`} |`,
  );
  return [
    VERDICT_MARKER,
    `${icon} **${v.pass ? 'Ready to deploy' : 'Not ready to deploy'}**: ${v.summary}`,
    '',
    `Environment: ${v.environment ? code(v.environment) : 'none'}; rules read from ${code(source)}; evaluated at ${code(sha.slice(0, 8))} (the approved diff is the diff at this commit).`,
    ...(v.blockers.length ? ['', ...v.blockers.map((b) => `- ${b}`)] : []),
    ...v.notes.map((n) => `\n> ${n}`),
    ...foreignSection(v, sha),
    ...(rows.length ? ['', '| approval | |', '|---|---|', ...rows] : ['', 'No approvals yet.']),
    '',
    '<sub>Comment `/gitops-bot recheck` to evaluate again.</sub>',
  ].join('\n');
}

export interface GateResult {
  verdict: Verdict;
  sha: string;
  /** the paths the MR changes at `sha` (GitLab's changes): what a push to its target can affect */
  changedPaths: string[];
  merged: boolean;
  requests: number;
}

/** Reads the facts of `mr` under `rules` and judges them. */
async function judge(
  ctx: GateContext,
  project: string,
  mr: MergeRequestDetail,
  rules: RulesInForce,
  base: string,
) {
  const trust = await trustFor(ctx.gitlab, project, rules, mr.targetBranch);
  const facts = await gatherFacts(ctx, project, mr, rules.policy, trust, base);
  return { verdict: evaluate(facts, DEFAULT_POLICY), changedPaths: facts.mr.changedPaths };
}

/**
 * Publishes `state` as the gate's commit status on `sha`, unless its newest status already
 * says exactly that and gitops-bot wrote it: re-evaluating an MR whose facts did not change
 * writes nothing. The status is read back rather than remembered, so a status someone else
 * posted under the gate's name (a Developer may post statuses) is never trusted: the bot's
 * status is written again so that it is the newest, the one the MR shows.
 */
async function publishStatus(
  ctx: GateContext,
  project: string,
  sha: string,
  state: Verdict['state'],
  description: string,
): Promise<void> {
  const gl = ctx.gitlab;
  const current = await gl.commitStatus(project, sha, STATUS_NAME);
  const wanted = description.slice(0, 255);
  const mine = current !== null && current.authorId === ctx.botUserId && current.state === state;
  if (mine && current.description === wanted) return;
  await gl.setStatus(project, sha, state, {
    name: STATUS_NAME,
    description: wanted,
    seen: mine ? 'mine' : 'other',
  });
}

/** Evaluates one open MR, publishes the verdict, and merges when the policy asks the bot to. */
export async function gate(
  ctx: GateContext,
  project: string,
  iid: number,
  opts: { merge?: boolean } = {},
): Promise<GateResult> {
  const gl = ctx.gitlab;
  const [mr, rules] = await Promise.all([
    gl.mergeRequest(project, iid),
    rulesInForce(gl, project, ctx.policy),
  ]);
  const { verdict, changedPaths } = await judge(ctx, project, mr, rules, mr.targetBranch);
  if (mr.state === 'opened') {
    await publishStatus(ctx, project, mr.sha, verdict.state, verdict.summary);
    await ensureSticky(
      gl,
      { project, iid, by: ctx.botUserId },
      VERDICT_MARKER,
      verdictComment(verdict, mr.sha, rules.source),
    );
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
  if (merged || (opts.merge && mr.state === 'merged')) await afterMerge(ctx, project, iid, rules);
  return { verdict, sha: mr.sha, changedPaths, merged, requests: gl.requests };
}

/**
 * After a merge: deploy_ref moves over the target's history as far as every commit is
 * accounted for (this MR re-evaluated at its final head under the rules before it, and
 * anything merged or pushed since the last move). A merge that bypassed the rules gets an
 * alert and deploy_ref stays.
 */
export async function afterMerge(
  ctx: GateContext,
  project: string,
  iid: number,
  /** the rules in force, when the caller just read them (gate() after its own merge) */
  known?: RulesInForce,
): Promise<'moved' | 'unchanged' | 'alert' | 'none'> {
  const gl = ctx.gitlab;
  const [mr, rules] = await Promise.all([
    gl.mergeRequest(project, iid),
    known ?? rulesInForce(gl, project, ctx.policy),
  ]);
  if (mr.state !== 'merged' || !mr.mergeCommitSha) return 'none';
  const d = deployRefs(rules.policy, rules.defaultBranch).find((x) => x.branch === mr.targetBranch);
  if (!d) return 'none';
  const r = await advance(ctx, project, rules, d.branch, d.ref, { iid });
  if (r.decision.action !== 'already' && r.decision.held.some((b) => b.iid === iid)) return 'alert';
  return r.moved ? 'moved' : 'unchanged';
}

/**
 * After a push to a branch the rules deploy from: deploy_ref moves as far as history is
 * accounted for; a commit no approved MR produced (a direct push) holds it, with an alert
 * on the commit.
 */
export async function afterPush(
  ctx: GateContext,
  project: string,
  branch: string,
  after: string,
): Promise<'direct' | 'merge' | 'none'> {
  return (await afterPushRead(ctx, project, branch, after)).outcome;
}

/**
 * afterPush, with what it read: the rules in force when it needed them (a push to a branch
 * the rules deploy from; null otherwise). `known`: the default branch and the policy at its
 * head, when the caller read them already (serve's push job), so they are not read twice.
 */
export async function afterPushRead(
  ctx: GateContext,
  project: string,
  branch: string,
  after: string,
  known?: { defaultBranch: string; headText: string | null },
): Promise<{ outcome: 'direct' | 'merge' | 'none'; rules: RulesInForce | null }> {
  const none = { outcome: 'none' as const, rules: null };
  if (/^0+$/.test(after)) return none;
  const gl = ctx.gitlab;
  // Most pushes are to MR branches: two reads tell that no rule deploys from this one (and
  // are not read again for the rules).
  let read = known;
  if (!ctx.policy) {
    if (!read) {
      const defaultBranch = await gl.projectDefaultBranch(project);
      read = { defaultBranch, headText: await gl.rawFile(project, POLICY_FILE, defaultBranch) };
    }
    const atHead = parse(read.headText);
    if (
      branch !== read.defaultBranch &&
      !deployRefs(atHead, read.defaultBranch).some((d) => d.branch === branch)
    )
      return none;
  }
  const rules = await rulesInForce(gl, project, ctx.policy, read);
  const d = deployRefs(rules.policy, rules.defaultBranch).find((x) => x.branch === branch);
  if (!d) return { outcome: 'none', rules };
  const r = await advance(ctx, project, rules, d.branch, d.ref);
  const held = r.decision.action === 'already' ? [] : r.decision.held;
  return { outcome: held.some((b) => b.kind === 'push' && b.sha === after) ? 'direct' : 'merge', rules };
}

/**
 * `/gitops-bot accept <sha>`: walk every deploy ref again; the walk counts acceptances
 * from GitLab's comments (their authors, judged as approvers), never from the comment
 * that triggered it.
 */
export async function acceptBypass(ctx: GateContext, project: string, sha: string): Promise<AdvanceResult[]> {
  const gl = ctx.gitlab;
  const rules = await rulesInForce(gl, project, ctx.policy);
  const out: AdvanceResult[] = [];
  for (const d of deployRefs(rules.policy, rules.defaultBranch)) {
    out.push(await advance(ctx, project, rules, d.branch, d.ref));
  }
  log.info({ project, sha, walks: out.length }, 'acceptance checked');
  return out;
}
