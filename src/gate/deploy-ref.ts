// Strict mode: deploy_ref advances only over approved history. Observe the target's
// first-parent chain after the current deploy_ref, one piece of evidence per commit (the
// MR that merged it, re-evaluated now under the rules in force before it; or its explicit
// acceptance); decide with advance.ts (pure); apply: alerts, then one compare-and-swap push.

import { log } from '../base/log.js';

import { evaluate, type Facts, type Trust } from '../policy/evaluate.js';
import { DEFAULT_POLICY } from '../policy/schema.js';
import {
  acceptedSha,
  type Bypass,
  type Decision,
  decide,
  type Evidence,
  isRevertOf,
  startWalk,
  step,
} from './advance.js';
import { type GateContext, type GateForge, gatherFacts, groupMembersOf } from './facts.js';
import { alertOnce } from './notify.js';
import { type ParsedPolicy, POLICY_FILE, parse, type RulesInForce, trustFor } from './trust.js';

/** A per-key queue: walks of one deploy ref never overlap within a process. */
const walks = new Map<string, Promise<unknown>>();
function serially<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = walks.get(key) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  walks.set(
    key,
    next.catch(() => undefined),
  );
  return next;
}

export interface AdvanceResult {
  decision: Decision;
  /** whether deploy_ref was moved by this call */
  moved: boolean;
  requests: number;
}

interface WalkContext {
  ctx: GateContext;
  project: string;
  target: string;
  ref: string;
  trust: Trust;
  /** paths the whole range changes (files-based environments match on them) */
  paths: string[];
  /** push events, read once per walk */
  events?: Awaited<ReturnType<GateForge['pushEvents']>>;
}

/** Who pushed `sha` to the target, from GitLab's push events. */
async function pusherOf(w: WalkContext, sha: string): Promise<{ username: string; id: number } | null> {
  w.events ??= await w.ctx.gitlab.pushEvents(w.project);
  const e = w.events.find((x) => x.to === sha && x.ref === w.target);
  return e ? { username: e.username, id: e.userId } : null;
}

/**
 * Counted `/gitops-bot accept <sha>` comments on the commit (and on the MR that merged it),
 * judged as approvals by the rules in force: eligible users only, not the one who bypassed.
 */
async function acceptance(
  w: WalkContext,
  policy: ParsedPolicy,
  sha: string,
  iid: number | undefined,
  bypasser: { id: number; username: string } | null,
): Promise<{ by: string[]; required: number; pass: boolean }> {
  const gl = w.ctx.gitlab;
  const [onCommit, onMr] = await Promise.all([
    gl.commitNotes(w.project, sha),
    iid !== undefined ? gl.notes(w.project, iid) : Promise.resolve([]),
  ]);
  const notes = [
    ...onCommit.map((n) => ({ id: n.userId, username: n.username, body: n.body, at: n.at })),
    ...onMr.map((n) => ({ id: n.authorId, username: n.author, body: n.body, at: n.createdAt })),
  ].filter((n) => {
    const s = acceptedSha(n.body);
    return !!s && sha.startsWith(s);
  });
  if (!notes.length)
    return { by: [], required: requiredAcceptances(policy, w.target, w.trust.defaultBranch), pass: false };
  const [levels, people] = await Promise.all([
    gl.accessLevels(w.project),
    Promise.all(notes.map((n) => gl.user(n.id))),
  ]);
  const groups = await groupMembersOf(gl, policy);
  const someone = bypasser ?? { id: -1, username: '(unknown)' };
  const facts: Facts = {
    mr: {
      iid: iid ?? 0,
      state: 'merged',
      draft: false,
      author: someone,
      sha,
      targetBranch: w.target,
      changedPaths: w.paths,
    },
    policy,
    approvals: notes.map((n, i) => ({
      user: { id: n.id, username: n.username, bot: people[i].bot },
      approvedAt: n.at,
    })),
    groups,
    accessLevels: levels,
    pushers: new Set([someone.id]),
    trust: w.trust,
    lastPushAt: null,
    botUserId: w.ctx.botUserId,
    now: w.ctx.now?.() ?? new Date(),
  };
  const v = evaluate(facts, DEFAULT_POLICY);
  const required = Math.max(1, v.required);
  const by = v.approvals.filter((a) => a.counted).map((a) => a.username);
  return { by, required, pass: v.blockers.length === 0 && v.counted >= required && v.environment !== null };
}

