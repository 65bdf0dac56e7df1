// What the registry and the source project say about a promotion: does the new tag exist,
// which digest will run, and which app commits lie between the deployed image and the new
// one. The build template labels each image with `org.opencontainers.image.revision` (the
// commit it was built from) and `org.opencontainers.image.source` (the project's URL).
import { GitLabError } from '../gitlab/client.js';
import type { DeployedChanges, ImageFacts, SourceFacts } from '../model/record.js';
import { type ImageInfo, imageName, type RegistryClient, RegistryError } from '../registry/client.js';
import type { PromoteForge } from './types.js';

export const REVISION = 'org.opencontainers.image.revision';
export const SOURCE = 'org.opencontainers.image.source';
/** Commits listed in the description; the rest are counted and linked through the comparison. */
export const MAX_LISTED = 30;

export type VerifyMode = boolean | 'auto';

/** The new image as the registry has it, or why it could not be asked. Throws when it is missing. */
export async function inspectNew(
  registry: RegistryClient,
  image: string,
  reference: string,
  mode: VerifyMode,
): Promise<{ info: ImageInfo } | { unverified: string }> {
  const name = imageName(image);
  let info: ImageInfo | null;
  try {
    info = await registry.inspect(name, reference);
  } catch (e) {
    if (!(e instanceof RegistryError) || mode === true) throw e;
    if (e.kind !== 'unreachable' && e.kind !== 'auth') throw e;
    return { unverified: e.message };
  }
  if (!info) {
    throw new RegistryError(
      `${image}:${reference} does not exist: registry ${name.host} has no tag '${reference}' in repository ${name.repository}`,
      'not-found',
      404,
    );
  }
  return { info };
}

/** Which source project the image came from: its source label when it points into this GitLab. */
function sourceProject(labels: Record<string, string>, source: SourceFacts, gitlabUrl: string) {
  const base = gitlabUrl.replace(/\/+$/, '');
  const url = labels[SOURCE];
  if (url?.startsWith(`${base}/`)) {
    const path = url.slice(base.length + 1).replace(/\.git$|\/+$/g, '');
    if (path) return { project: path, projectUrl: `${base}/${path}` };
  }
  // The pipeline's own project, when it is in this GitLab (not a GitHub repository, say).
  if (source.project && (!source.projectUrl || source.projectUrl.startsWith(`${base}/`)))
    return { project: source.project, projectUrl: source.projectUrl ?? `${base}/${source.project}` };
  return null;
}

/**
 * The registry facts for the record, and the commits between the deployed image and the
 * new one (one GitLab request: compare). Everything that cannot be known is said, not
 * guessed: no old tag, no revision label, a project the bot cannot read.
 */
export async function describeChanges(o: {
  registry: RegistryClient;
  gitlab: PromoteForge;
  image: string;
  newInfo: ImageInfo;
  fromTag: string | undefined;
  source: SourceFacts;
}): Promise<ImageFacts> {
  const facts: ImageFacts = { digest: o.newInfo.digest };
  const unknown = (why: string): ImageFacts => ({ ...facts, changesUnknown: why });
  if (!o.fromTag) return unknown('the target branch does not name a tag for this image');
  let old: ImageInfo | null;
  try {
    old = await o.registry.inspect(imageName(o.image), o.fromTag);
  } catch (e) {
    if (e instanceof RegistryError)
      return unknown(`reading ${o.fromTag} from the registry failed: ${e.message}`);
    throw e;
  }
  if (!old) return unknown(`the deployed tag ${o.fromTag} is no longer in the registry`);
  facts.fromDigest = old.digest;
  const to = o.newInfo.labels[REVISION];
  const from = old.labels[REVISION];
  if (!to || !from) {
    const which = [!from && o.fromTag, !to && 'the new image'].filter(Boolean).join(' and ');
    return unknown(`${which} ${!from && !to ? 'have' : 'has'} no ${REVISION} label`);
  }
  const src = sourceProject(o.newInfo.labels, o.source, o.gitlab.webUrl);
  if (!src)
    return unknown(
      `the app's source is not a project of this GitLab (${o.newInfo.labels[SOURCE] || o.source.projectUrl || `no ${SOURCE} label, no --source-project`})`,
    );
  let compared: Awaited<ReturnType<PromoteForge['compare']>>;
  try {
    compared = await o.gitlab.compare(src.project, from, to);
  } catch (e) {
    if (e instanceof GitLabError && (e.status === 404 || e.status === 403))
      return unknown(`gitops-bot cannot read ${src.project} (it needs the Reporter role there)`);
    throw e;
  }
  if (!compared)
    return unknown(`${src.project} does not have commit ${from.slice(0, 8)} or ${to.slice(0, 8)}`);
  const mergeRequests: DeployedChanges['mergeRequests'] = [];
  const base = o.gitlab.webUrl;
  for (const c of compared.commits) {
    const m = /^See merge request (\S+?)!(\d+)\s*$/m.exec(c.message);
    if (m) mergeRequests.push({ ref: `${m[1]}!${m[2]}`, url: `${base}/${m[1]}/-/merge_requests/${m[2]}` });
  }
  const listed = compared.commits.slice(-MAX_LISTED);
  facts.changes = {
    ...src,
    from,
    to,
    compareUrl: compared.webUrl,
    commits: listed.map((c) => ({ sha: c.id, title: c.title, url: c.webUrl })),
    more: compared.commits.length - listed.length,
    mergeRequests,
  };
  return facts;
}
