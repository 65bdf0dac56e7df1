// A small client for the OCI distribution API (what `docker-registry`, GitLab's registry,
// Harbor and Docker Hub speak), over Node's fetch. It does the three things the bot needs:
// resolve a tag to the digest that will run, read an image's labels, and add tags to an
// existing manifest without pulling layers.
//
// Two details decide whether the answers are right:
// - Accept: without every manifest and index media type in Accept, a registry answers 404
//   or converts the manifest, and the digest is another one than what a runtime pulls.
// - Auth: the registry says how in its 401 (`WWW-Authenticate`). Basic gets the credentials;
//   Bearer sends us to a token endpoint (GitLab's is /jwt/auth) with them, for a scope.
import { createHash } from 'node:crypto';
import { networkCause } from '../base/network-error.js';
import { backoff, type RetryPolicy, serverWait } from '../base/retry.js';
import { splitDomain } from '../manifests/reference.js';

export const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
] as const;
const INDEX_TYPES = new Set<string>([MANIFEST_TYPES[0], MANIFEST_TYPES[2]]);

// GitLab's retry policy (src/base/retry.ts: its backoff and its reading of Retry-After),
// shorter: a registry check must not hold a promotion up for long.
const RETRY: RetryPolicy = { attempts: 3, budgetMs: 20_000, baseDelayMs: 250, maxDelayMs: 2_000 };
const RETRY_STATUS = new Set([429, 502, 503, 504]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** credentials for a registry host (`host[:port]`), if any */
  credentials?: (host: string) => Credentials | undefined;
  /** per-request timeout, ms (default 10 s) */
  timeoutMs?: number;
}

/** Where an image lives: the registry to talk to and the repository in it. */
export interface ImageName {
  /** `host[:port]` as written (`docker.io` for Docker Hub) */
  host: string;
  /** the repository inside the registry (`library/nginx` on Docker Hub) */
  repository: string;
  /** base URL of the distribution API */
  base: string;
}

export function imageName(image: string): ImageName {
  const { domain, path } = splitDomain(image);
  const host = domain ?? 'docker.io';
  if (host === 'docker.io' || host === 'index.docker.io') {
    return {
      host: 'docker.io',
      repository: path.includes('/') ? path : `library/${path}`,
      base: 'https://registry-1.docker.io',
    };
  }
  // Plain HTTP only on loopback, where a test or a local registry runs without TLS.
  const hostname = host.replace(/:\d+$/, '');
  const plain = hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
  return { host, repository: path, base: `${plain ? 'http' : 'https'}://${host}` };
}

/** A failure talking to a registry, in words for people; `kind` drives the exit code. */
export class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'auth' | 'not-found' | 'protocol',
    readonly status = 0,
  ) {
    super(message);
  }
}

export interface Manifest {
  digest: string;
  mediaType: string;
  /** the bytes as the registry stores them: the digest is over these */
  body: Buffer;
}

export interface ImageInfo {
  digest: string;
  mediaType: string;
  labels: Record<string, string>;
}