/** The evidence for one commit of the chain. */
async function evidence(
  w: WalkContext,
  policy: ParsedPolicy,
  sha: string,
  parent: string,
): Promise<Evidence> {
  const gl = w.ctx.gitlab;
  const mrs = await gl.commitMergeRequests(w.project, sha);
  const m = mrs.find(
    (x) =>
      x.state === 'merged' &&
      x.targetBranch === w.target &&
      (x.mergeCommitSha === sha || x.squashCommitSha === sha || (!x.mergeCommitSha && x.sha === sha)),
  );
  let why = `no merge request produced it: it was pushed to ${w.target} directly`;
  let who: { username: string; id: number } | null = null;
  if (m) {
    const mr = await gl.mergeRequest(w.project, m.iid);
    // Judged as at its merge: the rules in force before it, the freeze windows of that time.
    const facts = await gatherFacts(
      { ...w.ctx, now: () => (mr.mergedAt ? new Date(mr.mergedAt) : (w.ctx.now?.() ?? new Date())) },
      w.project,
      mr,
      policy,
      w.trust,
      parent,
    );
    const v = evaluate(facts, DEFAULT_POLICY);
    if (v.pass) return { accounted: true, how: 'merge', iid: m.iid };
    why = v.summary;
    who = mr.mergedBy ? { username: mr.mergedBy, id: mr.mergedById ?? -1 } : null;
  } else {
    who = await pusherOf(w, sha);
  }
  const a = await acceptance(w, policy, sha, m?.iid, who);
  const bypass: Bypass = {
    sha,
    kind: m ? 'merge' : 'push',
    ...(m ? { iid: m.iid } : {}),
    who: who?.username ?? null,
    why,
    accepted: { by: a.by, required: a.required },
  };
  return a.pass ? { accounted: true, how: 'accepted', bypass } : { accounted: false, bypass };
}

/** The approval rules of the environment that governs `target` (files globs aside). */
function approvalsFor(policy: ParsedPolicy, target: string, defaultBranch: string) {
  const p = policy && !('error' in policy) ? policy : DEFAULT_POLICY;
  return p.environments.find((e) => (e.match.target_branches ?? [defaultBranch]).includes(target))?.approvals;
}

/** Acceptances a bypass needs: as many as the approvals the rules require, at least one. */
function requiredAcceptances(policy: ParsedPolicy, target: string, defaultBranch: string): number {
  return Math.max(1, approvalsFor(policy, target, defaultBranch)?.required ?? 1);
}

function eligibleText(policy: ParsedPolicy, target: string, defaultBranch: string): string {
  const a = approvalsFor(policy, target, defaultBranch);
  if (!a) return 'eligible approvers';
  const who = [...(a.users ?? []), ...(a.groups ?? []).map((g) => `members of ${g}`)];
  return who.length ? who.join(', ') : `${a.min_access_level}s of the project`;
}

/** The alert text for a bypass: what happened, where deploy_ref stays, and the two ways out. */
export function bypassAlert(
  b: Bypass,
  ref: string,
  at: string | null,
  target: string,
  eligible: string,
): string {
  const short = b.sha.slice(0, 8);
  const what =
    b.kind === 'merge'
      ? `!${b.iid} was merged by ${b.who ?? 'someone'} without passing the rules (${b.why})`
      : `${short} was pushed to ${target} directly, not through a merge request${b.who ? `, by ${b.who}` : ''}`;
  const need = b.accepted.required;
  return [
    `⛔ **Not deployed.** ${what}; it will not be deployed: ${ref} stays at ${at ? at.slice(0, 8) : 'its commit'} and will not move past ${short}.`,
    '',
    `Two ways out: revert ${short} through a merge request that passes the rules, or have ${need} eligible approver${need === 1 ? '' : 's'} (${eligible}) comment \`/gitops-bot accept ${short}\` here.`,
    ...(b.accepted.by.length
      ? ['', `Accepted so far by ${b.accepted.by.join(', ')} (${b.accepted.by.length}/${need}).`]
      : []),
  ].join('\n');
}

/**
 * Moves `ref` over the target's history as far as it is accounted for. Idempotent: a run
 * that finds nothing new changes nothing; alerts are posted once.
 */
export function advance(
  ctx: GateContext,
  project: string,
  rules: RulesInForce,
  target: string,
  ref: string,
  trigger: { iid?: number } = {},
): Promise<AdvanceResult> {
  return serially(`${project}\0${ref}`, () => walk(ctx, project, rules, target, ref, trigger));
}

