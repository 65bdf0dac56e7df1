// Merge request operations: open, update (fields and state), approve, unapprove. Each checks
// everything it can refuse before it changes anything, so a refusal leaves the MR as it was.
import type { SandboxCore } from './core.js';
import { badRequest, conflict, forbidden, notFound, unauthorized } from './http.js';
import { AccessLevel, type MergeRequest, type Project, type User } from './state.js';

/** What a create or update asks for; undefined leaves a field as it is. */
export interface MergeRequestFields {
  title?: string;
  description?: string;
  targetBranch?: string;
  labels?: string[];
  addLabels?: string[];
  removeLabels?: string[];
  assigneeIds?: number[];
  reviewerIds?: number[];
  removeSourceBranch?: boolean;
  squash?: boolean;
  discussionLocked?: boolean;
}

export interface OpenMergeRequestInput extends MergeRequestFields {
  sourceBranch: string;
  targetBranch: string;
  title: string;
}

export type StateEvent = 'close' | 'reopen';

const DESCRIPTION_LIMIT = 1_048_576;

/** GitLab's length check on a description, shared by create and update. */
export function checkDescription(description: string | undefined): void {
  if (description !== undefined && description.length > DESCRIPTION_LIMIT) {
    throw badRequest({ description: [`is too long (maximum is ${DESCRIPTION_LIMIT} characters)`] });
  }
}

/** The ids of users that exist (GitLab drops the others). */
function knownUsers(core: SandboxCore, ids: number[] | undefined): number[] | undefined {
  return ids?.filter((id) => core.store.user(id) !== undefined);
}

/** GitLab allows one open MR per source and target branch: 409 naming the other. */
function refuseSecondOpen(
  core: SandboxCore,
  p: Project,
  source: string,
  target: string,
  self?: MergeRequest,
) {
  const other = core.store.data.mergeRequests.find(
    (m) =>
      m !== self &&
      m.projectId === p.id &&
      m.state === 'opened' &&
      m.sourceBranch === source &&
      m.targetBranch === target,
  );
  if (other) {
    throw conflict([`Another open merge request already exists for this source branch: !${other.iid}`]);
  }
}

export async function openMergeRequest(
  core: SandboxCore,
  user: User,
  p: Project,
  input: OpenMergeRequestInput,
): Promise<MergeRequest> {
  const store = core.store;
  core.require(user, p, AccessLevel.DEVELOPER);
  const repo = core.repo(p);
  checkDescription(input.description);
  if (input.sourceBranch === input.targetBranch) throw conflict(['You must select different branches']);
  const sourceSha = await repo.branchHead(input.sourceBranch);
  const errors: string[] = [];
  if (!sourceSha) errors.push(`Source branch "${input.sourceBranch}" does not exist`);
  if (!(await repo.branchHead(input.targetBranch)))
    errors.push(`Target branch "${input.targetBranch}" does not exist`);
  if (errors.length) throw badRequest(errors);
  refuseSecondOpen(core, p, input.sourceBranch, input.targetBranch);
  const now = new Date().toISOString();
  const mr: MergeRequest = {
    id: store.nextId('merge_request'),
    iid: p.nextMrIid++,
    projectId: p.id,
    title: input.title,
    description: input.description ?? '',
    state: 'opened',
    sourceBranch: input.sourceBranch,
    targetBranch: input.targetBranch,
    authorId: user.id,
    assigneeIds: knownUsers(core, input.assigneeIds) ?? [],
    reviewerIds: knownUsers(core, input.reviewerIds) ?? [],
    labels: input.labels ?? [],
    removeSourceBranch: input.removeSourceBranch ?? false,
    squash: input.squash ?? false,
    discussionLocked: false,
    sha: sourceSha!,
    mergeCommitSha: null,
    mergedById: null,
    mergedAt: null,
    closedById: null,
    closedAt: null,
    createdAt: now,
    updatedAt: now,
    versions: [],
    approvals: [],
  };
  // Listed before the first await: GitLab allows one open MR per source and target
  // branch, and a concurrent create must see this one (the chaos test caught two).
  store.data.mergeRequests.push(mr);
  try {
    await core.addVersion(p, mr);
  } catch (e) {
    store.data.mergeRequests.splice(store.data.mergeRequests.indexOf(mr), 1);
    throw e;
  }
  store.changed();
  core.hooks.mergeRequest(p, mr, user, 'open');
  return mr;
}

/** The author or a Developer may update a merge request. */
export function requireUpdate(core: SandboxCore, user: User, p: Project, mr: MergeRequest): void {
  if (mr.authorId !== user.id && core.accessLevel(user, p) < AccessLevel.DEVELOPER) throw forbidden();
}

