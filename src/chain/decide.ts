// Decide: the next step of each environment chain (`promotion:` in the policy), from GitLab
// facts alone. Pure: the steps, what runs where, the open MRs, the rejected tags and the
// time in; per step and app what to open, why to wait, or why there is nothing to do.
//
// Stateless by construction: nothing here remembers an earlier run. The soak counts from the
// time GitLab's Deployment became successful, so a restart, a duplicate event or a second
// replica decides the same, and `promote` (idempotent, compare-and-swap on its branch) turns
// two equal decisions into one MR.

import { nextFreezeEdge } from '../gate/freeze-edges.js';
import { duration } from '../model/duration.js';
import { compareTags } from '../model/version-order.js';
import { activeFreeze } from '../policy/evaluate.js';
import type { Environment } from '../policy/schema.js';
import { type Rejection, rejectionMessage } from '../promote/rejections.js';

/** One `promotion:` step, its soak in milliseconds (0: none). */
export interface ChainStep {
  from: string;
  to: string;
  soakMs: number;
  assignees: string[];
  reviewers: string[];
}

/** What GitLab holds about one app on one step. */
export interface ChainAppFacts {
  app: string;
  /** the image of the app (from the environments' files) */
  image: string | null;
  /** the bot's newest deployment of `<from>/<app>` (null: none) */
  from: {
    deployment: number;
    sha: string;
    status: string;
    /** the tag the files held at the deployment's commit (null: none found) */
    tag: string | null;
    /** the digest pinned with it there, if any: what ran healthy, promoted as it ran */
    digest?: string;
    /** when it became what it is (success: since when healthy), ISO */
    since: string;
  } | null;
  /** the tag `to`'s files hold on its target branch (null: none found) */
  toTag: string | null;
  /** `to`'s files for the image and its target branch (the policy's match), for promote */
  toFiles?: string[];
  toBranch?: string;
  /** gitops-bot's open MR for the app in `to` (its branch gitops-bot/<to>/<app>) */
  openMr: { iid: number; tag: string | null; rollback: boolean; chain?: boolean } | null;
  /**
   * the newest MR of that branch closed without merging, and the tag it proposed: a person
   * closed it, so the chain does not propose that tag again (undefined: not read)
   */
  closedMr?: { iid: number; tag: string | null } | null;
  /** the tags rolled back from `from` and from `to` (rejections.ts) */
  rejected: { from: Rejection[]; to: Rejection[] };
  /** facts that could not be read: nothing is decided for the app (the reason) */
  problem?: string;
}

export interface ChainStepFacts {
  step: ChainStep;
  /** the policy environment `to` (its freeze windows); null: not in the policy */
  toEnv: Environment | null;
  apps: ChainAppFacts[];
}

export interface ChainFacts {
  now: Date;
  /** the ops project's default branch (freeze edges name branches) */
  defaultBranch: string;
  steps: ChainStepFacts[];
}

interface Where {
  from: string;
  to: string;
  app: string;
}

export type ChainDecision =
  | (Where & {
      open: {
        image: string;
        tag: string;
        digest?: string;
        since: string;
        files: string[];
        targetBranch?: string;
      };
      /** the open MR this updates (its older tag), when there is one */
      replaces?: number;
      reason: string;
    })
  /** not yet: the soak, a freeze, a deployment under way; `until` when known (ISO) */
  | (Where & { wait: string; until?: string })
  /** nothing to do for the facts as they are */
  | (Where & { none: string })
  /** the chain's own open MR proposes a tag rolled back since: close it, saying why */
  | (Where & { retract: { iid: number; tag: string; reason: string } });

const hhmm = (iso: string) => iso.slice(11, 16);

/** When the freeze active at `now` in `env` ends (ISO), or undefined when it is not known. */
export function freezeEnd(env: Environment, defaultBranch: string, now: Date): string | undefined {
  const edge = nextFreezeEdge({ version: 1, environments: [env], promotion: [] }, defaultBranch, now);
  return edge?.branches.length ? edge.at.toISOString() : undefined;
}

