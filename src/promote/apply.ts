// Apply: the writes a decision implies, through the GitLab client. Each reports 'done', or
// 'lost-race' when GitLab shows that someone else moved first (the loop then observes again).
import { GitLabError, type MergeRequest, type Note } from '../gitlab/client.js';
import { pushesAfter } from '../gitlab/push-notes.js';
import { ensureSticky, stickyNotes } from '../gitlab/sticky.js';
import { DIFF_MARKER } from '../model/markers.js';
import {
  type ImageFacts,
  type PromotionRecord,
  readRecordComment,
  readRecordTrailer,
  sameProposal,
} from '../model/record.js';
import { mrDescription, mrTitle } from '../render/description.js';
import { diffComment } from '../render/diff-comment.js';
import { type Decision, newest, overtakenBy, type Write } from './decide.js';
import type { Observation } from './observe.js';
import { commitMessage, editActions, planEdits } from './plan.js';
import type { ManifestFile, PromoteForge, PromoteRequest, Scope } from './types.js';
import { PromoteError, PromoteExit } from './types.js';

export interface ApplyContext {
  gl: PromoteForge;
  req: PromoteRequest;
  scope: Scope;
  say: (line: string) => void;
  /** the registry's facts for the record (asked once per promotion; undefined: not asked) */
  facts: (deployedTag: string | undefined) => Promise<ImageFacts | undefined>;
}

export type Applied =
  | { kind: 'done'; commit?: string; mr?: { iid: number; url: string } }
  /** the branch was not where we read it: GitLab's head now (null: no branch) */
  | { kind: 'lost-race'; why: 'branch-moved'; head: string | null }
  /** a file changed on the target since it was read (what is known of the branch holds) */
  | { kind: 'lost-race'; why: 'target-moved' }
  /** someone opened the MR or wrote after our commit: the MR shows the branch again */
  | { kind: 'lost-race'; why: 'overtaken' };

const OVERTAKEN: Applied = { kind: 'lost-race', why: 'overtaken' };

export const ROLLBACK_LABEL = 'rollback';

/** gitops-bot, rollback for a rollback, and the request's own. */
function labelsOf(req: PromoteRequest): string[] {
  return ['gitops-bot', ...(req.rollback ? [ROLLBACK_LABEL] : []), ...(req.labels ?? [])];
}

export async function apply(ctx: ApplyContext, obs: Observation, d: Decision): Promise<Applied> {
  const [first, second] = d.writes;
  if (!first) return { kind: 'done' };
  const at = { gl: ctx.gl, project: ctx.scope.project };
  if (first.kind === 'finish-comment') {
    ctx.say(`adding the missing diff comment to !${first.iid}`);
    // finish-comment is decided on the open MR: obs.mr is that MR, the bot's
    await showDiff(
      { ...at, iid: first.iid, by: obs.mr?.authorUsername ?? '' },
      diffComment({ ...obs.plan.record, commit: first.commit }, obs.plan.diffs),
    );
    return { kind: 'done' };
  }
  if (first.kind === 'repair') {
    await restoreNewest({ ...ctx, mr: obs.mr!, files: obs.files }, first.proposal);
    return { kind: 'done' };
  }
  if (first.kind !== 'commit' || !second)
    throw new Error(`cannot apply ${d.writes.map((w) => w.kind).join(', ')}`);
  return propose(ctx, obs, first, second);
}

/** Commits the edit, then opens the MR or brings the open one to the new commit. */
async function propose(
  ctx: ApplyContext,
  obs: Observation,
  commitWrite: Extract<Write, { kind: 'commit' }>,
  then: Write,
): Promise<Applied> {
  const { gl, req, scope } = ctx;
  const { plan, files, mr } = obs;
  const facts = await ctx.facts(plan.deployedTag);
  const planned = facts ? { ...plan.record, registry: facts } : plan.record;
  // People are resolved before anything is written: a typo must not leave a branch behind.
  const people = await resolvePeople(gl, req, mr);
  let commit: string | null;
  try {
    commit = await gl.writeBranch(
      scope.project,
      scope.branch,
      commitWrite.expected,
      commitMessage(planned),
      editActions(plan, files),
      scope.target,
    );
  } catch (e) {
    if (
      e instanceof GitLabError &&
      e.status === 400 &&
      /has changed since you started editing/.test(e.gitlabMessage)
    )
      return { kind: 'lost-race', why: 'target-moved' };
    throw e;
  }
  // Someone moved the branch after we read it: read again, and decide again.
  if (!commit)
    return { kind: 'lost-race', why: 'branch-moved', head: await gl.branchHead(scope.project, scope.branch) };
  const record = { ...planned, commit };
  const shown = { record, people, comment: diffComment(record, plan.diffs) };
  return then.kind === 'update-mr' && mr ? updateMr(ctx, mr, shown) : openMr(ctx, shown);
}

