// REST routes for instance, users, projects, members, repository files, tree, commits,
// compare, branches, commit statuses and project hooks.
import { createHash } from 'node:crypto';
import type { SandboxCore } from './core.js';
import type { Entities } from './entities.js';
import { type CommitAction, lineStats } from './git.js';
import {
  ApiError,
  badRequest,
  bool,
  type Ctx,
  forbidden,
  int,
  missing,
  notFound,
  Page,
  pageParams,
  param,
  type Router,
  setPageHeaders,
  str,
  stringList,
  unauthorized,
} from './http.js';
import { AccessLevel, type Project, type Protection, type User } from './state.js';

export interface ApiDeps {
  core: SandboxCore;
  entities: Entities;
}

export function authed(ctx: Ctx): User {
  if (!ctx.user) throw unauthorized();
  return ctx.user;
}

/** A repository path as GitLab accepts it: relative, no `..`, no NUL. */
export function filePath(raw: string, name = 'file_path'): string {
  if (
    !raw ||
    raw.startsWith('/') ||
    raw.includes('\0') ||
    raw.split('/').some((s) => s === '..' || s === '')
  ) {
    throw new ApiError(400, { error: `${name} should be a valid file path` });
  }
  return raw;
}

/** POST .../members for a project or a group: `user_id` joins `members` at `access_level`. */
export function addMember(ctx: Ctx, { core, entities }: ApiDeps, members: Record<string, number>) {
  const uid = int(ctx, 'user_id');
  const level = int(ctx, 'access_level');
  if (uid === undefined || level === undefined) {
    throw missing(
      ...(uid === undefined ? ['user_id'] : []),
      ...(level === undefined ? ['access_level'] : []),
    );
  }
  const u = core.store.user(uid);
  if (!u) throw notFound('User');
  if (members[String(uid)] !== undefined) throw new ApiError(409, { message: 'Member already exists' });
  members[String(uid)] = level;
  core.store.changed();
  ctx.res.statusCode = 201;
  return entities.member(u, level);
}

