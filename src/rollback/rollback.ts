// rollback: the merge request that brings an environment back to a tag that ran healthy
// there. Observe (GitLab's Deployments that gitops-bot recorded, the tags their commits'
// files held, what the target branch holds now, the tags rejected before) → decide
// (decide.ts chooseTarget, pure) → apply: a promotion of that tag on the app's branch with
// the rollback's facts (promote titles and labels it, waives the downgrade guard for it only
// and records why), and a note on the promotion MR it replaced.

import { GitLabError, type GitLabGate } from '../gitlab/client.js';
import { ensureSticky } from '../gitlab/sticky.js';
import { deploymentsOf, refAt, tagAt } from '../history/healthy.js';
import { botBranch, DEPLOY_STATUS_NAME, replacedMarker } from '../model/markers.js';
import { type PromotionRecord, readRecordComment } from '../model/record.js';
import {
  explain,
  PromoteError,
  PromoteExit,
  type PromoteResult,
  promote,
  validateRequest,
} from '../promote/promote.js';
import { rejections } from '../promote/rejections.js';
import { resolveTargets } from '../promote/targets.js';
import type { PromoteForge } from '../promote/types.js';
import type { RegistryClient } from '../registry/client.js';
import { code, plain } from '../render/markdown.js';
import { chooseTarget, type PastDeployment } from './decide.js';

export interface RollbackRequest {
  project: string;
  env: string;
  app: string;
  /** the tag to go back to (default: the last one that ran healthy before the deployed one) */
  to?: string;
  toPrevious?: boolean;
  reason?: string;
  /** the image repository (default: the one the app's last promotion here wrote) */
  image?: string;
  files?: string[];
  targetBranch?: string;
  assignees?: string[];
  reviewers?: string[];
  by?: 'command' | 'on_degraded';
  /** the agent's last words about the environment (default: gitops-bot/deploy's on the deployed commit) */
  agentMessage?: string;
  /**
   * Roll back only while the target branch still holds this tag (on_degraded: the one that
   * failed); else nothing is done (action noop): the rollback merged, or a newer tag came.
   */
  onlyFrom?: string;
  dryRun?: boolean;
}

export interface RollbackResult extends PromoteResult {
  /** the tag rolled back to */
  tag: string;
  /** the tag rolled back from */
  fromTag?: string;
  /** the open promotion MR the rollback replaced */
  replaced?: number;
}

export type RollbackForge = PromoteForge &
  Pick<GitLabGate, 'currentUser' | 'listDeployments' | 'commitStatus'>;

export interface RollbackDeps {
  gitlab: RollbackForge;
  registry?: RegistryClient;
  progress?: (line: string) => void;
}

/** How far back rollback reads the tags of past deployments (one file read each). */
const MAX_TAG_READS = 30;

export async function rollback(req: RollbackRequest, deps: RollbackDeps): Promise<RollbackResult> {
  try {
    return await run(req, deps);
  } catch (e) {
    if (e instanceof GitLabError) throw explain(e, { project: req.project });
    throw e;
  }
}

