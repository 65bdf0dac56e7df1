// REST routes for deployments and environments (lib/api/deployments.rb, environments.rb).
// Grape checks the declared parameters before the endpoint body runs, so a bad parameter is a
// 400 before the project lookup (404) and the ability checks (403): reading needs Reporter on
// a private project (read_deployment, read_environment), writing Developer (create_deployment,
// update_deployment, create_environment, update_environment, destroy_environment of a stopped
// environment; stop_environment follows update_environment when there is no stop action). A CI job
// token may read them (GET), as GitLab's job token allowlist has it.
import { type ApiDeps, authed, oneOf, projectOf } from './api-common.js';
import {
  createDeployment,
  createEnvironment,
  DEPLOYMENT_ORDER,
  DEPLOYMENT_STATUSES,
  type DeploymentQuery,
  deleteEnvironment,
  deploymentById,
  deploymentQueryProblem,
  ENVIRONMENT_STATES,
  ENVIRONMENT_TIERS,
  environmentById,
  environmentOf,
  lastDeployment,
  listDeployments,
  listEnvironments,
  stopEnvironment,
  updateDeployment,
  updateEnvironment,
  WRITABLE_STATUSES,
  type WritableStatus,
} from './core-deployments.js';
import { ApiError, bool, type Ctx, forbidden, missing, notFound, Page, type Router, str } from './http.js';
import { AccessLevel, type Environment, type Project } from './state.js';

/** A Grape `DateTime` parameter: absent, or a time (400 `<name> is invalid` otherwise). */
function dateParam(ctx: Ctx, name: string): Date | undefined {
  const v = str(ctx, name);
  if (v === undefined || v === '') return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new ApiError(400, { error: `${name} is invalid` });
  return new Date(t);
}

/** A Grape `Integer` path parameter such as `:deployment_id`. */
function idParam(ctx: Ctx, name: string): number {
  const v = ctx.params[name];
  if (!/^\d+$/.test(v)) throw new ApiError(400, { error: `${name} is invalid` });
  return Number(v);
}

/** The parameters create and update declare alike: no `slug`, a `tier`, an `auto_stop_setting`. */
function environmentParams(ctx: Ctx): { tier: Environment['tier'] | undefined } {
  if (str(ctx, 'slug') !== undefined)
    throw new ApiError(400, { error: 'slug is automatically generated and cannot be changed' });
  const tier = oneOf(ctx, 'tier', ENVIRONMENT_TIERS) as Environment['tier'] | undefined;
  oneOf(ctx, 'auto_stop_setting', ['always', 'with_action']);
  return { tier };
}

