// Image references, following the distribution project's reference grammar
// (github.com/distribution/reference): [registry[:port]/]path[:tag][@digest].
// `nginx`, `docker.io/nginx` and `docker.io/library/nginx` name the same repository.

export interface ImageReference {
  /** the repository as written, with its registry if any (`registry.example.com:5000/team/app`) */
  repository: string;
  tag?: string;
  digest?: string;
}

/** A broken rule, named so that users can fix their input (exit code 2 in the CLI). */
export class InvalidReferenceError extends Error {
  override name = 'InvalidReferenceError';
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME = 255;

/** Why `tag` is not a valid tag, or null. */
export function tagProblem(tag: string): string | null {
  if (tag.length > 128) return `tag '${tag.slice(0, 20)}…' is ${tag.length} characters; the limit is 128`;
  if (!TAG.test(tag)) {
    return `tag '${tag}' is invalid: a tag is 1 to 128 of [A-Za-z0-9_.-] and cannot start with '.' or '-'`;
  }
  return null;
}

/** Why `digest` is not a valid digest, or null. */
export function digestProblem(digest: string): string | null {
  if (!DIGEST.test(digest))
    return `digest '${digest}' is invalid: expected ALGORITHM:HEX, e.g. sha256:<64 hex digits>`;
  if (digest.startsWith('sha256:') && !SHA256.test(digest)) {
    return `digest '${digest}' is invalid: a sha256 digest is 64 lowercase hex digits`;
  }
  return null;
}

function domainProblem(domain: string): string | null {
  const [host, port, ...rest] = domain.split(':');
  if (rest.length || (port !== undefined && !/^\d{1,5}$/.test(port)))
    return `registry '${domain}' has an invalid port`;
  if (host.startsWith('[')) return null; // IPv6 literal
  if (!host.split('.').every((c) => DOMAIN_COMPONENT.test(c)))
    return `registry '${domain}' is not a valid host name`;
  return null;
}

/** Splits the registry from the path the way Docker does: a first component with `.` or `:`, or `localhost`. */
export function splitDomain(name: string): { domain: string | null; path: string } {
  const slash = name.indexOf('/');
  if (slash < 0) return { domain: null, path: name };
  const first = name.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
    return { domain: first, path: name.slice(slash + 1) };
  }
  return { domain: null, path: name };
}

/** Why `repository` is not a valid repository name (no tag, no digest), or null. */
export function repositoryProblem(repository: string): string | null {
  if (!repository) return 'the repository is empty';
  if (repository.length > MAX_NAME)
    return `repository name is ${repository.length} characters; the limit is ${MAX_NAME}`;
  if (/\s/.test(repository)) return `repository '${repository}' contains white space`;
  const { domain, path } = splitDomain(repository);
  // `alpine:invalid!` is a reference, and an invalid one: say which rule it breaks, not that
  // 'alpine:invalid!' is a strange path component.
  if (repository.includes('@') || path.includes(':')) {
    const problem = referenceProblem(repository);
    return problem
      ? `'${repository}' is not a valid reference: ${problem}`
      : `'${repository}' has a tag or digest; a repository has neither`;
  }
  if (domain) {
    const p = domainProblem(domain);
    if (p) return p;
  }
  for (const c of path.split('/')) {
    if (c !== c.toLowerCase()) return `repository '${repository}' must be lowercase ('${c}')`;
    if (!COMPONENT.test(c)) {
      return `repository '${repository}' has an invalid path component '${c}': use [a-z0-9] separated by '.', '_', '__' or '-'`;
    }
  }
  return null;
}

/** Parses `[registry/]path[:tag][@digest]`; throws InvalidReferenceError naming the broken rule. */
export function parseReference(text: string): ImageReference {
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const p = digestProblem(digest);
    if (p) throw new InvalidReferenceError(p);
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    const p = tagProblem(tag);
    if (p) throw new InvalidReferenceError(p);
  }
  const p = repositoryProblem(rest);
  if (p) throw new InvalidReferenceError(p);
  return { repository: rest, tag, digest };
}

/** Why `text` is not a valid `[registry/]path[:tag][@digest]`, or null. */
export function referenceProblem(text: string): string | null {
  try {
    parseReference(text);
    return null;
  } catch (e) {
    if (e instanceof InvalidReferenceError) return e.message;
    throw e;
  }
}

/** Like parseReference, but null instead of an error (for scanning files). */
export function tryParseReference(text: string): ImageReference | null {
  try {
    return parseReference(text);
  } catch {
    return null;
  }
}

/** The canonical name: `nginx` → `docker.io/library/nginx`, `index.docker.io/x/y` → `docker.io/x/y`. */
export function normalizeRepository(repository: string): string {
  let { domain, path } = splitDomain(repository);
  if (!domain || domain === 'index.docker.io' || domain === 'registry-1.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  return `${domain.toLowerCase()}/${path}`;
}

export function formatReference(ref: ImageReference): string {
  return `${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
