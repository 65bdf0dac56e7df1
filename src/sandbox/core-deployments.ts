// GitLab's Deployments and Environments, as the REST API drives them: an environment is found
// or created by name when a deployment names it (slug and tier derived from the name), each
// deployment is a small state machine (Deployment's `state_machine :status`), and the list
// filters refuse the combinations DeploymentsFinder#validate! refuses.
import { createHash } from 'node:crypto';
import type { SandboxCore } from './core.js';
import { badRequest } from './http.js';
import type { Deployment, Environment, Project, User } from './state.js';

export type DeploymentStatus = Deployment['status'];
/** Deployment.statuses.keys: what the list's `status` filter accepts. */
export const DEPLOYMENT_STATUSES: DeploymentStatus[] = [
  'created',
  'running',
  'success',
  'failed',
  'canceled',
  'skipped',
  'blocked',
];
/** What POST and PUT accept as `status`. */
export const WRITABLE_STATUSES = ['running', 'success', 'failed', 'canceled'] as const;
export type WritableStatus = (typeof WRITABLE_STATUSES)[number];
const FINISHED: DeploymentStatus[] = ['success', 'failed', 'canceled', 'skipped'];
export const ENVIRONMENT_TIERS: Environment['tier'][] = [
  'production',
  'staging',
  'testing',
  'development',
  'other',
];
export const ENVIRONMENT_STATES: Environment['state'][] = ['available', 'stopping', 'stopped'];
/** DeploymentsFinder::ALLOWED_SORT_VALUES */
export const DEPLOYMENT_ORDER = ['id', 'iid', 'created_at', 'updated_at', 'ref', 'finished_at'];

// ---------- pure rules (table-tested in test/sandbox/deployments.test.ts) ----------

/**
 * Gitlab::Slug::Environment: lowercase letters, digits and `-`, starting with a letter, at most
 * 24 characters; a name the slug does not spell exactly gets 17 characters and a 6-character
 * suffix from its SHA-256 (so `production/helloworld` is `production-hellow-<suffix>`).
 * `hexdigest` is there for GitLab's own spec table, which fixes the digest.
 */
export function environmentSlug(
  name: string,
  hexdigest: (s: string) => string = (s) => createHash('sha256').update(s).digest('hex'),
): string {
  let slug = name.toLowerCase().replace(/[^a-z0-9]/g, '-');
  if (!/^[a-z]/.test(slug)) slug = `env-${slug}`;
  slug = slug.replace(/-+/g, '-');
  if (slug.length > 24 || slug !== name) {
    slug = slug.slice(0, 17);
    if (!slug.endsWith('-')) slug += '-';
    return (
      slug +
      BigInt(`0x${hexdigest(name)}`)
        .toString(36)
        .slice(-6)
    );
  }
  return slug.replace(/-$/, '');
}

/** Environment#guess_tier: the tier an environment gets when none is given, from its name. */
export function guessTier(name: string): Environment['tier'] {
  if (/(dev|review|trunk)/i.test(name)) return 'development';
  if (/(test|tst|int|ac(ce|)pt|qa|qc|control|quality)/i.test(name)) return 'testing';
  if (/(st(a|)g|mod(e|)l|pre|demo|non)/i.test(name)) return 'staging';
  if (/(pr(o|)d|live)/i.test(name)) return 'production';
  return 'other';
}

const NAME_CHARS = 'a-zA-Z0-9_/\\$\\{\\}\\. \\-';
const NAME_CHARS_NO_SLASH = 'a-zA-Z0-9_\\$\\{\\}\\. \\-';
// Gitlab::Regex.environment_name_regex and its message
const ENVIRONMENT_NAME = new RegExp(`^[${NAME_CHARS_NO_SLASH}]([${NAME_CHARS}]*[${NAME_CHARS_NO_SLASH}])?$`);
const ENVIRONMENT_NAME_MESSAGE =
  "can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', and spaces, but it cannot start or end with '/'";

/** Environment's validations on `name` (presence, length, format): GitLab's messages, or []. */
export function environmentNameErrors(name: string): string[] {
  if (!name) return ["can't be blank"];
  const errors: string[] = [];
  if (name.length > 255) errors.push('is too long (maximum is 255 characters)');
  if (!ENVIRONMENT_NAME.test(name)) errors.push(ENVIRONMENT_NAME_MESSAGE);
  return errors;
}

/** The state machine event Deployment#update_status fires for a requested status. */
const EVENT: Record<WritableStatus, string> = {
  running: 'run',
  success: 'succeed',
  failed: 'drop',
  canceled: 'cancel',
};

/**
 * Whether `from` may move to `to`: run from created or blocked only; succeed, drop and cancel
 * from any state but their own (so success → failed is allowed, success → success is not).
 */
export function transition(from: DeploymentStatus, to: WritableStatus): { event: string; allowed: boolean } {
  const event = EVENT[to];
  const allowed = to === 'running' ? from === 'created' || from === 'blocked' : from !== to;
  return { event, allowed };
}