export function register(router: Router, { core, entities }: ApiDeps): void {
  // read_environment / read_deployment: Reporter, or anyone signed in who can see a public or
  // internal project (ProjectPolicy's public_access); a Guest of a private project cannot.
  const requireRead = (ctx: Ctx, p: Project) => {
    if (p.visibility === 'private') core.require(ctx.user, p, AccessLevel.REPORTER);
  };
  /** The path's project and its deployment `id`, for a reader of them (404 when there is none). */
  const readDeployment = (ctx: Ctx, id: number) => {
    const p = projectOf(core, ctx);
    requireRead(ctx, p);
    const d = deploymentById(core, p, id);
    if (!d) throw notFound();
    return { p, d };
  };
  /** The path's project and its environment `id`, for a reader of them (404 when there is none). */
  const readEnvironment = (ctx: Ctx, id: number) => {
    const p = projectOf(core, ctx);
    requireRead(ctx, p);
    const e = environmentById(core, p, id);
    if (!e) throw notFound();
    return { p, e };
  };
  // ---------- deployments ----------

  router.on(
    'GET',
    '/projects/:id/deployments',
    (ctx) => {
      authed(ctx);
      const q: DeploymentQuery = {
        orderBy: oneOf(ctx, 'order_by', DEPLOYMENT_ORDER) ?? 'id',
        sort: (oneOf(ctx, 'sort', ['asc', 'desc']) ?? 'asc') as 'asc' | 'desc',
        updatedAfter: dateParam(ctx, 'updated_after'),
        updatedBefore: dateParam(ctx, 'updated_before'),
        finishedAfter: dateParam(ctx, 'finished_after'),
        finishedBefore: dateParam(ctx, 'finished_before'),
        environment: str(ctx, 'environment'),
        status: oneOf(ctx, 'status', DEPLOYMENT_STATUSES),
      };
      const p = projectOf(core, ctx);
      requireRead(ctx, p);
      const problem = deploymentQueryProblem(q);
      if (problem) throw new ApiError(400, { message: `400 Bad request - ${problem}` });
      return new Page(listDeployments(core, p, q).map((d) => entities.deployment(d, environmentOf(core, d))));
    },
    { jobToken: true },
  );

  router.on(
    'GET',
    '/projects/:id/deployments/:deployment_id',
    (ctx) => {
      authed(ctx);
      const { d } = readDeployment(ctx, idParam(ctx, 'deployment_id'));
      return entities.deployment(d, environmentOf(core, d));
    },
    { jobToken: true },
  );

  router.on('POST', '/projects/:id/deployments', async (ctx) => {
    const user = authed(ctx);
    const given = {
      environment: str(ctx, 'environment'),
      sha: str(ctx, 'sha'),
      ref: str(ctx, 'ref'),
      tag: bool(ctx, 'tag'),
      status: oneOf(ctx, 'status', [...WRITABLE_STATUSES]),
    };
    const absent = Object.entries(given)
      .filter(([, v]) => v === undefined || v === '')
      .map(([k]) => k);
    if (absent.length) throw missing(...absent);
    const p = projectOf(core, ctx);
    core.require(user, p, AccessLevel.DEVELOPER);
    const d = await createDeployment(core, user, p, {
      environment: given.environment as string,
      sha: given.sha as string,
      ref: given.ref as string,
      tag: given.tag as boolean,
      status: given.status as WritableStatus,
    });
    ctx.res.statusCode = 201;
    return entities.deployment(d, environmentOf(core, d));
  });

  router.on('PUT', '/projects/:id/deployments/:deployment_id', (ctx) => {
    const user = authed(ctx);
    const id = idParam(ctx, 'deployment_id');
    const status = str(ctx, 'status');
    if (!status) throw missing('status');
    oneOf(ctx, 'status', [...WRITABLE_STATUSES]);
    const { p, d } = readDeployment(ctx, id);
    core.require(user, p, AccessLevel.DEVELOPER);
    updateDeployment(core, d, status as WritableStatus);
    return entities.deployment(d, environmentOf(core, d));
  });

  // ---------- environments ----------

  router.on(
    'GET',
    '/projects/:id/environments',
    (ctx) => {
      authed(ctx);
      const name = str(ctx, 'name');
      const search = str(ctx, 'search');
      const states = oneOf(ctx, 'states', ENVIRONMENT_STATES);
      if (name !== undefined && search !== undefined)
        throw new ApiError(400, { error: 'name, search cannot be used together' });
      const p = projectOf(core, ctx);
      requireRead(ctx, p);
      if (search && search.length < 3)
        throw new ApiError(400, { message: '400 Bad request - Search query is less than 3 characters' });
      return new Page(
        listEnvironments(core, p, { name, search: search || undefined, states }).map((e) =>
          entities.environment(p, e),
        ),
      );
    },
    { jobToken: true },
  );

  router.on(
    'GET',
    '/projects/:id/environments/:environment_id',
    (ctx) => {
      authed(ctx);
      const { p, e } = readEnvironment(ctx, idParam(ctx, 'environment_id'));
      return entities.environment(p, e, { last: { deployment: lastDeployment(core, e) } });
    },
    { jobToken: true },
  );

  router.on('POST', '/projects/:id/environments', (ctx) => {
    authed(ctx);
    const name = str(ctx, 'name');
    if (!name) throw missing('name');
    const { tier } = environmentParams(ctx);
    const p = projectOf(core, ctx);
    core.require(ctx.user, p, AccessLevel.DEVELOPER);
    const e = createEnvironment(core, p, {
      name,
      externalUrl: str(ctx, 'external_url') ?? null,
      tier,
      description: str(ctx, 'description') ?? null,
    });
    ctx.res.statusCode = 201;
    return entities.environment(p, e);
  });

  router.on('PUT', '/projects/:id/environments/:environment_id', (ctx) => {
    authed(ctx);
    const id = idParam(ctx, 'environment_id');
    const { tier } = environmentParams(ctx);
    const p = projectOf(core, ctx);
    core.require(ctx.user, p, AccessLevel.DEVELOPER);
    const e = environmentById(core, p, id);
    if (!e) throw notFound();
    // Since GitLab 16.0 an environment cannot be renamed: `name` is not a declared parameter.
    updateEnvironment(core, e, {
      externalUrl: str(ctx, 'external_url'),
      tier,
      description: str(ctx, 'description'),
    });
    return entities.environment(p, e);
  });

  router.on('POST', '/projects/:id/environments/:environment_id/stop', (ctx) => {
    authed(ctx);
    const { p, e } = readEnvironment(ctx, idParam(ctx, 'environment_id'));
    core.require(ctx.user, p, AccessLevel.DEVELOPER);
    stopEnvironment(core, e);
    ctx.res.statusCode = 200;
    return entities.environment(p, e);
  });

  router.on('DELETE', '/projects/:id/environments/:environment_id', (ctx) => {
    authed(ctx);
    const { p, e } = readEnvironment(ctx, idParam(ctx, 'environment_id'));
    // destroy_environment: Developer, and only once the environment is stopped.
    core.require(ctx.user, p, AccessLevel.DEVELOPER);
    if (e.state !== 'stopped') throw forbidden();
    deleteEnvironment(core, e);
    ctx.res.statusCode = 204;
    return null;
  });
}