interface Shown {
  record: PromotionRecord & { commit: string };
  people: People;
  comment: string;
}

async function openMr(ctx: ApplyContext, { record, people, comment }: Shown): Promise<Applied> {
  const { gl, req, scope } = ctx;
  let created: MergeRequest;
  try {
    created = await gl.createMergeRequest(scope.project, {
      sourceBranch: scope.branch,
      targetBranch: scope.target,
      title: mrTitle(record),
      description: mrDescription(record, gl.webUrl),
      assigneeIds: people.assigneeIds ?? [],
      reviewerIds: people.reviewerIds ?? [],
      labels: labelsOf(req),
    });
  } catch (e) {
    // Another run opened it first: start over and update that one.
    if (e instanceof GitLabError && e.status === 409) return OVERTAKEN;
    throw e;
  }
  ctx.say(`opened !${created.iid}: ${created.webUrl}`);
  // Someone committed after us, or the MR is another run's (after a failed attempt the
  // client takes the open MR of the branch for ours): look again.
  if (created.sha !== record.commit || readRecordComment(created.description)?.commit !== record.commit)
    return OVERTAKEN;
  await showDiff({ gl, project: scope.project, iid: created.iid, by: created.authorUsername }, comment, []);
  ctx.say(`commented the diff on !${created.iid}`);
  return { kind: 'done', commit: record.commit, mr: { iid: created.iid, url: created.webUrl } };
}

async function updateMr(
  ctx: ApplyContext,
  mr: MergeRequest,
  { record, people, comment }: Shown,
): Promise<Applied> {
  const { gl, req, scope } = ctx;
  const at = { gl, project: scope.project, iid: mr.iid, by: mr.authorUsername };
  const notes = await gl.notes(scope.project, mr.iid);
  const [sticky] = stickyNotes(notes, DIFF_MARKER, at.by);
  if (overtakenBy(readRecordComment(sticky?.body), record.commit, req)) return OVERTAKEN;
  await showDiff(at, comment, notes);
  const updated = await gl.updateMergeRequest(scope.project, mr.iid, {
    title: mrTitle(record),
    description: mrDescription(record, gl.webUrl),
    addLabels: labelsOf(req).filter((l) => !mr.labels.includes(l)),
    // a promotion that replaced an open rollback (--allow-rejected) is no rollback any more
    removeLabels: !req.rollback && mr.labels.includes(ROLLBACK_LABEL) ? [ROLLBACK_LABEL] : [],
    assigneeIds: people.assigneeIds,
    reviewerIds: people.reviewerIds,
  });
  if (updated.sha !== record.commit) return OVERTAKEN;
  ctx.say(`updated !${mr.iid}: ${mr.webUrl}`);
  return { kind: 'done', commit: record.commit, mr: { iid: mr.iid, url: mr.webUrl } };
}

/** Where the diff comment goes, and who writes it: the bot MR's author (only its comments count). */
interface NoteTarget {
  gl: PromoteForge;
  project: string;
  iid: number;
  by: string;
}

/**
 * Makes the MR's one diff comment read `body` (the sticky rule: the oldest comment stays).
 * When a race left duplicates, the survivor takes the text of the comment that describes
 * the MR's head, whichever run wrote it.
 */
async function showDiff({ gl, project, iid, by }: NoteTarget, body: string, known?: Note[]): Promise<void> {
  await ensureSticky(gl, { project, iid, by }, DIFF_MARKER, body, {
    known,
    settle: async (comments) => {
      const head = (await gl.mergeRequest(project, iid)).sha;
      return comments.find((c) => readRecordComment(c.body)?.commit === head)?.body;
    },
  });
}

type People = { assigneeIds?: number[]; reviewerIds?: number[] };

/** The ids of the assignees and reviewers to set: none when the MR has them already. */
async function resolvePeople(
  gl: PromoteForge,
  req: PromoteRequest,
  mr: MergeRequest | null,
): Promise<People> {
  const same = (want: string[] | undefined, have: Array<{ username: string }>) =>
    !want?.length ||
    (want.length === have.length &&
      want.every((u) => have.some((h) => h.username.toLowerCase() === u.toLowerCase())));
  const needAssignees = req.assignees?.length && !(mr && same(req.assignees, mr.assignees));
  const needReviewers = req.reviewers?.length && !(mr && same(req.reviewers, mr.reviewers));
  if (!needAssignees && !needReviewers) return {};
  const members = await gl.members(req.project);
  const ids = async (names: string[]) => {
    const out: number[] = [];
    for (const n of names) {
      const id = members.get(n.toLowerCase()) ?? (await gl.userId(n));
      if (id === null)
        throw new PromoteError(`no GitLab user '${n}' (from --assignee/--reviewer)`, PromoteExit.USAGE);
      out.push(id);
    }
    return out;
  };
  return {
    ...(needAssignees ? { assigneeIds: await ids(req.assignees!) } : {}),
    ...(needReviewers ? { reviewerIds: await ids(req.reviewers!) } : {}),
  };
}