export interface DeploymentQuery {
  orderBy: string;
  sort: 'asc' | 'desc';
  status?: string;
  environment?: string;
  updatedAfter?: Date;
  updatedBefore?: Date;
  finishedAfter?: Date;
  finishedBefore?: Date;
}

/**
 * DeploymentsFinder#validate!: the reason (GitLab's words) a list query is refused, or null.
 * The `updated_at` filter/sort pairing is only tracked in production (track_and_raise_for_dev_exception),
 * so it is not refused here either.
 */
export function deploymentQueryProblem(q: DeploymentQuery): string | null {
  const byUpdated = !!(q.updatedAfter || q.updatedBefore);
  const byFinished = !!(q.finishedAfter || q.finishedBefore);
  if (byUpdated && byFinished)
    return 'Both `updated_at` filter and `finished_at` filter can not be specified';
  if (byFinished !== (q.orderBy === 'finished_at'))
    return '`finished_at` filter and `finished_at` sorting must be paired';
  if (byFinished && q.status !== 'success')
    return '`finished_at` filter must be combined with `success` status filter.';
  return null;
}

// ---------- environments ----------

function environmentsOf(core: SandboxCore): Environment[] {
  core.store.data.environments ??= [];
  return core.store.data.environments;
}

function deploymentsOf(core: SandboxCore): Deployment[] {
  core.store.data.deployments ??= [];
  return core.store.data.deployments;
}

export function environmentById(core: SandboxCore, p: Project, id: number): Environment | undefined {
  return environmentsOf(core).find((e) => e.projectId === p.id && e.id === id);
}

export function environmentByName(core: SandboxCore, p: Project, name: string): Environment | undefined {
  return environmentsOf(core).find((e) => e.projectId === p.id && e.name === name);
}

export interface EnvironmentInput {
  name: string;
  externalUrl?: string | null;
  tier?: Environment['tier'];
  description?: string | null;
}

/** Environment.create: validated (400 with the model's errors), tier guessed when not given. */
export function createEnvironment(core: SandboxCore, p: Project, input: EnvironmentInput): Environment {
  const errors: Record<string, string[]> = {};
  const nameErrors = environmentNameErrors(input.name);
  if (environmentByName(core, p, input.name)) nameErrors.unshift('has already been taken');
  if (nameErrors.length) errors.name = nameErrors;
  const slug = environmentSlug(input.name);
  if (environmentsOf(core).some((e) => e.projectId === p.id && e.slug === slug))
    errors.slug = ['has already been taken'];
  if (Object.keys(errors).length) throw badRequest(errors);
  const now = new Date().toISOString();
  const env: Environment = {
    id: core.store.nextId('environment'),
    projectId: p.id,
    name: input.name,
    slug,
    tier: input.tier ?? guessTier(input.name),
    externalUrl: input.externalUrl ?? null,
    description: input.description ?? null,
    state: 'available',
    createdAt: now,
    updatedAt: now,
  };
  environmentsOf(core).push(env);
  core.store.changed();
  return env;
}

/** The environment's last deployment as GitLab means it: the newest successful one. */
export function lastDeployment(core: SandboxCore, env: Environment): Deployment | null {
  let last: Deployment | null = null;
  for (const d of deploymentsOf(core))
    if (d.environmentId === env.id && d.status === 'success' && (!last || d.id > last.id)) last = d;
  return last;
}

/**
 * GET /environments: by exact name, or a search (EnvironmentsFinder's for_name_like: a prefix
 * of the name or of its part inside the folder), and states; in id order.
 */
export function listEnvironments(
  core: SandboxCore,
  p: Project,
  q: { name?: string; search?: string; states?: string },
): Environment[] {
  const search = q.search?.toLowerCase();
  return environmentsOf(core).filter(
    (e) =>
      e.projectId === p.id &&
      (q.name === undefined || e.name === q.name) &&
      (search === undefined ||
        e.name.toLowerCase().startsWith(search) ||
        e.name.toLowerCase().split('/').slice(1).join('/').startsWith(search)) &&
      (q.states === undefined || e.state === q.states),
  );
}

export function updateEnvironment(
  core: SandboxCore,
  env: Environment,
  changes: { externalUrl?: string | null; tier?: Environment['tier']; description?: string | null },
): Environment {
  if (changes.externalUrl !== undefined) env.externalUrl = changes.externalUrl;
  if (changes.tier !== undefined) env.tier = changes.tier;
  if (changes.description !== undefined) env.description = changes.description;
  env.updatedAt = new Date().toISOString();
  core.store.changed();
  return env;
}

/** Environments::StopService without on_stop actions: the environment is stopped at once. */
export function stopEnvironment(core: SandboxCore, env: Environment): Environment {
  if (env.state !== 'stopped') {
    env.state = 'stopped';
    env.updatedAt = new Date().toISOString();
    core.store.changed();
  }
  return env;
}

