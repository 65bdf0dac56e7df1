// Observe: the facts of each environment chain, read from GitLab into plain data (decide.ts
// judges them). What a Developer cannot write decides: the rules on the protected default
// branch (as the gate reads them), GitLab's Deployments that gitops-bot itself created, and
// the tags in the files at those deployments' commits and on the target branch. The open
// MR's record and the merged rollbacks' records (descriptions) can only hold the chain back:
// a copy there never opens an MR, and the MR opened goes through the gate like any other.
//
// Requests per app on a step: its deployments (1); when it runs healthy in `from`, the tree
// and the manifests of `from` at the deployment (1 + files) and of `to` on its branch
// (1 + files), the open MR (1) and the merged MRs of both bot branches (2). Per run: the
// rules (2-3, or none when serve has them) and the environments of each `from` (1).
import { log } from '../base/log.js';
import type { GateContext } from '../gate/facts.js';
import { type RulesInForce, rulesInForce } from '../gate/trust.js';
import { current, deploymentsOf, refIn, tagIn } from '../history/healthy.js';
import { botBranch } from '../model/markers.js';
import { readRecordComment, readRecordTrailer } from '../model/record.js';
import { durationMs, type Environment, type Policy } from '../policy/schema.js';
import { decodeText } from '../promote/observe.js';
import { rejections } from '../promote/rejections.js';
import { appImage, matchFiles } from '../promote/targets.js';
import { PromoteError, PromoteExit } from '../promote/types.js';
import type { ChainAppFacts, ChainFacts, ChainStep, ChainStepFacts } from './decide.js';

/** manifests of one environment read to find an app's image */
const MAX_FILES = 50;

export interface ChainObserved {
  facts: ChainFacts;
  /** why no chain is looked at (no steps, untrusted rules), or null */
  skipped: string | null;
}

/** The steps of a policy, with their soak in ms. */
export function stepsOf(policy: Policy): ChainStep[] {
  return policy.promotion.map((p) => ({
    from: p.from,
    to: p.to,
    soakMs: p.soak ? durationMs(p.soak, 'soak') : 0,
    assignees: p.assignees,
    reviewers: p.reviewers,
  }));
}

export async function observeChain(
  ctx: GateContext,
  project: string,
  known?: RulesInForce,
): Promise<ChainObserved> {
  const gl = ctx.gitlab;
  const rules = known ?? (await rulesInForce(gl, project, ctx.policy));
  const now = ctx.now?.() ?? new Date();
  const empty = (skipped: string): ChainObserved => ({
    facts: { now, defaultBranch: rules.defaultBranch, steps: [] },
    skipped,
  });
  const policy = rules.policy;
  if (!policy || 'error' in policy) return empty(policy ? `invalid policy: ${policy.error}` : 'no policy');
  if (!policy.promotion.length) return empty('no promotion steps');
  if (!rules.defaultProtected)
    return empty(
      `the default branch ${rules.defaultBranch} is not protected, so its rules cannot be trusted`,
    );
  const all = new Map<string, Awaited<ReturnType<typeof gl.listEnvironments>>>();
  const envsOf = async (from: string) => {
    // GitLab's search wants 3 characters at least
    const prefix = `${from}/`;
    if (!all.has(prefix))
      all.set(prefix, await gl.listEnvironments(project, prefix.length >= 3 ? { search: prefix } : {}));
    return all.get(prefix)!;
  };
  const steps: ChainStepFacts[] = [];
  for (const step of stepsOf(policy)) {
    const fromEnv = policy.environments.find((e) => e.name === step.from)!;
    const toEnv = policy.environments.find((e) => e.name === step.to) ?? null;
    const apps = (await envsOf(step.from))
      .filter((e) => e.name.startsWith(`${step.from}/`) && !e.name.slice(step.from.length + 1).includes('/'))
      .map((e) => e.name.slice(step.from.length + 1))
      .sort();
    const facts: ChainAppFacts[] = [];
    for (const app of apps) {
      try {
        facts.push(
          await observeApp(ctx, project, step, { from: fromEnv, to: toEnv }, rules.defaultBranch, app),
        );
      } catch (e) {
        if (!(e instanceof PromoteError)) throw e;
        facts.push({ ...blank(app), problem: e.message });
      }
    }
    steps.push({ step, toEnv, apps: facts });
  }
  return { facts: { now, defaultBranch: rules.defaultBranch, steps }, skipped: null };
}

function blank(app: string): ChainAppFacts {
  return { app, image: null, from: null, toTag: null, openMr: null, rejected: { from: [], to: [] } };
}