/** The params of a `WWW-Authenticate` challenge: `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\S+)\s*(.*)$/.exec(header);
  const params: Record<string, string> = {};
  for (const p of (m?.[2] ?? '').matchAll(/([A-Za-z_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1].toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (m?.[1] ?? '').toLowerCase(), params };
}

export class RegistryClient {
  /** HTTP requests made (token requests included) */
  requests = 0;
  private readonly auth = new Map<string, string>();

  constructor(private readonly opts: RegistryOptions = {}) {}

  /** The digest `reference` (a tag or digest) names, or null when the registry has no such manifest. */
  async resolve(image: ImageName, reference: string): Promise<{ digest: string; mediaType: string } | null> {
    const res = await this.send(image, 'pull', `/manifests/${reference}`, {
      method: 'HEAD',
      headers: { Accept: MANIFEST_TYPES.join(', ') },
    });
    if (res.status === 404) return null;
    this.expectOk(image, res, `manifest ${reference}`);
    const digest = res.headers.get('docker-content-digest');
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0];
    // Some registries omit the digest on HEAD: take it from the bytes.
    if (!digest) {
      const m = await this.manifest(image, reference);
      return m && { digest: m.digest, mediaType: m.mediaType };
    }
    return { digest, mediaType };
  }

  /** The manifest (or index) as stored, or null when there is none. */
  async manifest(image: ImageName, reference: string): Promise<Manifest | null> {
    const res = await this.send(image, 'pull', `/manifests/${reference}`, {
      headers: { Accept: MANIFEST_TYPES.join(', ') },
    });
    if (res.status === 404) return null;
    this.expectOk(image, res, `manifest ${reference}`);
    const body = Buffer.from(await res.arrayBuffer());
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    const stated = res.headers.get('docker-content-digest');
    if (stated?.startsWith('sha256:') && stated !== digest) {
      throw new RegistryError(
        `${this.where(image)}: manifest ${reference} has digest ${digest}, the registry says ${stated}`,
        'protocol',
      );
    }
    const mediaType =
      (res.headers.get('content-type') ?? '').split(';')[0] || String(JSON.parse(body.toString()).mediaType);
    return { digest, mediaType, body };
  }

  /**
   * Digest and labels of the image `reference` names; for a multi-arch index, the labels of
   * its linux/amd64 image (else its first), which the build template gives the same labels.
   */
  async inspect(image: ImageName, reference: string): Promise<ImageInfo | null> {
    const top = await this.manifest(image, reference);
    if (!top) return null;
    let m = top;
    if (INDEX_TYPES.has(top.mediaType)) {
      const index = JSON.parse(top.body.toString()) as {
        manifests?: Array<{ digest: string; platform?: { os?: string; architecture?: string } }>;
      };
      const images = (index.manifests ?? []).filter((x) => x.platform?.os !== 'unknown'); // not attestations
      const pick =
        images.find((x) => x.platform?.os === 'linux' && x.platform.architecture === 'amd64') ?? images[0];
      if (!pick) return { digest: top.digest, mediaType: top.mediaType, labels: {} };
      const child = await this.manifest(image, pick.digest);
      if (!child)
        throw new RegistryError(
          `${this.where(image)}: index ${reference} names a missing ${pick.digest}`,
          'protocol',
        );
      m = child;
    }
    const config = (JSON.parse(m.body.toString()) as { config?: { digest?: string } }).config?.digest;
    let labels: Record<string, string> = {};
    if (config) {
      const res = await this.send(image, 'pull', `/blobs/${config}`, {});
      this.expectOk(image, res, `config blob ${config}`);
      const json = (await res.json()) as { config?: { Labels?: Record<string, string> | null } };
      labels = json.config?.Labels ?? {};
    }
    return { digest: top.digest, mediaType: top.mediaType, labels };
  }

  /**
   * Tags the manifest `from` names as `to`, by putting the same bytes under the new tag: no
   * layer moves, and the digest stays (it is over those bytes).
   */
  async tag(image: ImageName, from: string, to: string): Promise<string> {
    const m = await this.manifest(image, from);
    if (!m) throw new RegistryError(`${this.where(image)} has no tag or digest '${from}'`, 'not-found', 404);
    const res = await this.send(image, 'push', `/manifests/${to}`, {
      method: 'PUT',
      headers: { 'Content-Type': m.mediaType },
      body: new Uint8Array(m.body),
    });
    this.expectOk(image, res, `tag ${to}`);
    const digest = res.headers.get('docker-content-digest') ?? m.digest;
    if (digest !== m.digest)
      throw new RegistryError(
        `${this.where(image)}: ${to} got digest ${digest}, not ${m.digest}`,
        'protocol',
      );
    return digest;
  }

  private where(image: ImageName): string {
    return `${image.host}/${image.repository}`;
  }

  private expectOk(image: ImageName, res: Response, what: string): void {
    if (res.ok) return;
    if (res.status === 401 || res.status === 403) {
      const creds = this.opts.credentials?.(image.host);
      throw new RegistryError(
        `registry ${image.host} refused ${creds ? `user '${creds.username}'` : 'anonymous access'} to ${image.repository} (${res.status}): ${
          creds
            ? 'check the registry credentials'
            : 'set GITOPS_BOT_REGISTRY_USER and GITOPS_BOT_REGISTRY_PASSWORD'
        }`,
        'auth',
        res.status,
      );
    }
    throw new RegistryError(
      `registry ${image.host}: ${what} of ${image.repository}: HTTP ${res.status}`,
      'protocol',
      res.status,
    );
  }

  /** One API call, authenticating the way a 401 asks to, once per registry and scope. */
  private async send(
    image: ImageName,
    action: 'pull' | 'push',
    path: string,
    init: RequestInit,
  ): Promise<Response> {
    const scope = `repository:${image.repository}:${action === 'push' ? 'pull,push' : 'pull'}`;
    const key = `${image.host} ${scope}`;
    const url = `${image.base}/v2/${image.repository}${path}`;
    const attempt = (authorization?: string) =>
      this.fetch(image, url, {
        ...init,
        headers: {
          ...(init.headers as Record<string, string>),
          ...(authorization ? { Authorization: authorization } : {}),
        },
      });
    let res = await attempt(this.auth.get(key));
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get('www-authenticate') ?? '');
    const creds = this.opts.credentials?.(image.host);
    let authorization: string | undefined;
    if (challenge.scheme === 'basic' && creds) {
      authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    } else if (challenge.scheme === 'bearer' && challenge.params.realm) {
      authorization = `Bearer ${await this.token(image, challenge.params, scope, creds)}`;
    }
    if (!authorization) return res;
    await res.arrayBuffer().catch(() => undefined); // let the connection be reused
    res = await attempt(authorization);
    if (res.status !== 401) this.auth.set(key, authorization);
    return res;
  }

  /** A Bearer token from the registry's token service (GitLab: /jwt/auth), for `scope`. */
  private async token(
    image: ImageName,
    params: Record<string, string>,
    scope: string,
    creds: Credentials | undefined,
  ): Promise<string> {
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (creds)
      headers.Authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    const res = await this.fetch(image, realm.toString(), { headers });
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError(
        `the token service of registry ${image.host} (${realm.origin}${realm.pathname}) refused ${creds ? `user '${creds.username}'` : 'anonymous access'} (${res.status})`,
        'auth',
        res.status,
      );
    }
    if (!res.ok)
      throw new RegistryError(
        `the token service of registry ${image.host} answered HTTP ${res.status}`,
        'protocol',
        res.status,
      );
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token)
      throw new RegistryError(`the token service of registry ${image.host} gave no token`, 'protocol');
    return token;
  }

  /**
   * One request, repeated (3 attempts at most) when the answer is a passing failure: 429,
   * 502, 503, 504 (after Retry-After, up to 10 s), a reset connection or a timeout. A host
   * that is not there (no such name, nothing listening) is reported at once: in auto mode
   * that is "not verified", and waiting would only slow the promotion down.
   */
  private async fetch(image: ImageName, url: string, init: RequestInit): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      this.requests++;
      let res: Response;
      try {
        res = await fetch(url, {
          ...init,
          redirect: 'follow',
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
        });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        const code = err.cause?.code;
        // "fetch failed" says nothing: the cause in words (connection refused, host not found…)
        const why = networkCause(e, url) ?? err.message;
        const absent = code === 'ENOTFOUND' || code === 'ECONNREFUSED' || code === 'EAI_AGAIN';
        if (absent || attempt >= RETRY.attempts) {
          throw new RegistryError(`cannot reach registry ${image.host}: ${why}`, 'unreachable');
        }
        await sleep(backoff(attempt - 1, RETRY));
        continue;
      }
      if (!RETRY_STATUS.has(res.status) || attempt >= RETRY.attempts) return res;
      await res.arrayBuffer().catch(() => undefined);
      await sleep(Math.min(serverWait(res.headers) ?? backoff(attempt - 1, RETRY), 10_000));
    }
  }
}

/**
 * Registry credentials from the environment: GITOPS_BOT_REGISTRY_USER and
 * GITOPS_BOT_REGISTRY_PASSWORD for the image's registry (GITOPS_BOT_REGISTRY, when set,
 * limits them to that host); in GitLab CI, CI_REGISTRY_USER and CI_REGISTRY_PASSWORD for
 * CI_REGISTRY. Never for another host than asked about.
 */
export function credentialsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): (host: string) => Credentials | undefined {
  return (host) => {
    const user = env.GITOPS_BOT_REGISTRY_USER;
    const password = env.GITOPS_BOT_REGISTRY_PASSWORD;
    if (user && password && (!env.GITOPS_BOT_REGISTRY || env.GITOPS_BOT_REGISTRY === host))
      return { username: user, password };
    if (env.CI_REGISTRY === host && env.CI_REGISTRY_USER && env.CI_REGISTRY_PASSWORD)
      return { username: env.CI_REGISTRY_USER, password: env.CI_REGISTRY_PASSWORD };
    return undefined;
  };
}
