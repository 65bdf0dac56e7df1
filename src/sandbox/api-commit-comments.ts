// REST routes for comments on a commit (API::Entities::CommitNote).
import { type ApiDeps, authed, projectOf, shaOf } from './api-common.js';
import { addCommitComment } from './core-notes.js';
import { ApiError, int, missing, Page, type Router, str } from './http.js';

export function register(router: Router, { core, entities }: ApiDeps): void {
  // Oldest first, as GitLab lists them.
  router.on('GET', '/projects/:id/repository/commits/:sha/comments', async (ctx) => {
    const p = projectOf(core, ctx);
    const sha = await shaOf(core, p, ctx.params.sha);
    const list = (core.store.data.commitComments ?? [])
      .filter((c) => c.projectId === p.id && c.sha === sha)
      .sort((a, b) => (a.createdAt === b.createdAt ? a.id - b.id : a.createdAt < b.createdAt ? -1 : 1));
    return new Page(list.map((c) => entities.commitNote(c)));
  });

  router.on('POST', '/projects/:id/repository/commits/:sha/comments', async (ctx) => {
    const user = authed(ctx);
    const p = projectOf(core, ctx);
    const note = str(ctx, 'note');
    if (!note) throw missing('note');
    // GitLab's params: `line` is required with `path`, and `line_type` is new or old.
    if (str(ctx, 'path') !== undefined) {
      if (int(ctx, 'line') === undefined) throw missing('line');
      const lineType = str(ctx, 'line_type') ?? 'new';
      if (lineType !== 'new' && lineType !== 'old')
        throw new ApiError(400, { error: 'line_type does not have a valid value' });
    }
    const c = await addCommitComment(core, user, p, ctx.params.sha, note);
    ctx.res.statusCode = 201;
    return entities.commitNote(c);
  });
}