/** DELETE: only a stopped environment may go (its deployments go with it). */
export function deleteEnvironment(core: SandboxCore, env: Environment): void {
  const store = core.store.data;
  store.environments = environmentsOf(core).filter((e) => e !== env);
  store.deployments = deploymentsOf(core).filter((d) => d.environmentId !== env.id);
  core.store.changed();
}

// ---------- deployments ----------

export function deploymentById(core: SandboxCore, p: Project, id: number): Deployment | undefined {
  return deploymentsOf(core).find((d) => d.projectId === p.id && d.id === id);
}

export function environmentOf(core: SandboxCore, d: Deployment): Environment {
  const env = environmentsOf(core).find((e) => e.id === d.environmentId);
  if (!env) throw new Error(`deployment ${d.id} has no environment ${d.environmentId}`);
  return env;
}

export interface DeploymentInput {
  environment: string;
  sha: string;
  ref: string;
  tag: boolean;
  status: WritableStatus;
}

/**
 * POST /deployments (Deployments::CreateService): the environment is found or created first;
 * when its last successful deployment has the same ref, tag, sha and status, that one is the
 * answer; else a deployment validated (sha and ref must name commits) and moved from created
 * to the requested status.
 */
export async function createDeployment(
  core: SandboxCore,
  user: User,
  p: Project,
  input: DeploymentInput,
): Promise<Deployment> {
  const env =
    environmentByName(core, p, input.environment) ?? createEnvironment(core, p, { name: input.environment });
  const last = lastDeployment(core, env);
  if (
    last &&
    last.ref === input.ref &&
    last.tag === input.tag &&
    last.sha === input.sha &&
    last.status === input.status
  )
    return last;
  const repo = core.repo(p);
  const errors: Record<string, string[]> = {};
  if (!(await repo.resolve(input.sha))) errors.sha = ['The commit does not exist'];
  if (!(await repo.resolve(input.ref))) errors.ref = ['The branch or tag does not exist'];
  if (Object.keys(errors).length) throw badRequest(errors);
  const now = new Date().toISOString();
  const d: Deployment = {
    id: core.store.nextId('deployment'),
    iid: core.store.nextId(`deployment-iid-${p.id}`),
    projectId: p.id,
    environmentId: env.id,
    ref: input.ref,
    tag: input.tag,
    sha: input.sha,
    status: 'created',
    userId: user.id,
    createdAt: now,
    updatedAt: now,
    finishedAt: null,
  };
  applyStatus(d, input.status, now);
  deploymentsOf(core).push(d);
  core.store.changed();
  return d;
}

/**
 * PUT /deployments/:id (Deployments::UpdateService → update_status): a transition the state
 * machine refuses leaves the deployment as it is, and state_machines' error on `status` is what
 * render_validation_error! answers with (400).
 */
export function updateDeployment(core: SandboxCore, d: Deployment, status: WritableStatus): Deployment {
  applyStatus(d, status, new Date().toISOString());
  core.store.changed();
  return d;
}

function applyStatus(d: Deployment, status: WritableStatus, now: string): void {
  const { event, allowed } = transition(d.status, status);
  if (!allowed) throw badRequest({ status: [`cannot transition via "${event}"`] });
  d.status = status;
  d.updatedAt = now;
  if (FINISHED.includes(status)) d.finishedAt = now;
}

/** GET /deployments, filtered and sorted as DeploymentsFinder does (after deploymentQueryProblem). */
export function listDeployments(core: SandboxCore, p: Project, q: DeploymentQuery): Deployment[] {
  const env = q.environment === undefined ? undefined : environmentByName(core, p, q.environment);
  if (q.environment !== undefined && !env) return [];
  const at = (s: string | null) => (s ? Date.parse(s) : Number.NaN);
  const list = deploymentsOf(core).filter(
    (d) =>
      d.projectId === p.id &&
      (!env || d.environmentId === env.id) &&
      (q.status === undefined || d.status === q.status) &&
      (!q.updatedAfter || at(d.updatedAt) >= q.updatedAfter.getTime()) &&
      (!q.updatedBefore || at(d.updatedAt) <= q.updatedBefore.getTime()) &&
      (!q.finishedAfter || at(d.finishedAt) >= q.finishedAfter.getTime()) &&
      (!q.finishedBefore || at(d.finishedAt) < q.finishedBefore.getTime()),
  );
  const dir = q.sort === 'desc' ? -1 : 1;
  // Sorting by created_at or iid is sorting by id; updated_at breaks ties by id, newest first.
  const key = (d: Deployment): string | number =>
    q.orderBy === 'updated_at'
      ? at(d.updatedAt)
      : q.orderBy === 'finished_at'
        ? at(d.finishedAt)
        : q.orderBy === 'ref'
          ? d.ref
          : d.id;
  return list.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka < kb) return -dir;
    if (ka > kb) return dir;
    return q.orderBy === 'updated_at' ? b.id - a.id : a.id - b.id;
  });
}
