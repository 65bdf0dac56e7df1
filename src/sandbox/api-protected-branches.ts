// REST routes for protected branches: who may push and merge (GitLab's allowed_to_push with
// user_id too), as API::Entities::ProtectedBranch with Premium's user_id/group_id and
// code_owner_approval_required. The default branch is protected unless told otherwise.
import { type ApiDeps, projectOf } from './api-common.js';
import { protect, protectionId } from './core-projects.js';
import { type Ctx, forbidden, int, missing, notFound, Page, param, type Router, str } from './http.js';
import { AccessLevel, type Project, type Protection } from './state.js';

/** ProtectedRefAccess#humanize for a role. */
function accessDescription(level: number): string {
  if (level === AccessLevel.NONE) return 'No one';
  if (level === AccessLevel.DEVELOPER) return 'Developers + Maintainers';
  if (level === AccessLevel.MAINTAINER) return 'Maintainers';
  if (level === AccessLevel.ADMIN) return 'Administrators';
  return `Access level ${level}`;
}

export function register(router: Router, { core }: ApiDeps): void {
  const accessLevel = (level: number, userId: number | null, id: number) => ({
    id,
    access_level: level,
    access_level_description:
      userId !== null ? (core.store.user(userId)?.name ?? `User ${userId}`) : accessDescription(level),
    user_id: userId,
    group_id: null,
  });
  const protectionEntity = (p: Project, name: string, prot: Protection) => {
    const id = protectionId(core, p, name);
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
  const protectedNames = (p: Project) => [
    p.defaultBranch,
    ...Object.keys(p.protectedBranches ?? {}).filter((n) => n !== p.defaultBranch),
  ];

  // GitLab's authorize_read_code!: Reporter or better in a private project.
  const readCode = (ctx: Ctx, p: Project) => {
    if (p.visibility === 'private' && core.accessLevel(ctx.user, p) < AccessLevel.REPORTER) throw forbidden();
  };

  router.on('GET', '/projects/:id/protected_branches', (ctx) => {
    const p = projectOf(core, ctx);
    readCode(ctx, p);
    const search = str(ctx, 'search');
    return new Page(
      protectedNames(p)
        .filter((n) => !search || n.includes(search))
        .map((n) => protectionEntity(p, n, core.protection(p, n)!)),
    );
  });

  router.on('GET', '/projects/:id/protected_branches/:name', (ctx) => {
    const p = projectOf(core, ctx);
    readCode(ctx, p);
    const prot = core.protection(p, ctx.params.name);
    if (!prot) throw notFound();
    return protectionEntity(p, ctx.params.name, prot);
  });

  router.on('POST', '/projects/:id/protected_branches', (ctx) => {
    const p = projectOf(core, ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    const name = str(ctx, 'name');
    if (!name) throw missing('name');
    const allowed = param(ctx, 'allowed_to_push');
    const pushUserIds = (Array.isArray(allowed) ? allowed : [])
      .map((a) => Number((a as Record<string, unknown>).user_id))
      .filter((id) => Number.isInteger(id));
    const protection = protect(core, ctx.user, p, name, {
      pushAccessLevel: int(ctx, 'push_access_level') ?? AccessLevel.MAINTAINER,
      mergeAccessLevel: int(ctx, 'merge_access_level') ?? AccessLevel.MAINTAINER,
      pushUserIds,
    });
    ctx.res.statusCode = 201;
    return protectionEntity(p, name, protection);
  });
}
