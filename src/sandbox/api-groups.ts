// REST routes for groups. The sandbox's groups are membership lists: approval rules may
// name a group (`approvals.groups`), and gitops-bot reads its members. Group membership
// does not grant access to projects here (no namespaces under groups).
import { type ApiDeps, authed, requiredParams } from './api-common.js';
import { addMemberRoute } from './api-projects.js';
import { createGroup } from './core-projects.js';
import { ApiError, type Ctx, forbidden, notFound, Page, type Router, str } from './http.js';
import { AccessLevel, type Group, type User } from './state.js';

const PATH = /^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$/;

export function register(router: Router, { core, entities }: ApiDeps): void {
  const store = core.store;
  const level = (user: User | null, g: Group) =>
    !user ? AccessLevel.NONE : user.isAdmin ? AccessLevel.ADMIN : (g.members[String(user.id)] ?? 0);
  // GitLab answers 404 for a private group the caller is not a member of.
  const group = (ctx: Ctx): Group => {
    const g = store.group(ctx.params.id);
    const visible =
      g &&
      (g.visibility === 'public' ||
        (ctx.user && g.visibility === 'internal') ||
        level(ctx.user, g) >= AccessLevel.GUEST);
    if (!g || !visible) throw notFound('Group');
    return g;
  };
  const present = (g: Group) => ({
    id: g.id,
    name: g.name,
    path: g.path,
    full_path: g.path,
    full_name: g.name,
    visibility: g.visibility,
    parent_id: null,
    web_url: `${core.baseUrl}/groups/${g.path}`,
    created_at: g.createdAt,
  });

  router.on('POST', '/groups', (ctx) => {
    const user = authed(ctx);
    if (!user.isAdmin) throw forbidden();
    const { name, path } = requiredParams(ctx, 'name', 'path');
    if (!PATH.test(path)) throw new ApiError(400, { message: { path: ['is invalid'] } });
    const visibility = (str(ctx, 'visibility') ?? 'private') as Group['visibility'];
    const g = createGroup(core, user, { name, path, visibility });
    ctx.res.statusCode = 201;
    return present(g);
  });

  router.on('GET', '/groups/:id', (ctx) => present(group(ctx)));

  const members = (g: Group) =>
    Object.entries(g.members)
      .map(([id, lvl]) => ({ user: store.user(Number(id)), lvl }))
      .filter((m): m is { user: User; lvl: number } => !!m.user);
  for (const path of ['/groups/:id/members', '/groups/:id/members/all']) {
    router.on('GET', path, (ctx) => new Page(members(group(ctx)).map((m) => entities.member(m.user, m.lvl))));
  }

  router.on('POST', '/groups/:id/members', (ctx) => {
    const g = group(ctx);
    if (level(ctx.user, g) < AccessLevel.OWNER) throw forbidden();
    return addMemberRoute(ctx, { core, entities }, g.members);
  });
}
