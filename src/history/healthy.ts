// What ran healthy where: the facts rollback, the rollback rules of the gate and the
// environment chains decide from. They are GitLab's Deployments in the environment
// `<env>/<app>` that gitops-bot itself created (feedback/apply.ts writes them from the
// agent's reports), and the image tag the manifests hold at each deployment's commit.
//
// Trust: a Developer of the ops project can create deployments through the API too, so a
// deployment counts only when its `user` is the bot; the tag is read from the files at the
// deployment's commit (history of a protected branch), never from a description.
import type { DeploymentInfo, GitLab } from '../gitlab/client.js';
import { findImages } from '../manifests/index.js';
import { normalizeRepository } from '../manifests/reference.js';

/** The bot's deployments in one GitLab environment, newest first (by id). Pure. */
export function botDeployments(
  deployments: DeploymentInfo[],
  environment: string,
  botUserId: number,
): DeploymentInfo[] {
  return deployments
    .filter((d) => d.environment === environment && d.user?.id === botUserId && d.status !== 'canceled')
    .sort((a, b) => b.id - a.id);
}

/**
 * What runs in the environment now, from the bot's deployments there (deploymentsOf: newest
 * first, none canceled): the newest (null: none). Healthy when its status is success;
 * `since` is when it became so (GitLab's entity has no finished_at: updated_at is the time
 * of the last transition). Pure.
 */
export function current(
  deployments: DeploymentInfo[],
): { deployment: DeploymentInfo; healthy: boolean; since: string } | null {
  const [d] = deployments;
  if (!d) return null;
  return { deployment: d, healthy: d.status === 'success', since: d.finishedAt ?? d.updatedAt };
}

export type HistoryForge = Pick<GitLab, 'listDeployments' | 'readFile'>;

/** The bot's deployments of `<env>/<app>`, newest first (one page of 100). */
export async function deploymentsOf(
  gl: HistoryForge,
  project: string,
  environment: string,
  botUserId: number,
): Promise<DeploymentInfo[]> {
  const page = await gl.listDeployments(project, { environment, orderBy: 'id', sort: 'desc', perPage: 100 });
  return botDeployments(page, environment, botUserId);
}

/** The reference of `image` in text (the first one with a tag), or null. Pure. */
export function refIn(text: string, path: string, image: string): { tag: string; digest?: string } | null {
  const wanted = normalizeRepository(image);
  try {
    for (const r of findImages(text, path))
      if (r.normalized === wanted && r.tag) return { tag: r.tag, ...(r.digest ? { digest: r.digest } : {}) };
  } catch {
    // not YAML at that commit: no tag there
  }
  return null;
}

/** The tag of `image` in text (the first reference found), or null. Pure. */
export function tagIn(text: string, path: string, image: string): string | null {
  return refIn(text, path, image)?.tag ?? null;
}

/**
 * The reference of `image` in `files` at commit `sha`: the first file that references it,
 * with the digest when one is pinned there (what ran is tag and digest, not the tag alone).
 */
export async function refAt(
  gl: Pick<GitLab, 'readFile'>,
  project: string,
  sha: string,
  files: string[],
  image: string,
): Promise<{ tag: string; digest?: string } | null> {
  for (const path of files) {
    const f = await gl.readFile(project, path, sha);
    if (!f) continue;
    const ref = refIn(f.content.toString('utf8'), path, image);
    if (ref) return ref;
  }
  return null;
}

/** The tag of `image` in `files` at commit `sha`: the first file that references it. */
export async function tagAt(
  gl: Pick<GitLab, 'readFile'>,
  project: string,
  sha: string,
  files: string[],
  image: string,
): Promise<string | null> {
  return (await refAt(gl, project, sha, files, image))?.tag ?? null;
}
