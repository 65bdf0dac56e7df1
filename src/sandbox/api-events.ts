// GitLab's Events API for a project (`GET /projects/:id/events`, lib/api/project_events.rb
// with EventsFinder). The sandbox records push events only: who pushed what to which branch,
// as GitLab saw the push (the API user, or the user authenticated for `git push`).
import { type ApiDeps, oneOf } from './api-common.js';
import { ApiError, type Ctx, paginate, type Router, str } from './http.js';
import { AccessLevel, type Project, type ProjectEvent, type User } from './state.js';

/** Event.actions and Event::TARGET_TYPES: the values Grape accepts. */
const ACTIONS = [
  'created',
  'updated',
  'closed',
  'reopened',
  'pushed',
  'commented',
  'merged',
  'joined',
  'left',
  'destroyed',
  'expired',
  'approved',
];
const TARGET_TYPES = [
  'issue',
  'milestone',
  'merge_request',
  'note',
  'project',
  'snippet',
  'user',
  'wiki',
  'design',
];

const DAY_MS = 24 * 60 * 60 * 1000;

export function register(router: Router, { core, entities }: ApiDeps): void {
  const store = core.store;

  /** A Grape Date parameter: the start of that day (UTC) in ms. */
  const day = (ctx: Ctx, name: string): number | undefined => {
    const v = str(ctx, name);
    if (v === undefined) return undefined;
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v.trim());
    const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : Number.NaN;
    if (!m || Number.isNaN(t) || new Date(t).getUTCDate() !== Number(m[3]))
      throw new ApiError(400, { error: `${name} is invalid` });
    return t;
  };
  /** Event#visible_to_user? for a push: download_code, which a private project keeps from Guests. */
  const seesPushes = (user: User | null, p: Project) =>
    p.visibility !== 'private' || core.accessLevel(user, p) >= AccessLevel.REPORTER;

  router.on('GET', '/projects/:id/events', (ctx) => {
    const p = core.project(ctx.user, ctx.params.id);
    const action = oneOf(ctx, 'action', ACTIONS);
    const targetType = oneOf(ctx, 'target_type', TARGET_TYPES);
    const before = day(ctx, 'before');
    const after = day(ctx, 'after');
    const sort = oneOf(ctx, 'sort', ['asc', 'desc']) ?? 'desc';
    const list: ProjectEvent[] = (store.data.events ?? [])
      .filter((e) => e.projectId === p.id)
      .filter((e) => !action || e.action === action)
      // push events have no target
      .filter(() => !targetType)
      // `before`: created before that day; `after`: created after the end of that day
      .filter((e) => before === undefined || Date.parse(e.createdAt) < before)
      .filter((e) => after === undefined || Date.parse(e.createdAt) >= after + DAY_MS)
      .sort((a, b) => (sort === 'asc' ? a.id - b.id : b.id - a.id));
    // As EventsFinder: the page is counted and cut first, then events the user may not see
    // are dropped from it (a Guest of a private project sees no pushes).
    const page = paginate(ctx, list, core.baseUrl) as ProjectEvent[];
    const visible = seesPushes(ctx.user, p) ? page : [];
    return visible.map((e) => entities.event(e));
  });
}
