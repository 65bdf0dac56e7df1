// REST routes for project hooks.
import { type ApiDeps, projectOf } from './api-common.js';
import { addHook, deleteHook, findHook, updateHook } from './core-projects.js';
import { ApiError, bool, type Ctx, missing, Page, type Router, str } from './http.js';
import { AccessLevel } from './state.js';

// GitLab's signing tokens are Standard Webhooks keys: `whsec_` and 32 bytes in base64.
function signingToken(ctx: Ctx): string | null | undefined {
  const t = str(ctx, 'signing_token');
  if (t === undefined || t === '') return t === '' ? null : undefined;
  const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(t);
  if (!m || Buffer.from(m[1], 'base64').length !== 32)
    throw new ApiError(400, { error: 'signing_token must be whsec_ followed by 32 bytes in base64' });
  return t;
}

function hookUrl(ctx: Ctx, required: boolean): string | undefined {
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
}

/** The event switches a hook has; undefined where the request leaves one out. */
function events(ctx: Ctx) {
  return {
    pushEvents: bool(ctx, 'push_events'),
    mergeRequestsEvents: bool(ctx, 'merge_requests_events'),
    noteEvents: bool(ctx, 'note_events'),
    pipelineEvents: bool(ctx, 'pipeline_events'),
    enableSslVerification: bool(ctx, 'enable_ssl_verification'),
  };
}

export function register(router: Router, { core, entities }: ApiDeps): void {
  const maintained = (ctx: Ctx) => {
    const p = projectOf(core, ctx);
    core.require(ctx.user, p, AccessLevel.MAINTAINER);
    return p;
  };

  router.on('GET', '/projects/:id/hooks', (ctx) => {
    const p = maintained(ctx);
    return new Page(core.store.data.hooks.filter((h) => h.projectId === p.id).map((h) => entities.hook(h)));
  });

  router.on('GET', '/projects/:id/hooks/:hook_id', (ctx) =>
    entities.hook(findHook(core, maintained(ctx), Number(ctx.params.hook_id))),
  );

  router.on('POST', '/projects/:id/hooks', (ctx) => {
    const p = maintained(ctx);
    const url = hookUrl(ctx, true)!;
    const token = str(ctx, 'token') ?? null;
    const signing = signingToken(ctx) ?? null;
    const e = events(ctx);
    const hook = addHook(core, p, {
      url,
      token,
      signingToken: signing,
      pushEvents: e.pushEvents ?? true,
      mergeRequestsEvents: e.mergeRequestsEvents ?? false,
      noteEvents: e.noteEvents ?? false,
      pipelineEvents: e.pipelineEvents ?? false,
      enableSslVerification: e.enableSslVerification ?? true,
    });
    ctx.res.statusCode = 201;
    return entities.hook(hook);
  });

  router.on('PUT', '/projects/:id/hooks/:hook_id', (ctx) => {
    const p = maintained(ctx);
    const h = findHook(core, p, Number(ctx.params.hook_id));
    const token = str(ctx, 'token');
    const settings = {
      url: hookUrl(ctx, false),
      token: token === undefined ? undefined : token || null,
      signingToken: signingToken(ctx),
      ...events(ctx),
    };
    updateHook(core, h, settings);
    return entities.hook(h);
  });

  router.on('DELETE', '/projects/:id/hooks/:hook_id', (ctx) => {
    deleteHook(core, maintained(ctx), Number(ctx.params.hook_id));
    ctx.res.statusCode = 204;
    return undefined;
  });
}
