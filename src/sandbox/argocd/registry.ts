// Whether the kubelet could pull an image: the sandbox's Argo CD has no cluster, so health
// comes from the registry itself. A manifest HEAD on the registries it was told about; an
// image on any other registry (registry.example.com in the story, docker.io, ...) is taken
// as present, since the sandbox cannot know better and must not reach the internet.

/** `host[:port]/repo[:tag|@digest]` split the way container runtimes do (docker.io default). */
export function splitImage(image: string): { host: string; repository: string; reference: string } {
  let rest = image;
  let host = 'docker.io';
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      host = first;
      rest = rest.slice(slash + 1);
    }
  }
  let reference = 'latest';
  const at = rest.indexOf('@');
  if (at >= 0) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  if (host === 'docker.io' && !rest.includes('/')) rest = `library/${rest}`;
  return { host, repository: rest, reference };
}

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export class RegistryFacts {
  /** host:port → base URL */
  private readonly known = new Map<string, string>();

  constructor(urls: string[]) {
    for (const u of urls) {
      const url = new URL(u);
      this.known.set(url.host, url.origin);
    }
  }

  /**
   * Null when the image can be pulled; otherwise why not. Images on registries the sandbox
   * was not told about count as present (see the file comment), and so does a registry that
   * answers neither 200 nor 404 (auth, outage): only a definite "manifest unknown" makes the
   * image missing.
   */
  async missing(image: string): Promise<boolean> {
    const { host, repository, reference } = splitImage(image);
    const base = this.known.get(host);
    if (!base) return false;
    try {
      const res = await fetch(`${base}/v2/${repository}/manifests/${reference}`, {
        method: 'HEAD',
        headers: { Accept: ACCEPT },
        signal: AbortSignal.timeout(10_000),
      });
      return res.status === 404;
    } catch {
      // An unreachable registry is an outage, not a missing image: the pull would be
      // retried, so the sandbox does not call it Degraded.
      return false;
    }
  }
}
