// REST routes for branches: list, show, create, delete.
import { type ApiDeps, authed, projectOf, requiredParams } from './api-common.js';
import { notFound, Page, type Router, str } from './http.js';
import { AccessLevel, type Project, type User } from './state.js';

export function register(router: Router, { core, entities }: ApiDeps): void {
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
      const p = projectOf(core, ctx);
      const search = str(ctx, 'search');
      const branches = (await core.repo(p).branches()).filter((b) => !search || b.name.includes(search));
      const out = [];
      for (const b of branches) out.push(await branchEntity(p, b.name, b.sha, ctx.user));
      return new Page(out);
    },
    { jobToken: true },
  );

  router.on('GET', '/projects/:id/repository/branches/:branch', async (ctx) => {
    const p = projectOf(core, ctx);
    const sha = await core.repo(p).branchHead(ctx.params.branch);
    if (!sha) throw notFound('Branch');
    return branchEntity(p, ctx.params.branch, sha, ctx.user);
  });

  router.on('POST', '/projects/:id/repository/branches', async (ctx) => {
    const user = authed(ctx);
    const p = projectOf(core, ctx);
    const { branch, ref } = requiredParams(ctx, 'branch', 'ref');
    const sha = await core.createBranch(user, p, branch, ref);
    ctx.res.statusCode = 201;
    return branchEntity(p, branch, sha, user);
  });

  router.on('DELETE', '/projects/:id/repository/branches/:branch', async (ctx) => {
    const user = authed(ctx);
    await core.deleteBranch(user, projectOf(core, ctx), ctx.params.branch);
    ctx.res.statusCode = 204;
    return undefined;
  });
}