async function walk(
  ctx: GateContext,
  project: string,
  rules: RulesInForce,
  target: string,
  ref: string,
  trigger: { iid?: number },
): Promise<AdvanceResult> {
  const gl = ctx.gitlab;
  const before = gl.requests;
  const [head, current] = await Promise.all([gl.branchHead(project, target), gl.branchHead(project, ref)]);
  const done = (decision: Decision, moved = false) => ({ decision, moved, requests: gl.requests - before });
  if (!head || head === current) return done({ action: 'already' });
  // History up to the current deploy_ref is trusted; without one yet, only the newest commit is judged.
  const base = current ?? (await gl.commitInfo(project, head))?.parentIds[0];
  if (!base) return done({ action: 'hold', at: null, held: [] });
  const range = await gl.compare(project, base, head);
  const byId = new Map((range?.commits ?? []).map((c) => [c.id, c]));
  const chain: Array<{ id: string; parent: string }> = [];
  for (let x = head; x !== base; ) {
    const c = byId.get(x);
    if (!c?.parentIds[0]) {
      log.error({ project, ref, target }, 'deploy ref is not an ancestor of the target; not moved');
      return done({ action: 'hold', at: current, held: [] });
    }
    chain.unshift({ id: c.id, parent: c.parentIds[0] });
    x = c.parentIds[0];
  }
  const trust = await trustFor(gl, project, rules, target);
  const w: WalkContext = { ctx, project, target, ref, trust, paths: range?.paths ?? [] };
  const policyChanges = w.paths.includes(POLICY_FILE);
  let policy = rules.policy;
  let state = startWalk(base);
  const diffs = new Map<string, Array<{ path: string; diff: string }>>();
  const diffOf = async (sha: string) => {
    let d = diffs.get(sha);
    if (!d) {
      d = await gl.commitDiff(project, sha);
      diffs.set(sha, d);
    }
    return d;
  };
  for (const c of chain) {
    const e = await evidence(w, policy, c.id, c.parent);
    const reverts: string[] = [];
    if (e.accounted && state.pending.length) {
      const mine = await diffOf(c.id);
      for (const p of state.pending) if (isRevertOf(mine, await diffOf(p.sha))) reverts.push(p.sha);
    }
    const wasClean = state.clean;
    state = step(state, c.id, e, reverts);
    // The rules in force move with the clean history, never with a bypass.
    if (policyChanges && state.clean !== wasClean)
      policy = parse(await gl.rawFile(project, POLICY_FILE, state.clean));
  }
  const decision = decide(current, base, head, state);
  if (decision.action === 'already') return done(decision);
  const eligible = eligibleText(policy, target, rules.defaultBranch);
  const at = decision.action === 'move' ? decision.to : current;
  for (const b of decision.held) {
    const text = bypassAlert(b, ref, at, target, eligible);
    const key = b.kind === 'merge' ? `merge:${b.iid}` : `push:${b.sha}`;
    await alertOnce(ctx, project, b.kind === 'merge' ? { iid: b.iid } : { sha: b.sha }, key, text);
    log.error(
      { project, ref, sha: b.sha, kind: b.kind, who: b.who },
      `bypass holds ${ref}: ${text.split('\n')[0]}`,
    );
    ctx.onAlert?.(b.kind, project, text.split('\n')[0]);
  }
  for (const b of state.accepted) {
    const text = `✅ **Accepted.** ${b.sha.slice(0, 8)} was accepted by ${b.accepted.by.join(', ')} with \`/gitops-bot accept\`; ${ref} may move past it.`;
    const key = b.kind === 'merge' ? `accepted:${b.iid}` : `accepted:${b.sha}`;
    await alertOnce(ctx, project, b.kind === 'merge' ? { iid: b.iid } : { sha: b.sha }, key, text);
    log.info({ project, ref, sha: b.sha, by: b.accepted.by }, 'bypass accepted');
  }
  const first = decision.held[0];
  if (trigger.iid !== undefined && first && !decision.held.some((b) => b.iid === trigger.iid)) {
    await alertOnce(
      ctx,
      project,
      { iid: trigger.iid },
      `held:${trigger.iid}`,
      `⏸ **Approved and merged, not deployed yet.** ${ref} is held at ${(at ?? '').slice(0, 8)} by ${first.sha.slice(0, 8)}, which did not pass the rules (${first.why}); see the alert there.`,
    );
  }
  if (decision.action !== 'move') return done(decision);
  const result = await gl.fastForward(project, ref, decision.to, current);
  if (result === 'moved') {
    ctx.onDeployRefMove?.(project, ref, decision.to);
    log.info({ project, ref, sha: decision.to }, 'deploy ref moved');
  } else if (result === 'diverged') {
    log.error({ project, ref }, 'deploy ref moved meanwhile or is not an ancestor; not moved');
  }
  return done(decision, result === 'moved');
}
