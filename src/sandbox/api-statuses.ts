// REST routes for commit statuses: set one, list a commit's.
import { type ApiDeps, authed, projectOf, shaOf } from './api-common.js';
import { STATUS_STATES, setCommitStatus, statusesOf } from './core-statuses.js';
import { ApiError, bool, int, missing, Page, type Router, str } from './http.js';
import { AccessLevel } from './state.js';

export function register(router: Router, { core, entities }: ApiDeps): void {
  router.on('POST', '/projects/:id/statuses/:sha', async (ctx) => {
    const user = authed(ctx);
    const p = projectOf(core, ctx);
    core.require(user, p, AccessLevel.DEVELOPER);
    const state = str(ctx, 'state');
    if (!state) throw missing('state');
    if (!STATUS_STATES.includes(state)) {
      throw new ApiError(400, { error: 'state does not have a valid value' });
    }
    const status = await setCommitStatus(core, user, p, ctx.params.sha, {
      state,
      name: str(ctx, 'name') ?? str(ctx, 'context') ?? 'default',
      ref: str(ctx, 'ref') ?? null,
      targetUrl: str(ctx, 'target_url') ?? null,
      description: str(ctx, 'description') ?? null,
      pipelineId: int(ctx, 'pipeline_id'),
    });
    ctx.res.statusCode = 201;
    return entities.status(p, status);
  });

  router.on('GET', '/projects/:id/repository/commits/:sha/statuses', async (ctx) => {
    const p = projectOf(core, ctx);
    const sha = await shaOf(core, p, ctx.params.sha);
    const list = statusesOf(core, p, sha, {
      ref: str(ctx, 'ref'),
      name: str(ctx, 'name'),
      all: bool(ctx, 'all') ?? false,
    });
    return new Page(list.map((s) => entities.status(p, s)));
  });
}