/** One app of one step; reads stop where decide has what it needs (nothing healthy in `from`). */
async function observeApp(
  ctx: GateContext,
  project: string,
  step: ChainStep,
  envs: { from: Environment; to: Environment | null },
  defaultBranch: string,
  app: string,
): Promise<ChainAppFacts> {
  const gl = ctx.gitlab;
  const environment = `${step.from}/${app}`;
  const now = current(await deploymentsOf(gl, project, environment, ctx.botUserId));
  const out = blank(app);
  if (!now) return out;
  const d = now.deployment;
  out.from = { deployment: d.id, sha: d.sha, status: d.status, tag: null, since: now.since };
  if (!now.healthy) return out;
  // the app's image and its tag, from `from`'s manifests at the deployment's commit
  const files = await manifests(ctx, project, envs.from, d.sha);
  const image = appImage(files, app);
  if (image && typeof image !== 'string') return { ...out, problem: `${environment}: ${image.error}` };
  if (!image) return out;
  out.image = image;
  for (const f of files) {
    const ref = refIn(f.text, f.path, image);
    if (!ref) continue;
    out.from.tag = ref.tag;
    if (ref.digest) out.from.digest = ref.digest;
    break;
  }
  if (!envs.to) return out;
  // `to`'s files that hold the image, on its branch, as the rules in force map them (the
  // same rules the gate reads: also with `serve --policy`, when the repository has none)
  const toBranch = envs.to.match.target_branches?.[0] ?? defaultBranch;
  const toFiles = (await manifests(ctx, project, envs.to, toBranch))
    .map((f) => ({ ...f, tag: tagIn(f.text, f.path, image) }))
    .filter((f) => f.tag);
  if (!toFiles.length)
    return {
      ...out,
      problem: `no file of ${step.to} (${(envs.to.match.files ?? []).join(', ')}) at ${toBranch} references ${image}`,
    };
  out.toFiles = toFiles.map((f) => f.path);
  out.toBranch = toBranch;
  out.toTag = toFiles[0].tag;
  const [mr, mergedFrom, mergedTo] = await Promise.all([
    gl.openMergeRequest(project, botBranch(step.to, app)),
    gl.mergedMergeRequests(project, botBranch(step.from, app)),
    gl.mergedMergeRequests(project, botBranch(step.to, app)),
  ]);
  if (mr) {
    const record = readRecordComment(mr.description);
    out.openMr = {
      iid: mr.iid,
      tag: record?.tag ?? null,
      rollback: !!record?.rollback || mr.labels.includes('rollback'),
      ...(record?.chain ? { chain: true } : {}),
    };
  } else out.closedMr = await closedAtHead(ctx, project, botBranch(step.to, app));
  out.rejected = { from: rejections(mergedFrom), to: rejections(mergedTo) };
  return out;
}

/**
 * The MR a person closed at the head of the bot's branch, and the tag the head's record
 * proposes (2 requests: the head commit, its MRs). A promotion of a newer tag moves the
 * head, so only the proposal that was closed is held back.
 */
async function closedAtHead(
  ctx: GateContext,
  project: string,
  branch: string,
): Promise<ChainAppFacts['closedMr']> {
  const head = await ctx.gitlab.commitInfo(project, branch);
  if (!head) return null;
  const closed = (await ctx.gitlab.commitMergeRequests(project, head.id))
    .filter((m) => m.state === 'closed' && m.sha === head.id)
    .sort((a, b) => b.iid - a.iid)[0];
  return closed ? { iid: closed.iid, tag: readRecordTrailer(head.message)?.tag ?? null } : null;
}

/** The manifests of `env` (its match.files globs) at `ref`, as text. */
async function manifests(
  ctx: GateContext,
  project: string,
  env: Environment,
  ref: string,
): Promise<Array<{ path: string; text: string }>> {
  const gl = ctx.gitlab;
  const globs = env.match.files ?? [];
  if (!globs.length)
    throw new PromoteError(
      `the environment ${env.name} names no files (match.files): the chain cannot tell its image`,
      PromoteExit.USAGE,
    );
  const { literal, found } = await matchFiles(gl, project, globs, ref);
  const paths = [...new Set([...literal, ...found])].sort().slice(0, MAX_FILES);
  const out: Array<{ path: string; text: string }> = [];
  for (const path of paths) {
    const f = await gl.readFile(project, path, ref);
    if (!f) continue;
    try {
      out.push({ path, text: decodeText(path, f.content) });
    } catch (e) {
      if (!(e instanceof PromoteError)) throw e;
      log.debug({ project, path, error: e.message }, 'chain: a file that is not a manifest');
    }
  }
  return out;
}