interface RepairOptions {
  gl: PromoteForge;
  req: PromoteRequest;
  mr: MergeRequest;
  files: ManifestFile[];
  say: (line: string) => void;
}

/**
 * The repair after a race: make the branch, the description and the comment show the
 * newest proposal anyone can see right now (what this run read earlier may be stale), then
 * look once more. The branch is only ever moved by compare-and-swap, so a repair cannot
 * overwrite a newer commit that landed meanwhile; it loses the swap and looks again.
 */
async function restoreNewest(o: RepairOptions, candidate: PromotionRecord): Promise<void> {
  let record = candidate;
  for (let round = 0; round < 3; round++) {
    const seen = await visibleProposal(o.gl, o.req.project, o.mr);
    if (!seen.head) return; // merged or closed meanwhile: nothing left to repair
    record = seen.record ? (newest(record, seen.record) ?? record) : record;
    const described = await reconcile(o, record, { head: seen.head, notes: seen.notes });
    if (!described) continue;
    const after = await visibleProposal(o.gl, o.req.project, o.mr);
    if (after.head && after.head !== described) {
      // The branch moved while we wrote the projections: they may now hide a newer
      // proposal. Take the new head's record into account and look again.
      // (a trailer is trusted only when nobody but gitops-bot pushed since: anyone can write one)
      const [head, pushes] = await Promise.all([
        o.gl.commitInfo(o.req.project, after.head),
        o.gl.pushNotes(o.req.project, o.mr.iid),
      ]);
      if (!pushesAfter(pushes, o.mr.authorUsername).length)
        record = newest(record, readRecordTrailer(head?.message)) ?? record;
      continue;
    }
    if (!after.record || newest(record, after.record) === record) return;
    record = after.record;
  }
}

/** The newest of what the MR's description and its diff comment propose, and its head, read now. */
async function visibleProposal(
  gl: PromoteForge,
  project: string,
  mr: MergeRequest,
): Promise<{ record: PromotionRecord | null; head: string | null; notes: Note[] }> {
  const [fresh, notes] = await Promise.all([
    gl.openMergeRequest(project, mr.sourceBranch),
    gl.notes(project, mr.iid),
  ]);
  const described = readRecordComment(fresh?.description);
  const [sticky] = stickyNotes(notes, DIFF_MARKER, mr.authorUsername);
  const shown = readRecordComment(sticky?.body);
  return { record: newest(described, shown), head: fresh?.sha ?? null, notes };
}

/**
 * Makes the branch, the description and the comment describe `record` again. The branch
 * is reset to that record's edit when its head (`seen.head`) holds another proposal. Returns
 * the head the projections now describe; null when the branch moved meanwhile (nothing written).
 */
async function reconcile(
  o: RepairOptions,
  record: PromotionRecord,
  /** the MR's head and its notes, as visibleProposal just read them */
  seen: { head: string; notes: Note[] },
): Promise<string | null> {
  const { gl, req, mr } = o;
  const plan = planEdits(req, o.files, record, record);
  const fixed: PromotionRecord = { ...record, files: plan.record.files, fromTag: plan.record.fromTag };
  let sha: string | null = seen.head;
  const onBranch = readRecordTrailer((await gl.commitInfo(req.project, seen.head))?.message);
  if (plan.contents.size && !(onBranch && sameProposal(onBranch, fixed))) {
    sha = await gl.writeBranch(
      req.project,
      mr.sourceBranch,
      seen.head,
      commitMessage(fixed),
      editActions(plan, o.files),
      record.target,
    );
    if (!sha) return null;
  }
  const withCommit = { ...fixed, commit: sha };
  o.say(`bringing !${mr.iid} back in step with its branch (${record.tag ?? record.digest})`);
  const body = diffComment(withCommit, plan.diffs);
  const at = { gl, project: req.project, iid: mr.iid, by: mr.authorUsername };
  await showDiff(at, body, seen.notes);
  await gl.updateMergeRequest(req.project, mr.iid, {
    title: mrTitle(withCommit),
    description: mrDescription(withCommit, gl.webUrl),
  });
  return sha;
}
