// What every REST route file shares: its dependencies, the signed-in user, the project and
// merge request named in the path, and the parameter checks GitLab's Grape API makes.
import type { SandboxCore } from './core.js';
import type { Entities } from './entities.js';
import { ApiError, type Ctx, missing, notFound, type Router, str, unauthorized } from './http.js';
import type { MergeRequest, Project, User } from './state.js';

export interface ApiDeps {
  core: SandboxCore;
  entities: Entities;
}

/** A route file: registers its routes on the router. */
export type RegisterRoutes = (router: Router, deps: ApiDeps) => void;

export function authed(ctx: Ctx): User {
  if (!ctx.user) throw unauthorized();
  return ctx.user;
}

/** The project of `:id`, or GitLab's 404 when the caller cannot see it. */
export function projectOf(core: SandboxCore, ctx: Ctx): Project {
  return core.project(ctx.user, ctx.params.id);
}

/** The project of `:id` and its merge request `:iid`. */
export function mergeRequestOf(core: SandboxCore, ctx: Ctx): { p: Project; mr: MergeRequest } {
  const p = projectOf(core, ctx);
  const mr = core.store.mergeRequest(p.id, Number(ctx.params.iid));
  if (!mr) throw notFound();
  return { p, mr };
}

/** A repository path as GitLab accepts it: relative, no `..`, no NUL. */
export function filePath(raw: string, name = 'file_path'): string {
  if (
    !raw ||
    raw.startsWith('/') ||
    raw.includes('\0') ||
    raw.split('/').some((s) => s === '..' || s === '')
  ) {
    throw new ApiError(400, { error: `${name} should be a valid file path` });
  }
  return raw;
}

/** A parameter Grape declares with `values:`. */
export function oneOf(ctx: Ctx, name: string, values: string[]): string | undefined {
  const v = str(ctx, name);
  if (v !== undefined && !values.includes(v))
    throw new ApiError(400, { error: `${name} does not have a valid value` });
  return v;
}

/** Grape's "x is missing, y is missing" for the required parameters that are absent. */
export function required(present: Record<string, unknown>): void {
  const absent = Object.entries(present)
    .filter(([, v]) => !v)
    .map(([k]) => k);
  if (absent.length) throw missing(...absent);
}

/** Required string parameters, or Grape's "x is missing" for those absent. */
export function requiredParams<K extends string>(ctx: Ctx, ...names: K[]): Record<K, string> {
  const values = Object.fromEntries(names.map((n) => [n, str(ctx, n)])) as Record<K, string | undefined>;
  required(values);
  return values as Record<K, string>;
}

/** The commit a path's `:sha` names (any ref), or GitLab's 404. */
export async function shaOf(core: SandboxCore, p: Project, raw: string): Promise<string> {
  const sha = await core.repo(p).resolve(raw);
  if (!sha) throw notFound('Commit');
  return sha;
}

/** A non-JSON body (e.g. a raw file). */
export class RawBody {
  constructor(
    readonly content: Buffer,
    readonly contentType: string,
  ) {}
}

/** The SHA a ref names, the default branch when none is given; null when it names nothing. */
export function resolveRef(core: SandboxCore, p: Project, name: string | undefined): Promise<string | null> {
  return core.repo(p).resolve(name || p.defaultBranch);
}
