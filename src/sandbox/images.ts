// Small images pushed straight over the distribution API, standing in for what an app
// pipeline builds (the demo and the tests): a config with labels, one tiny layer, as an OCI
// or Docker v2 manifest, or a two-platform index. Returns the registry's
// Docker-Content-Digest, to compare with what the bot resolves.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function putBlob(url: string, repo: string, blob: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha(blob);
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`blob upload: ${start.status}`);
  const location = new URL(start.headers.get('location')!, url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: new Uint8Array(blob),
  });
  if (put.status !== 201) throw new Error(`blob put: ${put.status} ${await put.text()}`);
  return { digest, size: blob.length };
}

async function putManifest(url: string, repo: string, ref: string, mediaType: string, body: Buffer) {
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'Content-Type': mediaType },
    body: new Uint8Array(body),
  });
  if (res.status !== 201) throw new Error(`manifest put ${ref}: ${res.status} ${await res.text()}`);
  return res.headers.get('docker-content-digest')!;
}

export type Format = 'oci' | 'docker' | 'index';

/** Pushes `repo:tag` to the (anonymous) registry at `url`; returns the registry's digest. */
export async function pushImage(
  url: string,
  repo: string,
  tag: string,
  o: { labels?: Record<string, string>; format?: Format } = {},
): Promise<string> {
  const format = o.format ?? 'oci';
  const one = async (arch: string, ref: string) => {
    const tar = Buffer.alloc(1024); // an empty tar: two zero blocks
    const layer = gzipSync(Buffer.concat([tar, Buffer.from(`${repo}:${tag}:${arch}`)]));
    const config = Buffer.from(
      JSON.stringify({
        architecture: arch,
        os: 'linux',
        config: { Labels: o.labels ?? {} },
        rootfs: { type: 'layers', diff_ids: [sha(tar)] },
      }),
    );
    const docker = format === 'docker';
    const [c, l] = [await putBlob(url, repo, config), await putBlob(url, repo, layer)];
    const mediaType = docker
      ? 'application/vnd.docker.distribution.manifest.v2+json'
      : 'application/vnd.oci.image.manifest.v1+json';
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: {
          mediaType: docker
            ? 'application/vnd.docker.container.image.v1+json'
            : 'application/vnd.oci.image.config.v1+json',
          ...c,
        },
        layers: [
          {
            mediaType: docker
              ? 'application/vnd.docker.image.rootfs.diff.tar.gzip'
              : 'application/vnd.oci.image.layer.v1.tar+gzip',
            ...l,
          },
        ],
      }),
    );
    const digest = await putManifest(url, repo, ref, mediaType, manifest);
    return { digest, size: manifest.length, mediaType };
  };
  if (format !== 'index') return (await one('amd64', tag)).digest;
  const arm = await one('arm64', `${tag}-arm64`);
  const amd = await one('amd64', `${tag}-amd64`);
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: [
        {
          mediaType: arm.mediaType,
          digest: arm.digest,
          size: arm.size,
          platform: { os: 'linux', architecture: 'arm64' },
        },
        {
          mediaType: amd.mediaType,
          digest: amd.digest,
          size: amd.size,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    }),
  );
  return putManifest(url, repo, tag, mediaType, index);
}
