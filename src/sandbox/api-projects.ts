// REST routes for projects and their members.
import { type ApiDeps, authed, oneOf, projectOf } from './api-common.js';
import { addMember, createProject, updateProject } from './core-projects.js';
import { badRequest, bool, type Ctx, int, missing, notFound, Page, param, type Router, str } from './http.js';
import { AccessLevel, type Project, type User } from './state.js';

const VISIBILITIES = ['private', 'internal', 'public'];

/** POST .../members for a project or a group: `user_id` joins `members` at `access_level`. */
export function addMemberRoute(ctx: Ctx, { core, entities }: ApiDeps, members: Record<string, number>) {
  const uid = int(ctx, 'user_id');
  const level = int(ctx, 'access_level');
  if (uid === undefined || level === undefined) {
    throw missing(
      ...(uid === undefined ? ['user_id'] : []),
      ...(level === undefined ? ['access_level'] : []),
    );
  }
  const u = addMember(core, members, uid, level);
  ctx.res.statusCode = 201;
  return entities.member(u, level);
}

export function register(router: Router, deps: ApiDeps): void {
  const { core, entities } = deps;
  const store = core.store;

  router.on('GET', '/projects', (ctx) => {
    const visible = store.data.projects.filter((p) => core.canRead(ctx.user, p));
    const membership = bool(ctx, 'membership');
    const list = membership
      ? visible.filter((p) => core.accessLevel(ctx.user, p) >= AccessLevel.GUEST)
      : visible;
    // simple=true: GitLab's BasicProjectDetails, without settings and permissions.
    const simple = bool(ctx, 'simple');
    return new Page(list.map((p) => (simple ? entities.projectSimple(p) : entities.project(p, ctx.user))));
  });

  router.on('POST', '/projects', async (ctx) => {
    const user = authed(ctx);
    const name = str(ctx, 'name');
    const path = str(ctx, 'path') ?? name?.toLowerCase().replace(/[^a-z0-9_.-]+/g, '-');
    if (!name && !path) throw missing('name', 'path');
    if (!path || !/^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$/.test(path)) throw badRequest({ path: ['is invalid'] });
    const p = await createProject(core, user, {
      name: name ?? path,
      path,
      description: str(ctx, 'description') ?? '',
      defaultBranch: str(ctx, 'default_branch') ?? 'main',
      visibility: (oneOf(ctx, 'visibility', VISIBILITIES) as Project['visibility']) ?? 'private',
      onlyAllowMergeIfPipelineSucceeds: bool(ctx, 'only_allow_merge_if_pipeline_succeeds') ?? false,
      removeSourceBranchAfterMerge: bool(ctx, 'remove_source_branch_after_merge') ?? true,
      initializeWithReadme: bool(ctx, 'initialize_with_readme') ?? false,
    });
    ctx.res.statusCode = 201;
    return entities.project(p, user);
  });

  router.on('GET', '/projects/:id', (ctx) => entities.project(projectOf(core, ctx), ctx.user));

  router.on('PUT', '/projects/:id', (ctx) => {
    const p = projectOf(core, ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    updateProject(core, ctx.user, p, {
      onlyAllowMergeIfPipelineSucceeds: bool(ctx, 'only_allow_merge_if_pipeline_succeeds'),
      removeSourceBranchAfterMerge: bool(ctx, 'remove_source_branch_after_merge'),
      description: str(ctx, 'description'),
    });
    return entities.project(p, ctx.user);
  });

  const members = (p: Project) =>
    Object.entries(p.members)
      .map(([id, level]) => ({ user: store.user(Number(id)), level }))
      .filter((m): m is { user: User; level: number } => !!m.user);

  for (const path of ['/projects/:id/members', '/projects/:id/members/all']) {
    router.on('GET', path, (ctx) => {
      const p = projectOf(core, ctx);
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
      const p = projectOf(core, ctx);
      const m = members(p).find((x) => x.user.id === Number(ctx.params.uid));
      if (!m) throw notFound('Member');
      return entities.member(m.user, m.level);
    });
  }

  router.on('POST', '/projects/:id/members', (ctx) => {
    const p = projectOf(core, ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    return addMemberRoute(ctx, deps, p.members);
  });
}