export function registerRepositoryRoutes(router: Router, { core, entities }: ApiDeps): void {
  const store = core.store;
  const project = (ctx: Ctx) => core.project(ctx.user, ctx.params.id);
  const ref = async (p: Project, name: string | undefined) => {
    const sha = await core.repo(p).resolve(name || p.defaultBranch);
    return sha;
  };

  for (const path of ['/version', '/metadata']) {
    router.on('GET', path, (ctx) => {
      authed(ctx);
      return { version: '17.11.0-sandbox', revision: 'sandbox', kas: { enabled: false }, enterprise: false };
    });
  }

  router.on('GET', '/user', (ctx) => entities.currentUser(authed(ctx)));

  router.on('GET', '/users', (ctx) => {
    authed(ctx);
    const username = str(ctx, 'username');
    const users = username
      ? store.data.users.filter((u) => u.username.toLowerCase() === username.toLowerCase())
      : store.data.users;
    return new Page(users.map((u) => entities.user(u)));
  });

  router.on('GET', '/users/:uid', (ctx) => {
    authed(ctx);
    const u = store.user(Number(ctx.params.uid));
    if (!u) throw notFound('User');
    return entities.user(u);
  });

  // ---------- projects ----------

  router.on('GET', '/projects', (ctx) => {
    const visible = store.data.projects.filter((p) => core.canRead(ctx.user, p));
    const membership = bool(ctx, 'membership');
    const list = membership
      ? visible.filter((p) => core.accessLevel(ctx.user, p) >= AccessLevel.GUEST)
      : visible;
    return new Page(list.map((p) => entities.project(p, ctx.user)));
  });

  router.on('POST', '/projects', async (ctx) => {
    const user = authed(ctx);
    const name = str(ctx, 'name');
    const path = str(ctx, 'path') ?? name?.toLowerCase().replace(/[^a-z0-9_.-]+/g, '-');
    if (!name && !path) throw missing('name', 'path');
    if (!path || !/^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$/.test(path)) throw badRequest({ path: ['is invalid'] });
    if (store.project(`${user.username}/${path}`))
      throw badRequest({ name: ['has already been taken'], path: ['has already been taken'] });
    const p: Project = {
      id: store.nextId('project'),
      name: name ?? path,
      path,
      namespace: user.username,
      description: str(ctx, 'description') ?? '',
      defaultBranch: str(ctx, 'default_branch') ?? 'main',
      visibility: (str(ctx, 'visibility') as Project['visibility']) ?? 'private',
      onlyAllowMergeIfPipelineSucceeds: bool(ctx, 'only_allow_merge_if_pipeline_succeeds') ?? false,
      removeSourceBranchAfterMerge: bool(ctx, 'remove_source_branch_after_merge') ?? true,
      members: { [String(user.id)]: AccessLevel.OWNER },
      nextMrIid: 1,
      createdAt: new Date().toISOString(),
    };
    store.data.projects.push(p);
    await core.initRepo(p);
    if (bool(ctx, 'initialize_with_readme')) {
      await core.createCommit(user, p, {
        branch: p.defaultBranch,
        message: 'Initial commit',
        actions: [{ action: 'create', filePath: 'README.md', content: Buffer.from(`# ${p.name}\n`) }],
      });
    }
    store.changed();
    ctx.res.statusCode = 201;
    return entities.project(p, user);
  });

  router.on('GET', '/projects/:id', (ctx) => entities.project(project(ctx), ctx.user));

  router.on('PUT', '/projects/:id', (ctx) => {
    const p = project(ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    const pipeline = bool(ctx, 'only_allow_merge_if_pipeline_succeeds');
    if (pipeline !== undefined) p.onlyAllowMergeIfPipelineSucceeds = pipeline;
    const remove = bool(ctx, 'remove_source_branch_after_merge');
    if (remove !== undefined) p.removeSourceBranchAfterMerge = remove;
    const description = str(ctx, 'description');
    if (description !== undefined) p.description = description;
    store.changed();
    return entities.project(p, ctx.user);
  });

  const members = (p: Project) =>
    Object.entries(p.members)
      .map(([id, level]) => ({ user: store.user(Number(id)), level }))
      .filter((m): m is { user: User; level: number } => !!m.user);

  for (const path of ['/projects/:id/members', '/projects/:id/members/all']) {
    router.on('GET', path, (ctx) => {
      const p = project(ctx);
      const query = str(ctx, 'query')?.toLowerCase();
      const ids = param(ctx, 'user_ids');
      const idList =
        ids === undefined ? null : (Array.isArray(ids) ? ids : String(ids).split(',')).map(Number);
      const list = members(p)
        .filter((m) => !query || m.user.username.includes(query) || m.user.name.toLowerCase().includes(query))
        .filter((m) => !idList || idList.includes(m.user.id));
      return new Page(list.map((m) => entities.member(m.user, m.level)));
    });
    router.on('GET', `${path}/:uid`, (ctx) => {
      const p = project(ctx);
      const m = members(p).find((x) => x.user.id === Number(ctx.params.uid));
      if (!m) throw notFound('Member');
      return entities.member(m.user, m.level);
    });
  }

  router.on('POST', '/projects/:id/members', (ctx) => {
    const p = project(ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    return addMember(ctx, { core, entities }, p.members);
  });

  // ---------- repository files ----------

  const fileResponse = async (ctx: Ctx, raw: boolean) => {
    const p = project(ctx);
    const path = filePath(ctx.params.file_path);
    const refName = str(ctx, 'ref');
    if (!raw && !refName) throw missing('ref');
    const repo = core.repo(p);
    const commit = await ref(p, refName ?? 'HEAD');
    if (!commit) throw notFound('Commit');
    const blob = await repo.blob(commit, path);
    if (!blob) throw notFound('File');
    // The last commit touching the file costs a `git log`; raw readers do not need it.
    const last = raw ? null : await repo.lastCommitFor(commit, path);
    const sha256 = createHash('sha256').update(blob.content).digest('hex');
    const headers = {
      'X-Gitlab-Blob-Id': blob.oid,
      'X-Gitlab-Commit-Id': commit,
      'X-Gitlab-Content-Sha256': sha256,
      'X-Gitlab-Encoding': 'base64',
      'X-Gitlab-File-Name': path.split('/').pop()!,
      'X-Gitlab-File-Path': path,
      ...(raw ? {} : { 'X-Gitlab-Last-Commit-Id': last ?? commit }),
      'X-Gitlab-Ref': refName ?? p.defaultBranch,
      'X-Gitlab-Size': String(blob.content.length),
      'X-Gitlab-Execute-Filemode': 'false',
    };
    for (const [k, v] of Object.entries(headers)) ctx.res.setHeader(k, v);
    if (raw) return new RawBody(blob.content, 'text/plain; charset=utf-8');
    return {
      file_name: headers['X-Gitlab-File-Name'],
      file_path: path,
      size: blob.content.length,
      encoding: 'base64',
      content_sha256: sha256,
      ref: refName,
      blob_id: blob.oid,
      commit_id: commit,
      last_commit_id: last ?? commit,
      execute_filemode: false,
      content: blob.content.toString('base64'),
    };
  };
  router.on('GET', '/projects/:id/repository/files/:file_path', (ctx) => fileResponse(ctx, false));
  router.on('GET', '/projects/:id/repository/files/:file_path/raw', (ctx) => fileResponse(ctx, true), {
    jobToken: true,
  });

  router.on('GET', '/projects/:id/repository/tree', async (ctx) => {
    const p = project(ctx);
    const commit = await ref(p, str(ctx, 'ref'));
    if (!commit) throw notFound('Tree');
    const entries = await core.repo(p).tree(commit, str(ctx, 'path') ?? '', bool(ctx, 'recursive') ?? false);
    if (!entries) throw notFound('Tree');
    return new Page(
      entries.map((e) => ({
        id: e.oid,
        name: e.path.split('/').pop(),
        type: e.type,
        path: e.path,
        mode: e.mode,
      })),
    );
  });

  // ---------- commits ----------

  router.on('GET', '/projects/:id/repository/commits', async (ctx) => {
    const p = project(ctx);
    const refName = str(ctx, 'ref_name');
    const commit = await ref(p, refName);
    if (!commit) {
      if (refName) throw notFound('Commit');
      return [];
    }
    const { page, perPage } = pageParams(ctx);
    const commits = await core.repo(p).log([commit], {
      path: str(ctx, 'path'),
      since: str(ctx, 'since'),
      until: str(ctx, 'until'),
      skip: (page - 1) * perPage,
      max: perPage + 1,
    });
    // The Commits API does not count (no x-total), so look one ahead for x-next-page.
    setPageHeaders(ctx, core.baseUrl, page, perPage, commits.length > perPage);
    return commits.slice(0, perPage).map((c) => entities.commit(p, c));
  });

  router.on(
    'GET',
    '/projects/:id/repository/commits/:sha',
    async (ctx) => {
      const p = project(ctx);
      const repo = core.repo(p);
      const c = await repo.commit(ctx.params.sha);
      if (!c) throw notFound('Commit');
      const stats = await commitStats(core, p, c.parentIds[0] ?? null, c.id);
      return { ...entities.commit(p, c), stats, status: null, project_id: p.id, last_pipeline: null };
    },
    { jobToken: true },
  );

  router.on('GET', '/projects/:id/repository/commits/:sha/diff', async (ctx) => {
    const p = project(ctx);
    const repo = core.repo(p);
    const c = await repo.commit(ctx.params.sha);
    if (!c) throw notFound('Commit');
    const from = c.parentIds[0] ?? (await emptyTree(core, p));
    return new Page((await repo.diff(from, c.id)).map((d) => entities.diff(d)));
  });

  router.on('POST', '/projects/:id/repository/commits', async (ctx) => {
    const user = authed(ctx);
    const p = project(ctx);
    const branch = str(ctx, 'branch');
    const message = str(ctx, 'commit_message');
    const rawActions = param(ctx, 'actions');
    const absent = [
      ...(branch ? [] : ['branch']),
      ...(message ? [] : ['commit_message']),
      ...(rawActions ? [] : ['actions']),
    ];
    if (absent.length) throw missing(...absent);
    if (!Array.isArray(rawActions) || rawActions.length === 0)
      throw new ApiError(400, { error: 'actions is invalid' });
    const actions = rawActions.map((a, i) => parseAction(a, i));
    if (core.accessLevel(user, p) < AccessLevel.DEVELOPER) throw forbidden();
    const authorName = str(ctx, 'author_name');
    const authorEmail = str(ctx, 'author_email');
    const { sha, changes } = await core.createCommit(user, p, {
      branch: branch!,
      message: message!,
      actions,
      startBranch: str(ctx, 'start_branch'),
      startSha: str(ctx, 'start_sha'),
      force: bool(ctx, 'force') ?? false,
      author:
        authorName || authorEmail
          ? { name: authorName ?? user.name, email: authorEmail ?? user.email }
          : undefined,
    });
    const c = (await core.repo(p).commit(sha))!;
    const stats = bool(ctx, 'stats') === false ? undefined : lineStats(changes);
    ctx.res.statusCode = 201;
    return {
      ...entities.commit(p, c),
      ...(stats ? { stats } : {}),
      status: null,
      project_id: p.id,
      last_pipeline: null,
    };
  });

  router.on('GET', '/projects/:id/repository/compare', async (ctx) => {
    const p = project(ctx);
    const from = str(ctx, 'from');
    const to = str(ctx, 'to');
    if (!from || !to) throw missing(...(from ? [] : ['from']), ...(to ? [] : ['to']));
    const repo = core.repo(p);
    const fromSha = await repo.resolve(from);
    const toSha = await repo.resolve(to);
    if (!fromSha || !toSha) throw notFound('Ref');
    const straight = bool(ctx, 'straight') ?? false;
    const base = straight ? fromSha : ((await repo.mergeBase(fromSha, toSha)) ?? fromSha);
    const commits = await repo.logRange(base, toSha);
    const diffs = await repo.diff(base, toSha);
    const head = commits[0] ?? null;
    return {
      commit: head ? entities.commit(p, head) : null,
      commits: commits.reverse().map((c) => entities.commit(p, c)),
      diffs: diffs.map((d) => entities.diff(d)),
      compare_timeout: false,
      compare_same_ref: fromSha === toSha,
      web_url: `${entities.webUrl(p)}/-/compare/${fromSha}...${toSha}`,
    };
  });

  router.on(
    'GET',
    '/projects/:id/repository/commits/:sha/merge_requests',
    async (ctx) => {
      const p = project(ctx);
      const sha = await core.repo(p).resolve(ctx.params.sha);
      if (!sha) throw notFound('Commit');
      const mrs = store.data.mergeRequests.filter(
        (m) =>
          m.projectId === p.id &&
          (m.mergeCommitSha === sha || m.sha === sha || m.versions.some((v) => v.headCommitSha === sha)),
      );
      const out = [];
      for (const m of mrs) out.push(await entities.mergeRequest(p, m));
      return new Page(out);
    },
    { jobToken: true },
  );

  // Comments on a commit (API::Entities::CommitNote), oldest first as GitLab lists them.
  router.on('GET', '/projects/:id/repository/commits/:sha/comments', async (ctx) => {
    const p = project(ctx);
    const sha = await core.repo(p).resolve(ctx.params.sha);
    if (!sha) throw notFound('Commit');
    const list = (store.data.commitComments ?? [])
      .filter((c) => c.projectId === p.id && c.sha === sha)
      .sort((a, b) => (a.createdAt === b.createdAt ? a.id - b.id : a.createdAt < b.createdAt ? -1 : 1));
    return new Page(list.map((c) => entities.commitNote(c)));
  });

  router.on('POST', '/projects/:id/repository/commits/:sha/comments', async (ctx) => {
    const user = authed(ctx);
    const p = project(ctx);
    const note = str(ctx, 'note');
    if (!note) throw missing('note');
    // GitLab's params: `line` is required with `path`, and `line_type` is new or old.
    if (str(ctx, 'path') !== undefined) {
      if (int(ctx, 'line') === undefined) throw missing('line');
      const lineType = str(ctx, 'line_type') ?? 'new';
      if (lineType !== 'new' && lineType !== 'old')
        throw new ApiError(400, { error: 'line_type does not have a valid value' });
    }
    const repo = core.repo(p);
    const sha = await repo.resolve(ctx.params.sha);
    const commit = sha ? await repo.commit(sha) : null;
    if (!sha || !commit) throw notFound('Commit');
    store.data.commitComments ??= [];
    const c = {
      // one id space with MR notes, as GitLab's notes table has (the hook's #note_<id>)
      id: store.nextId('note'),
      projectId: p.id,
      sha,
      note,
      authorId: user.id,
      createdAt: new Date().toISOString(),
    };
    store.data.commitComments.push(c);
    store.changed();
    core.hooks.commitNote(p, c, commit, user);
    ctx.res.statusCode = 201;
    return entities.commitNote(c);
  });

  router.on('GET', '/projects/:id/repository/merge_base', async (ctx) => {
    const p = project(ctx);
    const refs = stringList(ctx, 'refs');
    if (!refs || refs.length < 2) throw new ApiError(400, { message: 'Provide at least 2 refs' });
    const repo = core.repo(p);
    const shas = await Promise.all(refs.map((r) => repo.resolve(r)));
    if (shas.some((x) => !x)) throw notFound('Commit');
    let base: string | null = shas[0]!;
    for (const x of shas.slice(1)) base = base && (await repo.mergeBase(base, x!));
    if (!base) throw notFound('Merge Base');
    return entities.commit(p, (await repo.commit(base))!);
  });

  // ---------- branches ----------

  // API::Entities::Branch: `protected` for the default branch and every explicit protection.
  const branchEntity = async (p: Project, name: string, sha: string, viewer: User | null) => {
    const repo = core.repo(p);
    const c = await repo.commit(sha);
    const protection = core.protection(p, name);
    const main = name === p.defaultBranch ? null : await repo.branchHead(p.defaultBranch);
    return {
      name,
      merged: !!main && (await repo.isAncestor(sha, main)),
      protected: protection !== null,
      default: name === p.defaultBranch,
      developers_can_push: protection?.pushAccessLevel === AccessLevel.DEVELOPER,
      developers_can_merge: protection?.mergeAccessLevel === AccessLevel.DEVELOPER,
      can_push: core.canPush(viewer, p, name),
      web_url: `${entities.webUrl(p)}/-/tree/${name}`,
      commit: c ? entities.commit(p, c) : { id: sha },
    };
  };

  router.on(
    'GET',
    '/projects/:id/repository/branches',
    async (ctx) => {
      const p = project(ctx);
      const search = str(ctx, 'search');
      const branches = (await core.repo(p).branches()).filter((b) => !search || b.name.includes(search));
      const out = [];
      for (const b of branches) out.push(await branchEntity(p, b.name, b.sha, ctx.user));
      return new Page(out);
    },
    { jobToken: true },
  );

  router.on('GET', '/projects/:id/repository/branches/:branch', async (ctx) => {
    const p = project(ctx);
    const sha = await core.repo(p).branchHead(ctx.params.branch);
    if (!sha) throw notFound('Branch');
    return branchEntity(p, ctx.params.branch, sha, ctx.user);
  });

  router.on('POST', '/projects/:id/repository/branches', async (ctx) => {
    const user = authed(ctx);
    const p = project(ctx);
    const branch = str(ctx, 'branch');
    const refName = str(ctx, 'ref');
    if (!branch || !refName) throw missing(...(branch ? [] : ['branch']), ...(refName ? [] : ['ref']));
    const sha = await core.createBranch(user, p, branch, refName);
    ctx.res.statusCode = 201;
    return branchEntity(p, branch, sha, user);
  });

  router.on('DELETE', '/projects/:id/repository/branches/:branch', async (ctx) => {
    const user = authed(ctx);
    await core.deleteBranch(user, project(ctx), ctx.params.branch);
    ctx.res.statusCode = 204;
    return undefined;
  });

  // Protected branches: who may push and merge (GitLab's allowed_to_push with user_id too),
  // as API::Entities::ProtectedBranch with Premium's user_id/group_id and
  // code_owner_approval_required. The default branch is protected unless told otherwise.
  const accessLevel = (level: number, userId: number | null, id: number) => ({
    id,
    access_level: level,
    access_level_description:
      userId !== null ? (store.user(userId)?.name ?? `User ${userId}`) : accessDescription(level),
    user_id: userId,
    group_id: null,
  });
  const protectionEntity = (p: Project, name: string, prot: Protection) => {
    const id = protectionId(p, name);
    return {
      id,
      name,
      push_access_levels: [
        accessLevel(prot.pushAccessLevel, null, id * 10 + 1),
        ...prot.pushUserIds.map((uid, i) => accessLevel(AccessLevel.MAINTAINER, uid, id * 10 + 2 + i)),
      ],
      merge_access_levels: [accessLevel(prot.mergeAccessLevel, null, id * 10 + 1)],
      allow_force_push: false,
      code_owner_approval_required: false,
    };
  };
  // Stable ids, also for rules made before the sandbox kept them and for the default branch.
  const protectionId = (p: Project, name: string): number => {
    const explicit = p.protectedBranches?.[name];
    if (explicit) {
      if (explicit.id === undefined) {
        explicit.id = store.nextId('protected_branch');
        store.changed();
      }
      return explicit.id;
    }
    if (p.defaultProtectionId === undefined) {
      p.defaultProtectionId = store.nextId('protected_branch');
      store.changed();
    }
    return p.defaultProtectionId;
  };
  const protectedNames = (p: Project) => [
    p.defaultBranch,
    ...Object.keys(p.protectedBranches ?? {}).filter((n) => n !== p.defaultBranch),
  ];

  // GitLab's authorize_read_code!: Reporter or better in a private project.
  const readCode = (ctx: Ctx, p: Project) => {
    if (p.visibility === 'private' && core.accessLevel(ctx.user, p) < AccessLevel.REPORTER) throw forbidden();
  };

  router.on('GET', '/projects/:id/protected_branches', (ctx) => {
    const p = project(ctx);
    readCode(ctx, p);
    const search = str(ctx, 'search');
    return new Page(
      protectedNames(p)
        .filter((n) => !search || n.includes(search))
        .map((n) => protectionEntity(p, n, core.protection(p, n)!)),
    );
  });

  router.on('GET', '/projects/:id/protected_branches/:name', (ctx) => {
    const p = project(ctx);
    readCode(ctx, p);
    const prot = core.protection(p, ctx.params.name);
    if (!prot) throw notFound();
    return protectionEntity(p, ctx.params.name, prot);
  });

  router.on('POST', '/projects/:id/protected_branches', (ctx) => {
    const p = project(ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    const name = str(ctx, 'name');
    if (!name) throw missing('name');
    const allowed = param(ctx, 'allowed_to_push');
    const pushUserIds = (Array.isArray(allowed) ? allowed : [])
      .map((a) => Number((a as Record<string, unknown>).user_id))
      .filter((id) => Number.isInteger(id));
    const protection: Protection = {
      id: p.protectedBranches?.[name]?.id ?? store.nextId('protected_branch'),
      pushAccessLevel: int(ctx, 'push_access_level') ?? AccessLevel.MAINTAINER,
      mergeAccessLevel: int(ctx, 'merge_access_level') ?? AccessLevel.MAINTAINER,
      pushUserIds,
    };
    p.protectedBranches = { ...(p.protectedBranches ?? {}), [name]: protection };
    store.changed();
    ctx.res.statusCode = 201;
    return protectionEntity(p, name, protection);
  });

  // ---------- commit statuses ----------

  router.on('POST', '/projects/:id/statuses/:sha', async (ctx) => {
    const user = authed(ctx);
    const p = project(ctx);
    core.require(user, p, AccessLevel.DEVELOPER);
    const state = str(ctx, 'state');
    if (!state) throw missing('state');
    if (!['pending', 'running', 'success', 'failed', 'canceled', 'skipped'].includes(state)) {
      throw new ApiError(400, { error: 'state does not have a valid value' });
    }
    const sha = await core.repo(p).resolve(ctx.params.sha);
    if (!sha || sha !== ctx.params.sha) throw notFound('Commit');
    const name = str(ctx, 'name') ?? str(ctx, 'context') ?? 'default';
    const targetUrl = str(ctx, 'target_url') ?? null;
    const description = str(ctx, 'description') ?? null;
    if (targetUrl && targetUrl.length > 255)
      throw badRequest({ target_url: ['is too long (maximum is 255 characters)'] });
    if (description && description.length > 255) {
      throw badRequest({ description: ['is too long (maximum is 255 characters)'] });
    }
    const refName = str(ctx, 'ref') ?? null;
    const existingPipeline = store.data.statuses.find(
      (s) => s.projectId === p.id && s.sha === sha,
    )?.pipelineId;
    const pipelineId = int(ctx, 'pipeline_id') ?? existingPipeline ?? store.nextId('pipeline');
    const now = new Date().toISOString();
    const finished = ['success', 'failed', 'canceled', 'skipped'].includes(state) ? now : null;
    let status = store.data.statuses.find(
      (s) => s.projectId === p.id && s.sha === sha && s.name === name && s.ref === refName,
    );
    // GitLab finds a pending or running status of the same name and moves it through its
    // state machine; the same state again is an invalid transition (400).
    if (status && status.state === state && (state === 'pending' || state === 'running')) {
      const event = state === 'pending' ? 'enqueue' : 'run';
      throw new ApiError(400, { message: `Cannot transition status via :${event} from :${state}` });
    }
    if (status) {
      Object.assign(status, { state, targetUrl, description, authorId: user.id, finishedAt: finished });
    } else {
      status = {
        id: store.nextId('status'),
        projectId: p.id,
        sha,
        ref: refName,
        name,
        state,
        targetUrl,
        description,
        pipelineId,
        authorId: user.id,
        createdAt: now,
        finishedAt: finished,
      };
      store.data.statuses.push(status);
    }
    store.changed();
    ctx.res.statusCode = 201;
    return entities.status(p, status);
  });

  router.on('GET', '/projects/:id/repository/commits/:sha/statuses', async (ctx) => {
    const p = project(ctx);
    const sha = await core.repo(p).resolve(ctx.params.sha);
    if (!sha) throw notFound('Commit');
    const refName = str(ctx, 'ref');
    const name = str(ctx, 'name');
    const all = bool(ctx, 'all') ?? false;
    let list = store.data.statuses.filter(
      (s) =>
        s.projectId === p.id &&
        s.sha === sha &&
        (!refName || s.ref === refName) &&
        (!name || s.name === name),
    );
    if (!all) {
      const latest = new Map<string, (typeof list)[number]>();
      for (const s of list) latest.set(s.name, s);
      list = [...latest.values()];
    }
    return new Page(list.map((s) => entities.status(p, s)));
  });

  // ---------- hooks ----------

  router.on('GET', '/projects/:id/hooks', (ctx) => {
    const p = project(ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    return new Page(store.data.hooks.filter((h) => h.projectId === p.id).map((h) => entities.hook(h)));
  });

  router.on('GET', '/projects/:id/hooks/:hook_id', (ctx) => {
    const p = project(ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    const h = store.data.hooks.find((x) => x.projectId === p.id && x.id === Number(ctx.params.hook_id));
    if (!h) throw notFound('Hook');
    return entities.hook(h);
  });

  // GitLab's signing tokens are Standard Webhooks keys: `whsec_` and 32 bytes in base64.
  const signingToken = (ctx: Ctx): string | null | undefined => {
    const t = str(ctx, 'signing_token');
    if (t === undefined || t === '') return t === '' ? null : undefined;
    const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(t);
    if (!m || Buffer.from(m[1], 'base64').length !== 32)
      throw new ApiError(400, { error: 'signing_token must be whsec_ followed by 32 bytes in base64' });
    return t;
  };
  const hookUrl = (ctx: Ctx, required: boolean): string | undefined => {
    const url = str(ctx, 'url');
    if (!url) {
      if (required) throw missing('url');
      return undefined;
    }
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    } catch {
      throw new ApiError(422, { error: 'Invalid url given' });
    }
    return url;
  };

  router.on('POST', '/projects/:id/hooks', (ctx) => {
    const p = project(ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    const url = hookUrl(ctx, true)!;
    const hook = {
      id: store.nextId('hook'),
      projectId: p.id,
      url,
      token: str(ctx, 'token') ?? null,
      signingToken: signingToken(ctx) ?? null,
      pushEvents: bool(ctx, 'push_events') ?? true,
      mergeRequestsEvents: bool(ctx, 'merge_requests_events') ?? false,
      noteEvents: bool(ctx, 'note_events') ?? false,
      pipelineEvents: bool(ctx, 'pipeline_events') ?? false,
      enableSslVerification: bool(ctx, 'enable_ssl_verification') ?? true,
      createdAt: new Date().toISOString(),
    };
    store.data.hooks.push(hook);
    store.changed();
    ctx.res.statusCode = 201;
    return entities.hook(hook);
  });

  router.on('PUT', '/projects/:id/hooks/:hook_id', (ctx) => {
    const p = project(ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    const h = store.data.hooks.find((x) => x.projectId === p.id && x.id === Number(ctx.params.hook_id));
    if (!h) throw notFound('Hook');
    const url = hookUrl(ctx, false);
    if (url) h.url = url;
    const token = str(ctx, 'token');
    if (token !== undefined) h.token = token || null;
    const signing = signingToken(ctx);
    if (signing !== undefined) h.signingToken = signing;
    h.pushEvents = bool(ctx, 'push_events') ?? h.pushEvents;
    h.mergeRequestsEvents = bool(ctx, 'merge_requests_events') ?? h.mergeRequestsEvents;
    h.noteEvents = bool(ctx, 'note_events') ?? h.noteEvents;
    h.pipelineEvents = bool(ctx, 'pipeline_events') ?? h.pipelineEvents;
    h.enableSslVerification = bool(ctx, 'enable_ssl_verification') ?? h.enableSslVerification;
    store.changed();
    return entities.hook(h);
  });

  router.on('DELETE', '/projects/:id/hooks/:hook_id', (ctx) => {
    const p = project(ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    const i = store.data.hooks.findIndex((x) => x.projectId === p.id && x.id === Number(ctx.params.hook_id));
    if (i < 0) throw notFound('Hook');
    store.data.hooks.splice(i, 1);
    store.changed();
    ctx.res.statusCode = 204;
    return undefined;
  });
}

/** ProtectedRefAccess#humanize for a role. */
function accessDescription(level: number): string {
  if (level === AccessLevel.NONE) return 'No one';
  if (level === AccessLevel.DEVELOPER) return 'Developers + Maintainers';
  if (level === AccessLevel.MAINTAINER) return 'Maintainers';
  if (level === AccessLevel.ADMIN) return 'Administrators';
  return `Access level ${level}`;
}

/** A non-JSON body (e.g. a raw file). */
export class RawBody {
  constructor(
    readonly content: Buffer,
    readonly contentType: string,
  ) {}
}

function parseAction(raw: unknown, i: number): CommitAction & { lastCommitId?: string } {
  const a = (raw ?? {}) as Record<string, unknown>;
  const field = (k: string) => (a[k] === undefined || a[k] === null ? undefined : String(a[k]));
  const action = field('action');
  if (!action || !['create', 'update', 'delete', 'move', 'chmod'].includes(action)) {
    throw new ApiError(400, { error: `actions[${i}][action] does not have a valid value` });
  }
  const path = field('file_path');
  if (!path) throw new ApiError(400, { error: `actions[${i}][file_path] is missing` });
  filePath(path, `actions[${i}][file_path]`);
  const encoding = field('encoding') ?? 'text';
  if (encoding !== 'text' && encoding !== 'base64') {
    throw new ApiError(400, { error: `actions[${i}][encoding] does not have a valid value` });
  }
  const raw64 = field('content');
  const content =
    raw64 === undefined ? undefined : Buffer.from(raw64, encoding === 'base64' ? 'base64' : 'utf8');
  const lastCommitId = field('last_commit_id');
  const executable = a.execute_filemode === true || a.execute_filemode === 'true';
  switch (action) {
    case 'create':
    case 'update':
      return { action, filePath: path, content: content ?? Buffer.alloc(0), executable, lastCommitId };
    case 'delete':
      return { action, filePath: path, lastCommitId };
    case 'chmod':
      return { action, filePath: path, executable };
    default: {
      const previousPath = field('previous_path');
      if (!previousPath) throw new ApiError(400, { error: `actions[${i}][previous_path] is missing` });
      return { action: 'move', filePath: path, previousPath: filePath(previousPath), content, lastCommitId };
    }
  }
}

async function emptyTree(core: SandboxCore, p: Project): Promise<string> {
  return (await core.repo(p).run(['hash-object', '-t', 'tree', '/dev/null'])).stdout.toString().trim();
}

async function commitStats(core: SandboxCore, p: Project, parent: string | null, sha: string) {
  const from = parent ?? (await emptyTree(core, p));
  const out = (await core.repo(p).run(['diff', '--numstat', from, sha])).stdout.toString();
  let additions = 0;
  let deletions = 0;
  for (const line of out.split('\n')) {
    const [a, d] = line.split('\t');
    additions += Number(a) || 0;
    deletions += Number(d) || 0;
  }
  return { additions, deletions, total: additions + deletions };
}
