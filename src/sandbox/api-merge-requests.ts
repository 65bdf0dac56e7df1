// REST routes for merge requests, their approvals and notes.
import { type ApiDeps, authed } from './api-repository.js';
import {
  ApiError,
  badRequest,
  bool,
  type Ctx,
  conflict,
  forbidden,
  intList,
  missing,
  notFound,
  Page,
  type Router,
  str,
  stringList,
  unauthorized,
} from './http.js';
import { AccessLevel, type MergeRequest, type Project, type User } from './state.js';

const NOTE_LIMIT = 1_000_000;

export function registerMergeRequestRoutes(router: Router, { core, entities }: ApiDeps): void {
  const store = core.store;
  const hooks = core.hooks;
  const project = (ctx: Ctx) => core.project(ctx.user, ctx.params.id);
  const findMr = (ctx: Ctx): { p: Project; mr: MergeRequest } => {
    const p = project(ctx);
    const mr = store.mergeRequest(p.id, Number(ctx.params.iid));
    if (!mr) throw notFound();
    return { p, mr };
  };
  const resolveUsers = (ids: number[] | undefined): number[] | undefined =>
    ids?.filter((id) => store.user(id) !== undefined);

  router.on(
    'GET',
    '/projects/:id/merge_requests',
    async (ctx) => {
      const p = project(ctx);
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
      for (const m of list) out.push(await entities.mergeRequest(p, m));
      return new Page(out);
    },
    { jobToken: true },
  );

  router.on('POST', '/projects/:id/merge_requests', async (ctx) => {
    const user = authed(ctx);
    const p = project(ctx);
    const source = str(ctx, 'source_branch');
    const target = str(ctx, 'target_branch');
    const title = str(ctx, 'title');
    const absent = [
      ...(source ? [] : ['source_branch']),
      ...(target ? [] : ['target_branch']),
      ...(title ? [] : ['title']),
    ];
    if (absent.length) throw missing(...absent);
    core.require(user, p, AccessLevel.DEVELOPER);
    const repo = core.repo(p);
    const description = str(ctx, 'description') ?? '';
    if (description.length > 1_048_576) {
      throw badRequest({ description: ['is too long (maximum is 1048576 characters)'] });
    }
    if (source === target) throw conflict(['You must select different branches']);
    const sourceSha = await repo.branchHead(source!);
    const errors: string[] = [];
    if (!sourceSha) errors.push(`Source branch "${source}" does not exist`);
    if (!(await repo.branchHead(target!))) errors.push(`Target branch "${target}" does not exist`);
    if (errors.length) throw badRequest(errors);
    const existing = store.data.mergeRequests.find(
      (m) =>
        m.projectId === p.id &&
        m.state === 'opened' &&
        m.sourceBranch === source &&
        m.targetBranch === target,
    );
    if (existing) {
      throw conflict([`Another open merge request already exists for this source branch: !${existing.iid}`]);
    }
    const now = new Date().toISOString();
    const assigneeIds = resolveUsers(intList(ctx, 'assignee_ids') ?? intList(ctx, 'assignee_id')) ?? [];
    const mr: MergeRequest = {
      id: store.nextId('merge_request'),
      iid: p.nextMrIid++,
      projectId: p.id,
      title: title!,
      description,
      state: 'opened',
      sourceBranch: source!,
      targetBranch: target!,
      authorId: user.id,
      assigneeIds,
      reviewerIds: resolveUsers(intList(ctx, 'reviewer_ids')) ?? [],
      labels: stringList(ctx, 'labels') ?? [],
      removeSourceBranch: bool(ctx, 'remove_source_branch') ?? false,
      squash: bool(ctx, 'squash') ?? false,
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
    hooks.mergeRequest(p, mr, user, 'open');
    ctx.res.statusCode = 201;
    return entities.mergeRequest(p, mr);
  });

  router.on(
    'GET',
    '/projects/:id/merge_requests/:iid',
    (ctx) => {
      const { p, mr } = findMr(ctx);
      return entities.mergeRequest(p, mr);
    },
    { jobToken: true },
  );

  router.on('PUT', '/projects/:id/merge_requests/:iid', async (ctx) => {
    const user = authed(ctx);
    const { p, mr } = findMr(ctx);
    const canUpdate = mr.authorId === user.id || core.accessLevel(user, p) >= AccessLevel.DEVELOPER;
    if (!canUpdate) throw forbidden();
    const keys = [
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
    if (!keys.some((k) => ctx.body[k] !== undefined || ctx.query.has(k) || ctx.query.has(`${k}[]`))) {
      throw new ApiError(400, {
        error: `${keys.join(', ')} are missing, at least one parameter must be provided`,
      });
    }
    const changes: Record<string, unknown> = {};
    const title = str(ctx, 'title');
    if (title !== undefined) mr.title = title;
    const description = str(ctx, 'description');
    if (description !== undefined) {
      if (description.length > 1_048_576) {
        throw badRequest({ description: ['is too long (maximum is 1048576 characters)'] });
      }
      mr.description = description;
    }
    const target = str(ctx, 'target_branch');
    if (target !== undefined) {
      if (!(await core.repo(p).branchHead(target)))
        throw badRequest([`Target branch "${target}" does not exist`]);
      mr.targetBranch = target;
    }
    const labels = stringList(ctx, 'labels');
    if (labels !== undefined) mr.labels = labels;
    for (const l of stringList(ctx, 'add_labels') ?? []) if (!mr.labels.includes(l)) mr.labels.push(l);
    const remove = stringList(ctx, 'remove_labels');
    if (remove) mr.labels = mr.labels.filter((l) => !remove.includes(l));
    const assignees = resolveUsers(intList(ctx, 'assignee_ids') ?? intList(ctx, 'assignee_id'));
    if (assignees !== undefined) mr.assigneeIds = assignees;
    const reviewers = resolveUsers(intList(ctx, 'reviewer_ids'));
    if (reviewers !== undefined) mr.reviewerIds = reviewers;
    const removeSource = bool(ctx, 'remove_source_branch');
    if (removeSource !== undefined) mr.removeSourceBranch = removeSource;
    const squash = bool(ctx, 'squash');
    if (squash !== undefined) mr.squash = squash;
    const locked = bool(ctx, 'discussion_locked');
    if (locked !== undefined) mr.discussionLocked = locked;
    const stateEvent = str(ctx, 'state_event');
    let action = 'update';
    const now = new Date().toISOString();
    if (stateEvent === 'close' && mr.state === 'opened') {
      mr.state = 'closed';
      mr.closedAt = now;
      mr.closedById = user.id;
      action = 'close';
    } else if (stateEvent === 'reopen' && mr.state === 'closed') {
      const other = store.data.mergeRequests.find(
        (m) =>
          m !== mr &&
          m.projectId === p.id &&
          m.state === 'opened' &&
          m.sourceBranch === mr.sourceBranch &&
          m.targetBranch === mr.targetBranch,
      );
      if (other)
        throw conflict([`Another open merge request already exists for this source branch: !${other.iid}`]);
      const head = await core.repo(p).branchHead(mr.sourceBranch);
      if (!head) throw badRequest([`Source branch "${mr.sourceBranch}" does not exist`]);
      mr.state = 'opened';
      mr.closedAt = null;
      mr.closedById = null;
      if (head !== mr.sha) {
        mr.sha = head;
        await core.addVersion(p, mr);
      }
      action = 'reopen';
    } else if (stateEvent !== undefined && stateEvent !== 'close' && stateEvent !== 'reopen') {
      throw new ApiError(400, { error: 'state_event does not have a valid value' });
    }
    changes.updated_at = { previous: mr.updatedAt, current: now };
    mr.updatedAt = now;
    store.changed();
    hooks.mergeRequest(p, mr, user, action);
    return entities.mergeRequest(p, mr);
  });

  router.on('PUT', '/projects/:id/merge_requests/:iid/merge', async (ctx) => {
    const user = authed(ctx);
    const { p, mr } = findMr(ctx);
    await core.merge(user, p, mr, {
      sha: str(ctx, 'sha'),
      removeSourceBranch: bool(ctx, 'should_remove_source_branch'),
      message: str(ctx, 'merge_commit_message'),
    });
    return entities.mergeRequest(p, mr);
  });

  const diffBase = async (_p: Project, mr: MergeRequest) => {
    const v = mr.versions[0];
    if (mr.state === 'merged' || !v) return v ? { base: v.baseCommitSha, head: v.headCommitSha } : null;
    return { base: v.baseCommitSha, head: mr.sha };
  };

  router.on('GET', '/projects/:id/merge_requests/:iid/changes', async (ctx) => {
    const { p, mr } = findMr(ctx);
    const refs = await diffBase(p, mr);
    const diffs = refs ? await core.repo(p).diff(refs.base, refs.head) : [];
    return {
      ...(await entities.mergeRequest(p, mr)),
      changes: diffs.map((d) => entities.diff(d)),
      changes_count: String(diffs.length),
      overflow: false,
    };
  });

  router.on('GET', '/projects/:id/merge_requests/:iid/diffs', async (ctx) => {
    const { p, mr } = findMr(ctx);
    const refs = await diffBase(p, mr);
    const diffs = refs ? await core.repo(p).diff(refs.base, refs.head) : [];
    return new Page(diffs.map((d) => entities.diff(d)));
  });

  router.on('GET', '/projects/:id/merge_requests/:iid/commits', async (ctx) => {
    const { p, mr } = findMr(ctx);
    const v = mr.versions[0];
    const commits = v ? await core.repo(p).logRange(v.baseCommitSha, mr.sha) : [];
    return new Page(commits.map((c) => entities.commit(p, c)));
  });

  router.on('GET', '/projects/:id/merge_requests/:iid/versions', (ctx) => {
    const { mr } = findMr(ctx);
    return new Page(
      mr.versions.map((v) => ({
        id: v.id,
        head_commit_sha: v.headCommitSha,
        base_commit_sha: v.baseCommitSha,
        start_commit_sha: v.startCommitSha,
        created_at: v.createdAt,
        merge_request_id: mr.id,
        state: 'collected',
        real_size: '1',
        patch_id_sha: v.headCommitSha,
      })),
    );
  });

  // ---------- approvals ----------

  const approvalsEntity = (p: Project, mr: MergeRequest, viewer: User | null) => ({
    ...entities.mergeRequestBasics(p, mr),
    merge_status: 'can_be_merged',
    approved: true,
    approvals_required: 0,
    approvals_left: 0,
    require_password_to_approve: false,
    approved_by: mr.approvals.map((a) => ({ user: entities.userById(a.userId), approved_at: a.approvedAt })),
    suggested_approvers: [],
    approvers: [],
    approver_groups: [],
    user_has_approved: !!viewer && mr.approvals.some((a) => a.userId === viewer.id),
    user_can_approve: !!viewer && canApprove(viewer, p, mr),
    approval_rules_left: [],
    has_approval_rules: false,
    merge_request_approvers_available: false,
    multiple_approval_rules_available: false,
    invalid_approvers_rules: [],
  });

  const canApprove = (user: User, p: Project, mr: MergeRequest) =>
    mr.state === 'opened' &&
    (mr.authorId !== user.id || !!p.authorApproval) &&
    core.accessLevel(user, p) >= AccessLevel.DEVELOPER &&
    !mr.approvals.some((a) => a.userId === user.id);

  // Project approval settings (GitLab Premium's API; here for merge_requests_author_approval).
  router.on('POST', '/projects/:id/approvals', (ctx) => {
    const p = project(ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    const author = bool(ctx, 'merge_requests_author_approval');
    if (author !== undefined) p.authorApproval = author;
    store.changed();
    return { merge_requests_author_approval: !!p.authorApproval, reset_approvals_on_push: false };
  });

  router.on('GET', '/projects/:id/merge_requests/:iid/approvals', (ctx) => {
    const { p, mr } = findMr(ctx);
    return approvalsEntity(p, mr, ctx.user);
  });

  router.on('POST', '/projects/:id/merge_requests/:iid/approve', (ctx) => {
    const user = authed(ctx);
    const { p, mr } = findMr(ctx);
    const sha = str(ctx, 'sha');
    if (sha && sha !== mr.sha) throw conflict(`SHA does not match HEAD of source branch: ${mr.sha}`);
    if (!canApprove(user, p, mr)) throw unauthorized();
    mr.approvals.push({ userId: user.id, approvedAt: new Date().toISOString(), sha: mr.sha });
    store.changed();
    // With no required approvals (GitLab Free) one approval makes the MR approved.
    hooks.mergeRequest(p, mr, user, 'approved');
    ctx.res.statusCode = 201;
    return approvalsEntity(p, mr, user);
  });

  router.on('POST', '/projects/:id/merge_requests/:iid/unapprove', (ctx) => {
    const user = authed(ctx);
    const { p, mr } = findMr(ctx);
    const i = mr.approvals.findIndex((a) => a.userId === user.id);
    if (i < 0) throw notFound();
    mr.approvals.splice(i, 1);
    store.changed();
    hooks.mergeRequest(p, mr, user, mr.approvals.length ? 'unapproval' : 'unapproved');
    ctx.res.statusCode = 201;
    return approvalsEntity(p, mr, user);
  });

  // ---------- notes ----------

  const findNote = (ctx: Ctx) => {
    const { p, mr } = findMr(ctx);
    const note = store.data.notes.find(
      (n) => n.projectId === p.id && n.mrIid === mr.iid && n.id === Number(ctx.params.note_id),
    );
    if (!note) throw notFound('Note');
    return { p, mr, note };
  };

  const oneOf = (ctx: Ctx, name: string, values: string[]): string | undefined => {
    const v = str(ctx, name);
    if (v !== undefined && !values.includes(v))
      throw new ApiError(400, { error: `${name} does not have a valid value` });
    return v;
  };

  const noteBody = (ctx: Ctx): string => {
    const body = str(ctx, 'body');
    if (body === undefined || body === '') throw missing('body');
    if (body.length > NOTE_LIMIT) {
      throw badRequest({ note: [`is too long (maximum is ${NOTE_LIMIT} characters)`] });
    }
    return body;
  };

  router.on(
    'GET',
    '/projects/:id/merge_requests/:iid/notes',
    (ctx) => {
      const { p, mr } = findMr(ctx);
      const orderBy =
        oneOf(ctx, 'order_by', ['created_at', 'updated_at']) === 'updated_at' ? 'updatedAt' : 'createdAt';
      const sort = oneOf(ctx, 'sort', ['asc', 'desc']) ?? 'desc';
      // UserPreference::NOTES_FILTERS: comments and system notes (default), or one of them
      const filter = oneOf(ctx, 'activity_filter', ['all_notes', 'only_comments', 'only_activity']);
      const notes = store.data.notes
        .filter((n) => n.projectId === p.id && n.mrIid === mr.iid)
        .filter((n) =>
          filter === 'only_comments' ? !n.system : filter === 'only_activity' ? n.system : true,
        )
        .sort((a, b) => {
          const cmp = a[orderBy] === b[orderBy] ? a.id - b.id : a[orderBy] < b[orderBy] ? -1 : 1;
          return sort === 'asc' ? cmp : -cmp;
        });
      return new Page(notes.map((n) => entities.note(n, mr)));
    },
    { jobToken: true },
  );

  router.on('GET', '/projects/:id/merge_requests/:iid/notes/:note_id', (ctx) => {
    const { mr, note } = findNote(ctx);
    return entities.note(note, mr);
  });

  router.on('POST', '/projects/:id/merge_requests/:iid/notes', (ctx) => {
    const user = authed(ctx);
    const { p, mr } = findMr(ctx);
    const body = noteBody(ctx);
    if (core.accessLevel(user, p) < AccessLevel.GUEST && p.visibility === 'private') throw forbidden();
    if (mr.discussionLocked && core.accessLevel(user, p) < AccessLevel.DEVELOPER) throw forbidden();
    const now = new Date().toISOString();
    const note = {
      id: store.nextId('note'),
      projectId: p.id,
      mrIid: mr.iid,
      body,
      authorId: user.id,
      system: false,
      internal: bool(ctx, 'internal') ?? false,
      createdAt: now,
      updatedAt: now,
    };
    store.data.notes.push(note);
    store.changed();
    hooks.note(p, mr, note, user, 'create');
    ctx.res.statusCode = 201;
    return entities.note(note, mr);
  });

  router.on('PUT', '/projects/:id/merge_requests/:iid/notes/:note_id', (ctx) => {
    const user = authed(ctx);
    const { p, mr, note } = findNote(ctx);
    // System notes are GitLab's record (who pushed): not editable by anyone (NotePolicy).
    if (note.system) throw forbidden();
    if (note.authorId !== user.id && !user.isAdmin) throw forbidden();
    note.body = noteBody(ctx);
    note.updatedAt = new Date().toISOString();
    store.changed();
    hooks.note(p, mr, note, user, 'update');
    return entities.note(note, mr);
  });

  router.on('DELETE', '/projects/:id/merge_requests/:iid/notes/:note_id', (ctx) => {
    const user = authed(ctx);
    const { p, note } = findNote(ctx);
    if (note.system) throw forbidden();
    if (note.authorId !== user.id && core.accessLevel(user, p) < AccessLevel.MAINTAINER) throw forbidden();
    store.data.notes.splice(store.data.notes.indexOf(note), 1);
    store.changed();
    ctx.res.statusCode = 204;
    return undefined;
  });
}