/**
 * PUT on a merge request: its fields and a `close` or `reopen`. Refusals (a missing target
 * branch, a reopen that would make a second open MR or whose source branch is gone) come
 * before the first change.
 */
export async function updateMergeRequest(
  core: SandboxCore,
  user: User,
  p: Project,
  mr: MergeRequest,
  fields: MergeRequestFields,
  stateEvent: StateEvent | undefined,
): Promise<void> {
  requireUpdate(core, user, p, mr);
  const repo = core.repo(p);
  checkDescription(fields.description);
  const target = fields.targetBranch;
  if (target !== undefined && !(await repo.branchHead(target)))
    throw badRequest([`Target branch "${target}" does not exist`]);
  const closing = stateEvent === 'close' && mr.state === 'opened';
  const reopening = stateEvent === 'reopen' && mr.state === 'closed';
  let head: string | null = null;
  if (reopening) {
    refuseSecondOpen(core, p, mr.sourceBranch, target ?? mr.targetBranch, mr);
    head = await repo.branchHead(mr.sourceBranch);
    if (!head) throw badRequest([`Source branch "${mr.sourceBranch}" does not exist`]);
  }
  applyFields(core, mr, fields);
  const now = new Date().toISOString();
  let action = 'update';
  if (closing) {
    mr.state = 'closed';
    mr.closedAt = now;
    mr.closedById = user.id;
    action = 'close';
  } else if (reopening && head) {
    mr.state = 'opened';
    mr.closedAt = null;
    mr.closedById = null;
    if (head !== mr.sha) {
      mr.sha = head;
      await core.addVersion(p, mr);
    }
    action = 'reopen';
  }
  mr.updatedAt = now;
  core.store.changed();
  core.hooks.mergeRequest(p, mr, user, action);
}

function applyFields(core: SandboxCore, mr: MergeRequest, f: MergeRequestFields): void {
  if (f.title !== undefined) mr.title = f.title;
  if (f.description !== undefined) mr.description = f.description;
  if (f.targetBranch !== undefined) mr.targetBranch = f.targetBranch;
  if (f.labels !== undefined) mr.labels = f.labels;
  for (const l of f.addLabels ?? []) if (!mr.labels.includes(l)) mr.labels.push(l);
  const remove = f.removeLabels;
  if (remove) mr.labels = mr.labels.filter((l) => !remove.includes(l));
  const assignees = knownUsers(core, f.assigneeIds);
  if (assignees !== undefined) mr.assigneeIds = assignees;
  const reviewers = knownUsers(core, f.reviewerIds);
  if (reviewers !== undefined) mr.reviewerIds = reviewers;
  if (f.removeSourceBranch !== undefined) mr.removeSourceBranch = f.removeSourceBranch;
  if (f.squash !== undefined) mr.squash = f.squash;
  if (f.discussionLocked !== undefined) mr.discussionLocked = f.discussionLocked;
}

// ---------- approvals ----------

export function canApprove(core: SandboxCore, user: User, p: Project, mr: MergeRequest): boolean {
  return (
    mr.state === 'opened' &&
    (mr.authorId !== user.id || !!p.authorApproval) &&
    core.accessLevel(user, p) >= AccessLevel.DEVELOPER &&
    !mr.approvals.some((a) => a.userId === user.id)
  );
}

export function approve(
  core: SandboxCore,
  user: User,
  p: Project,
  mr: MergeRequest,
  sha: string | undefined,
): void {
  if (sha && sha !== mr.sha) throw conflict(`SHA does not match HEAD of source branch: ${mr.sha}`);
  if (!canApprove(core, user, p, mr)) throw unauthorized();
  mr.approvals.push({ userId: user.id, approvedAt: new Date().toISOString(), sha: mr.sha });
  core.store.changed();
  // With no required approvals (GitLab Free) one approval makes the MR approved.
  core.hooks.mergeRequest(p, mr, user, 'approved');
}

export function unapprove(core: SandboxCore, user: User, p: Project, mr: MergeRequest): void {
  const i = mr.approvals.findIndex((a) => a.userId === user.id);
  if (i < 0) throw notFound();
  mr.approvals.splice(i, 1);
  core.store.changed();
  core.hooks.mergeRequest(p, mr, user, mr.approvals.length ? 'unapproval' : 'unapproved');
}

/** Project approval settings (Premium's API; here for merge_requests_author_approval). */
export function setApprovalSettings(
  core: SandboxCore,
  user: User | null,
  p: Project,
  authorApproval: boolean | undefined,
): void {
  core.require(user, p, AccessLevel.MAINTAINER);
  if (authorApproval !== undefined) p.authorApproval = authorApproval;
  core.store.changed();
}
