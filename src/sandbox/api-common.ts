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

// Gitlab::PathTraversal::PATH_TRAVERSAL_REGEX (lib/gitlab/path_traversal.rb): `.` or `..` alone,
// a `..` segment anywhere (either separator), or a newline.
const PATH_TRAVERSAL = /(^\.{1,2}$|^\.\.[/\\]|[/\\]\.\.$|[/\\]\.\.[/\\]|\n)/;

/** Gitlab::Utils.decode_path: URL-decoded until it stops changing, so `%2e%2e/` is `../`. */
function decodePath(raw: string): string {
  let path = raw;
  for (let i = 0; i < 10; i++) {
    let next: string;
    try {
      next = decodeURIComponent(path.replace(/\+/g, ' '));
    } catch {
      return path;
    }
    if (next === path) return path;
    path = next;
  }
  return path;
}

/**
 * A repository path as GitLab's `file_path: true` parameter validator accepts it
 * (API::Validations::Validators::FilePath): no traversal once URL-decoded, no newline, not
 * absolute. The sandbox also refuses NUL and empty segments, which git cannot store.
 */
export function filePath(raw: string, name = 'file_path'): string {
  const decoded = raw ? decodePath(raw) : raw;
  if (
    !raw ||
    PATH_TRAVERSAL.test(decoded) ||
    decoded.startsWith('/') ||
    raw.includes('\0') ||
    raw.split('/').some((s) => s === '')
  ) {
    throw new ApiError(400, { error: `${name} should be a valid file path` });
  }
  return raw;
}

/** The paths Gitaly's UserCommitFiles refuses after Rails lets them through, or null. */
export function commitPathProblem(path: string): string | null {
  // Gitaly answers an `//` as an invalid path before cleaning it (operations/commit_files.go).
  if (path.includes('//')) return path;
  const clean = cleanPath(path);
  // localrepo refuses a `.git` entry (ErrDisallowedPath), which `git fsck` calls hasDotgit; git's
  // own verify_path refuses it in any case, so `.GIT` is refused here too.
  if (clean === '' || clean.split('/').some((s) => s.toLowerCase() === '.git')) return clean || '.';
  return null;
}

/** filepath.Clean for a path already free of `..`: no `.` segments, no trailing slash. */
export function cleanPath(path: string): string {
  return path
    .split('/')
    .filter((s) => s !== '.' && s !== '')
    .join('/');
}

/**
 * A commit action's path as GitLab commits it: checked by Rails (400 `<name> should be a valid
 * file path`), then by Gitaly (400 `invalid path: '<path>'`), and cleaned (`a/./b` is `a/b`).
 */
export function commitPath(raw: string, name: string): string {
  // Rails' check runs on the raw path; Gitaly's `//` rule comes before the empty-segment rule.
  const decoded = raw ? decodePath(raw) : raw;
  if (!raw || PATH_TRAVERSAL.test(decoded) || decoded.startsWith('/') || raw.includes('\0')) {
    throw new ApiError(400, { error: `${name} should be a valid file path` });
  }
  const problem = commitPathProblem(raw);
  if (problem !== null) throw new ApiError(400, { message: `invalid path: '${problem}'` });
  return cleanPath(raw);
}

/**
 * A tree listing's `path`: one that climbs out of the repository (or holds a newline or NUL,
 * which no tree entry has) is Gitaly's InvalidArgument "invalid revision or path", a 400.
 */
export function treePath(raw: string | undefined): string {
  if (!raw) return '';
  let depth = 0;
  for (const segment of raw.split('/')) {
    if (segment === '..') depth--;
    else if (segment !== '.' && segment !== '') depth++;
    if (depth < 0) break;
  }
  if (depth < 0 || raw.includes('\n') || raw.includes('\0') || raw.startsWith('/')) {
    throw new ApiError(400, { message: '400 Bad request - invalid revision or path' });
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
