// REST routes for merge requests: list with filters, create, show, update, merge.
import { type ApiDeps, authed, mergeRequestOf, oneOf, projectOf, requiredParams } from './api-common.js';
import {
  checkDescription,
  type MergeRequestFields,
  openMergeRequest,
  requireUpdate,
  type StateEvent,
  updateMergeRequest,
} from './core-merge-requests.js';
import { ApiError, bool, type Ctx, intList, Page, type Router, str, stringList } from './http.js';

/** The parameters PUT takes; at least one must be given. */
const UPDATE_KEYS = [
  'title',
  'description',
  'target_branch',
  'labels',
  'add_labels',
  'remove_labels',
  'assignee_id',
  'assignee_ids',
  'reviewer_ids',
  'state_event',
  'remove_source_branch',
  'squash',
  'discussion_locked',
  'milestone_id',
  'allow_collaboration',
];

/** The fields create and update share, every one checked (a bad value throws here, before any change). */
function sharedFields(ctx: Ctx) {
  const description = str(ctx, 'description');
  checkDescription(description);
  return {
    description,
    labels: stringList(ctx, 'labels'),
    assigneeIds: intList(ctx, 'assignee_ids') ?? intList(ctx, 'assignee_id'),
    reviewerIds: intList(ctx, 'reviewer_ids'),
    removeSourceBranch: bool(ctx, 'remove_source_branch'),
    squash: bool(ctx, 'squash'),
  };
}

/** What a PUT asks to change, every field checked. */
function updateFields(ctx: Ctx): MergeRequestFields {
  return {
    title: str(ctx, 'title'),
    targetBranch: str(ctx, 'target_branch'),
    ...sharedFields(ctx),
    addLabels: stringList(ctx, 'add_labels'),
    removeLabels: stringList(ctx, 'remove_labels'),
    discussionLocked: bool(ctx, 'discussion_locked'),
  };
}

export function register(router: Router, { core, entities }: ApiDeps): void {
  const store = core.store;

  router.on(
    'GET',
    '/projects/:id/merge_requests',
    async (ctx) => {
      const p = projectOf(core, ctx);
      const state = str(ctx, 'state') ?? 'all';
      const source = str(ctx, 'source_branch');
      const target = str(ctx, 'target_branch');
      const labels = stringList(ctx, 'labels');
      const author = str(ctx, 'author_username');
      const iids = intList(ctx, 'iids');
      const orderBy = str(ctx, 'order_by') ?? 'created_at';
      const sort = str(ctx, 'sort') ?? 'desc';
      const list = store.data.mergeRequests
        .filter((m) => m.projectId === p.id)
        .filter((m) => state === 'all' || m.state === state)
        .filter((m) => !source || m.sourceBranch === source)
        .filter((m) => !target || m.targetBranch === target)
        .filter((m) => !author || store.user(m.authorId)?.username === author)
        .filter((m) => !iids || iids.includes(m.iid))
        .filter((m) => {
          if (!labels) return true;
          if (labels.length === 1 && labels[0].toLowerCase() === 'none') return m.labels.length === 0;
          if (labels.length === 1 && labels[0].toLowerCase() === 'any') return m.labels.length > 0;
          return labels.every((l) => m.labels.includes(l));
        })
        .sort((a, b) => {
          const key = orderBy === 'updated_at' ? 'updatedAt' : 'createdAt';
          const cmp = a[key] === b[key] ? a.id - b.id : a[key] < b[key] ? -1 : 1;
          return sort === 'asc' ? cmp : -cmp;
        });
      const out = [];
      for (const m of list) out.push(await entities.mergeRequestListItem(p, m));
      return new Page(out);
    },
    { jobToken: true },
  );

  router.on('POST', '/projects/:id/merge_requests', async (ctx) => {
    const user = authed(ctx);
    const p = projectOf(core, ctx);
    const given = requiredParams(ctx, 'source_branch', 'target_branch', 'title');
    const mr = await openMergeRequest(core, user, p, {
      ...sharedFields(ctx),
      sourceBranch: given.source_branch,
      targetBranch: given.target_branch,
      title: given.title,
    });
    ctx.res.statusCode = 201;
    return entities.mergeRequest(p, mr);
  });

  router.on(
    'GET',
    '/projects/:id/merge_requests/:iid',
    (ctx) => {
      const { p, mr } = mergeRequestOf(core, ctx);
      return entities.mergeRequest(p, mr);
    },
    { jobToken: true },
  );

  router.on('PUT', '/projects/:id/merge_requests/:iid', async (ctx) => {
    const user = authed(ctx);
    const { p, mr } = mergeRequestOf(core, ctx);
    requireUpdate(core, user, p, mr);
    const given = (k: string) => ctx.body[k] !== undefined || ctx.query.has(k) || ctx.query.has(`${k}[]`);
    if (!UPDATE_KEYS.some(given)) {
      throw new ApiError(400, {
        error: `${UPDATE_KEYS.join(', ')} are missing, at least one parameter must be provided`,
      });
    }
    const changes = updateFields(ctx);
    const stateEvent = oneOf(ctx, 'state_event', ['close', 'reopen']) as StateEvent | undefined;
    await updateMergeRequest(core, user, p, mr, changes, stateEvent);
    return entities.mergeRequest(p, mr);
  });

  router.on('PUT', '/projects/:id/merge_requests/:iid/merge', async (ctx) => {
    const user = authed(ctx);
    const { p, mr } = mergeRequestOf(core, ctx);
    await core.merge(user, p, mr, {
      sha: str(ctx, 'sha'),
      removeSourceBranch: bool(ctx, 'should_remove_source_branch'),
      message: str(ctx, 'merge_commit_message'),
    });
    return entities.mergeRequest(p, mr);
  });
}