/** One app on one step. */
export function decideApp(
  step: ChainStep,
  toEnv: Environment | null,
  a: ChainAppFacts,
  now: Date,
  defaultBranch: string,
): ChainDecision {
  const where: Where = { from: step.from, to: step.to, app: a.app };
  const none = (why: string): ChainDecision => ({ ...where, none: why });
  const wait = (why: string, until?: string): ChainDecision => ({
    ...where,
    wait: why,
    ...(until ? { until } : {}),
  });
  if (a.problem) return none(a.problem);
  if (!toEnv) return none(`the policy has no environment ${step.to}`);
  // A chain MR whose tag was rolled back since it was opened (in either environment) must
  // not wait for an approval that would deploy it: it is closed (and, closed, not reopened).
  const open = a.openMr;
  if (open?.chain && !open.rollback && open.tag) {
    const gone =
      a.rejected.from.find((r) => r.tag === open.tag) ?? a.rejected.to.find((r) => r.tag === open.tag);
    if (gone) return { ...where, retract: { iid: open.iid, tag: open.tag, reason: rejectionMessage(gone) } };
  }
  const f = a.from;
  if (!f) return none(`gitops-bot has not deployed ${a.app} in ${step.from}`);
  if (f.status === 'failed')
    return none(`the deployment of ${a.app} in ${step.from} failed (#${f.deployment})`);
  if (f.status !== 'success')
    return wait(`${a.app} is still deploying in ${step.from} (#${f.deployment}, ${f.status})`);
  if (!a.image || !f.tag) return none(`no image of ${a.app} at ${f.sha.slice(0, 8)} in ${step.from}'s files`);
  const tag = f.tag;
  // never skip an environment: only what ran healthy in `from` moves on, and never a tag
  // that was rolled back from either environment
  const rejected = a.rejected.from.find((r) => r.tag === tag) ?? a.rejected.to.find((r) => r.tag === tag);
  if (rejected) return none(`rejected: ${rejectionMessage(rejected)}`);
  if (a.toTag === tag) return none(`${step.to} runs ${tag} already`);
  if (a.toTag && compareTags(tag, a.toTag) === -1)
    return none(`${tag} is older than ${a.toTag}, which ${step.to} runs (a chain never goes back)`);
  // Tags that cannot be ordered (commit SHAs, names): the chain cannot tell forwards from
  // back (a rollback in `from` would look like news), so it leaves `to` to a person.
  if (a.toTag && compareTags(tag, a.toTag) === null)
    return none(
      `${tag} cannot be ordered against ${a.toTag}, which ${step.to} runs: the chain promotes only tags it can order (promote it by hand)`,
    );
  const mr = a.openMr;
  if (mr?.rollback) return wait(`a rollback of ${a.app} is open in ${step.to} (!${mr.iid})`);
  if (mr?.tag === tag) return none(`!${mr.iid} proposes ${tag} already`);
  if (mr?.tag) {
    const order = compareTags(tag, mr.tag);
    if (order === -1) return none(`!${mr.iid} proposes ${mr.tag}, newer than ${tag}`);
    if (order === null)
      return none(
        `!${mr.iid} proposes ${mr.tag}, which cannot be ordered against ${tag}; the chain leaves it`,
      );
  }
  if (!mr && a.closedMr?.tag === tag)
    return none(`!${a.closedMr.iid} proposing ${tag} was closed: not proposed again (a newer tag will be)`);
  const sinceMs = Date.parse(f.since);
  const soakEnd = sinceMs + step.soakMs;
  if (now.getTime() < soakEnd) {
    const until = new Date(soakEnd).toISOString();
    return wait(
      `soak: ${tag} healthy in ${step.from} since ${hhmm(f.since)} (${duration(now.getTime() - sinceMs)} of ${duration(step.soakMs)}); ${step.to} at ${hhmm(until)}`,
      until,
    );
  }
  const freeze = activeFreeze(toEnv.freeze, now);
  if (freeze) {
    const until = freezeEnd(toEnv, defaultBranch, now);
    return wait(
      `${step.to} is frozen (${freeze.days.join(',')} ${freeze.from}-${freeze.to} ${freeze.timezone})${freeze.reason ? `: ${freeze.reason}` : ''}`,
      until,
    );
  }
  return {
    ...where,
    open: {
      image: a.image,
      tag,
      ...(f.digest ? { digest: f.digest } : {}),
      since: f.since,
      files: a.toFiles ?? [],
      ...(a.toBranch ? { targetBranch: a.toBranch } : {}),
    },
    ...(mr ? { replaces: mr.iid } : {}),
    reason: `verified in ${step.from} since ${hhmm(f.since)} (${duration(now.getTime() - sinceMs)})`,
  };
}

/** Every step, every app. */
export function decideChain(facts: ChainFacts): ChainDecision[] {
  return facts.steps.flatMap((s) =>
    s.apps.map((a) => decideApp(s.step, s.toEnv, a, facts.now, facts.defaultBranch)),
  );
}

/** The earliest `until` of the waits (ISO), or null: when to decide again without an event. */
export function nextCheck(decisions: ChainDecision[]): string | null {
  const untils = decisions
    .map((d) => ('wait' in d ? d.until : undefined))
    .filter((u): u is string => !!u)
    .sort();
  return untils[0] ?? null;
}
