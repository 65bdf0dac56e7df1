// REST routes for notes on a merge request.
import { type ApiDeps, authed, mergeRequestOf, oneOf } from './api-common.js';
import { addNote, deleteNote, editNote, findNote, requireEditNote } from './core-notes.js';
import { badRequest, bool, type Ctx, missing, Page, type Router, str } from './http.js';

const NOTE_LIMIT = 1_000_000;

function noteBody(ctx: Ctx): string {
  const body = str(ctx, 'body');
  if (body === undefined || body === '') throw missing('body');
  if (body.length > NOTE_LIMIT) {
    throw badRequest({ note: [`is too long (maximum is ${NOTE_LIMIT} characters)`] });
  }
  return body;
}

export function register(router: Router, { core, entities }: ApiDeps): void {
  const noteOf = (ctx: Ctx) => {
    const { p, mr } = mergeRequestOf(core, ctx);
    return { p, mr, note: findNote(core, p, mr, Number(ctx.params.note_id)) };
  };

  router.on(
    'GET',
    '/projects/:id/merge_requests/:iid/notes',
    (ctx) => {
      const { p, mr } = mergeRequestOf(core, ctx);
      const orderBy =
        oneOf(ctx, 'order_by', ['created_at', 'updated_at']) === 'updated_at' ? 'updatedAt' : 'createdAt';
      const sort = oneOf(ctx, 'sort', ['asc', 'desc']) ?? 'desc';
      // UserPreference::NOTES_FILTERS: comments and system notes (default), or one of them
      const filter = oneOf(ctx, 'activity_filter', ['all_notes', 'only_comments', 'only_activity']);
      const notes = core.store.data.notes
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
    const { mr, note } = noteOf(ctx);
    return entities.note(note, mr);
  });

  router.on('POST', '/projects/:id/merge_requests/:iid/notes', (ctx) => {
    const user = authed(ctx);
    const { p, mr } = mergeRequestOf(core, ctx);
    const body = noteBody(ctx);
    const note = addNote(core, user, p, mr, { body, internal: bool(ctx, 'internal') ?? false });
    ctx.res.statusCode = 201;
    return entities.note(note, mr);
  });

  router.on('PUT', '/projects/:id/merge_requests/:iid/notes/:note_id', (ctx) => {
    const user = authed(ctx);
    const { p, mr, note } = noteOf(ctx);
    requireEditNote(user, note);
    editNote(core, user, p, mr, note, noteBody(ctx));
    return entities.note(note, mr);
  });

  router.on('DELETE', '/projects/:id/merge_requests/:iid/notes/:note_id', (ctx) => {
    const user = authed(ctx);
    const { p, note } = noteOf(ctx);
    deleteNote(core, user, p, note);
    ctx.res.statusCode = 204;
    return undefined;
  });
}