async function run(req: RollbackRequest, deps: RollbackDeps): Promise<RollbackResult> {
  const gl = deps.gitlab;
  const say = deps.progress ?? (() => {});
  const usage = (m: string) => new PromoteError(m, PromoteExit.USAGE);
  if (req.to && req.toPrevious) throw usage('--to and --to-previous name two targets: pass one');
  if (!req.env) throw usage('--env is required: the environment to roll back');
  if (!req.app) throw usage('--app is required: the app to roll back (its branch is gitops-bot/<env>/<app>)');
  // promote's own checks, before anything is read; the image and tag are known only later
  // (promote checks them again then), so stand-ins take their place unless given
  validateRequest({
    project: req.project,
    env: req.env,
    app: req.app,
    files: req.files ?? [],
    image: req.image ?? 'x',
    tag: req.to ?? 'x',
    assignees: req.assignees,
    reviewers: req.reviewers,
  });
  const branch = botBranch(req.env, req.app);
  const environment = `${req.env}/${req.app}`;
  say(`reading what gitops-bot recorded for ${req.app} in ${req.env}`);
  const [me, merged, open] = await Promise.all([
    gl.currentUser(),
    gl.mergedMergeRequests(req.project, branch),
    gl.openMergeRequest(req.project, branch),
  ]);
  const openRecord = open ? readRecordComment(open.description) : null;
  const image = req.image ?? lastImage(openRecord, merged);
  if (!image)
    throw usage(
      `no promotion of ${req.app} to ${req.env} on record (no merge request of ${branch}) to take the image from; pass --image`,
    );
  const t = await resolveTargets(gl, req.project, {
    env: req.env,
    image,
    files: req.files,
    targetBranch: req.targetBranch,
  });
  const [deployedTag, history] = await Promise.all([
    tagAt(gl, req.project, t.targetBranch, t.files, image),
    deploymentsOf(gl, req.project, environment, me.id),
  ]);
  if (req.onlyFrom && deployedTag !== req.onlyFrom) {
    const reason = `${t.targetBranch} holds ${deployedTag ?? 'no tag'} of ${req.app} now, not ${req.onlyFrom}: nothing to roll back`;
    say(reason);
    return {
      action: 'noop',
      reason,
      mr: null,
      branch,
      commit: null,
      changes: [],
      requests: gl.requests,
      tag: deployedTag ?? '',
      fromTag: req.onlyFrom,
    };
  }
  const rejected = rejections(merged);
  // The tags of past deployments, newest first, read until the choice is made.
  const past: PastDeployment[] = [];
  let reads = 0;
  for (const d of history) {
    let ref: { tag: string; digest?: string } | null = null;
    if (d.status === 'success' && reads++ < MAX_TAG_READS)
      ref = await refAt(gl, req.project, d.sha, t.files, image);
    const tag = ref?.tag ?? null;
    past.push({
      id: d.id,
      sha: d.sha,
      status: d.status,
      tag,
      ...(ref?.digest ? { digest: ref.digest } : {}),
      at: d.finishedAt ?? d.updatedAt,
    });
    if (tag && (req.to ? tag === req.to : tag !== deployedTag && !rejected.some((r) => r.tag === tag))) break;
  }
  const choice = chooseTarget({
    env: req.env,
    app: req.app,
    deployedTag,
    history: past,
    to: req.to,
    rejected,
  });
  if ('error' in choice) throw usage(choice.error);
  say(`rolling back ${req.app} in ${req.env} from ${choice.fromTag ?? '?'} to ${choice.tag}: ${choice.why}`);
  const ranAs = past.find((p) => p.id === choice.healthyDeployment);
  const agentMessage = req.agentMessage ?? (await lastAgentWords(gl, req.project, history[0]?.sha, me.id));
  const by = req.by ?? 'command';
  const reason =
    req.reason?.trim() ||
    (by === 'on_degraded'
      ? (agentMessage ?? 'the agent reported a failure')
      : 'asked with gitops-bot rollback');
  const result = await promote(
    {
      project: req.project,
      files: t.files,
      targetBranch: t.targetBranch,
      image,
      tag: choice.tag,
      // the digest that ran with the tag, when the files pinned one: a tag can be pushed again
      ...(ranAs?.digest ? { digest: ranAs.digest } : {}),
      env: req.env,
      app: req.app,
      assignees: req.assignees?.length ? req.assignees : (t.environment?.approvals.users ?? []),
      reviewers: req.reviewers ?? [],
      dryRun: req.dryRun,
      verifyImage: deps.registry ? 'auto' : false,
      rollback: {
        ...(choice.fromTag ? { fromTag: choice.fromTag } : {}),
        reason,
        ...(agentMessage ? { agentMessage } : {}),
        ...(choice.healthyDeployment ? { healthyDeployment: choice.healthyDeployment } : {}),
        waived: 'downgrade',
        by,
      },
    },
    { gitlab: gl, registry: deps.registry, progress: say },
  );
  const out: RollbackResult = {
    ...result,
    tag: choice.tag,
    ...(choice.fromTag ? { fromTag: choice.fromTag } : {}),
  };
  // The promotion MR this one was (the same branch: one MR per app and environment) says so.
  if (open && openRecord && !openRecord.rollback && result.action === 'updated') {
    const proposed = openRecord.tag ?? openRecord.digest ?? 'a tag';
    await ensureSticky(
      gl,
      { project: req.project, iid: open.iid, by: open.authorUsername },
      replacedMarker(proposed),
      `${replacedMarker(proposed)}\nThis merge request proposed ${code(proposed)}; gitops-bot replaced it with a **rollback** of ${code(req.app)} in **${req.env}** to ${code(choice.tag)}: ${plain(reason)}`,
    );
    say(`!${open.iid} proposed ${proposed}; it is now the rollback (noted there)`);
    out.replaced = open.iid;
  }
  return out;
}

/** The image of the app's newest promotion on record: the open MR's, else the last merged one's. */
function lastImage(open: PromotionRecord | null, merged: Array<{ description: string }>): string | null {
  if (open?.image) return open.image;
  for (const mr of merged) {
    const r = readRecordComment(mr.description);
    if (r?.image) return r.image;
  }
  return null;
}

/** What gitops-bot last wrote of the agent on the deployed commit (its gitops-bot/deploy status). */
async function lastAgentWords(
  gl: RollbackForge,
  project: string,
  sha: string | undefined,
  botUserId: number,
): Promise<string | undefined> {
  if (!sha) return undefined;
  const s = await gl.commitStatus(project, sha, DEPLOY_STATUS_NAME);
  return s && s.authorId === botUserId && s.description ? s.description : undefined;
}
