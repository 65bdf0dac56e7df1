// Where an environment lives in the ops repository: its files and its branch, from the
// policy on the default branch (`match.files`, `match.target_branches`), so that
// `promote --env staging` needs no `--file`. The layouts this covers:
//
//   directory per environment   match: { files: ['envs/staging/**'] }
//   kustomize overlays          match: { files: ['overlays/staging/kustomization.yaml'] }
//   Helm values per environment match: { files: ['values-staging.yaml'] }
//   branch per environment      match: { target_branches: [staging], files: ['deployment.yml'] }
//
// A glob with wildcards is matched against the tree at the target branch, and only the
// files that reference the image are kept (a directory also holds services, config maps).
import { findImages } from '../manifests/index.js';
import { normalizeRepository } from '../manifests/reference.js';
import { globToRegExp } from '../policy/evaluate.js';
import { type Environment, POLICY_FILE, type Policy, PolicyError, parsePolicy } from '../policy/schema.js';
import { decodeText } from './observe.js';
import { PromoteError, PromoteExit, type PromoteForge } from './types.js';

export type TargetsForge = Pick<PromoteForge, 'projectDefaultBranch' | 'readFile' | 'listFiles'>;

export interface Targets {
  files: string[];
  targetBranch: string;
  /** the policy's environment, when it names one */
  environment: Environment | null;
  /** the policy read from the default branch (null: none there) */
  policy: Policy | null;
  defaultBranch: string;
}

const WILDCARD = /[*?]/;
const MANIFEST = /\.(ya?ml)$|(^|\/)Kustomization$/;

/** The policy on the default branch; null when there is none. Throws PromoteError(USAGE) when invalid. */
export async function readPolicy(
  gl: TargetsForge,
  project: string,
  defaultBranch: string,
): Promise<Policy | null> {
  const f = await gl.readFile(project, POLICY_FILE, defaultBranch);
  if (!f) return null;
  try {
    return parsePolicy(decodeText(f.path, f.content), `${POLICY_FILE} on ${defaultBranch}`);
  } catch (e) {
    if (e instanceof PolicyError) throw new PromoteError(e.message, PromoteExit.USAGE);
    throw e;
  }
}

/**
 * The paths an environment's `match.files` globs name at `ref`: the literal ones as written
 * (the operator's word), and the manifests of the tree a wildcard matches (one tree read,
 * only when there is a wildcard).
 */
export async function matchFiles(
  gl: Pick<TargetsForge, 'listFiles'>,
  project: string,
  globs: string[],
  ref: string,
): Promise<{ literal: string[]; found: string[] }> {
  const literal = globs.filter((g) => !WILDCARD.test(g));
  const patterns = globs.filter((g) => WILDCARD.test(g)).map(globToRegExp);
  const found = patterns.length
    ? (await gl.listFiles(project, ref)).filter((p) => MANIFEST.test(p) && patterns.some((r) => r.test(p)))
    : [];
  return { literal, found };
}

/**
 * The files and branch of `env` for `image`. Given files and branch win; without files the
 * policy's environment must name them. The repository is read only as far as needed: the
 * policy, and for a glob with wildcards the tree and the matching manifests.
 */
export async function resolveTargets(
  gl: TargetsForge,
  project: string,
  o: { env?: string; image: string; files?: string[]; targetBranch?: string },
): Promise<Targets> {
  const defaultBranch = await gl.projectDefaultBranch(project);
  const policy = await readPolicy(gl, project, defaultBranch);
  const environment = (o.env && policy?.environments.find((e) => e.name === o.env)) || null;
  const targetBranch = o.targetBranch ?? environment?.match.target_branches?.[0] ?? defaultBranch;
  if (o.files?.length) return { files: o.files, targetBranch, environment, policy, defaultBranch };
  if (!o.env)
    throw new PromoteError(
      '--file is required (or --env naming an environment of the policy)',
      PromoteExit.USAGE,
    );
  if (!environment) {
    const names = policy?.environments.map((e) => e.name).join(', ');
    throw new PromoteError(
      policy
        ? `--env ${o.env}: ${POLICY_FILE} on ${defaultBranch} has no environment named ${o.env} (it has ${names}); pass --file`
        : `--env ${o.env}: ${project} has no ${POLICY_FILE} on ${defaultBranch} to map it to files; pass --file`,
      PromoteExit.USAGE,
    );
  }
  const globs = environment.match.files ?? [];
  if (!globs.length)
    throw new PromoteError(
      `--env ${o.env}: environments[${policy!.environments.indexOf(environment)}].match.files in ${POLICY_FILE} names no files; add globs there or pass --file`,
      PromoteExit.USAGE,
    );
  const { literal, found } = await matchFiles(gl, project, globs, targetBranch);
  const candidates = [...new Set([...literal, ...found])].sort();
  // Literal paths are the operator's word: promote reports a missing one or one without the
  // image. Files a wildcard found are kept only when they reference the image.
  const wanted = normalizeRepository(o.image);
  const kept: string[] = [...literal];
  for (const path of found.filter((p) => !literal.includes(p))) {
    const f = await gl.readFile(project, path, targetBranch);
    if (!f) continue;
    try {
      if (findImages(decodeText(path, f.content), path).some((r) => r.normalized === wanted)) kept.push(path);
    } catch {
      // not YAML we can read: not one of the environment's manifests
    }
  }
  if (!kept.length)
    throw new PromoteError(
      `--env ${o.env}: no file matching ${globs.join(', ')} at ${targetBranch} references ${o.image} (${candidates.length} matched the globs)`,
      PromoteExit.NOT_REFERENCED,
    );
  return { files: kept.sort(), targetBranch, environment, policy, defaultBranch };
}

/**
 * The image of `app` in an environment's files: the repository whose last path segment is
 * the app's name (promote's default app, defaultApp), as written there. Null when no file
 * has one; an error message when several repositories end in the same name.
 */
export function appImage(
  files: Array<{ path: string; text: string }>,
  app: string,
): string | { error: string } | null {
  const found = new Set<string>();
  for (const f of files) {
    try {
      for (const r of findImages(f.text, f.path))
        if (r.repository.split('/').pop() === app) found.add(r.repository);
    } catch {
      // not YAML: no image of the app in it
    }
  }
  if (found.size > 1)
    return { error: `several images could be ${app}: ${[...found].sort().join(', ')}; pass --image` };
  return found.size ? [...found][0] : null;
}
