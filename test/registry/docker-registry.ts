// Debian's docker-registry on 127.0.0.1 (src/sandbox/docker-registry.ts) for the tests,
// with what token and htpasswd auth need.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type DockerRegistry,
  type DockerRegistryOptions,
  freePort,
  startDockerRegistry,
} from '../../src/sandbox/docker-registry.js';
import { run, tempDir } from '../helpers.js';

export type Registry = DockerRegistry;
export { freePort };

/** docker-registry on 127.0.0.1 (installed by .ci/run: the tests need it). */
export async function startRegistry(opts: DockerRegistryOptions = {}): Promise<DockerRegistry> {
  const r = await startDockerRegistry(opts);
  if (!r) throw new Error('docker-registry is not installed (apt-get install docker-registry)');
  return r;
}

/** Accept header for every manifest and index media type; without it the digest is wrong. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** A key and self-signed certificate for registry tokens (the registry trusts the certificate). */
export async function tokenKeys(): Promise<{ key: KeyObject; certificate: Buffer; certFile: string }> {
  const dir = await tempDir('gitops-bot-registry-keys-');
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=gitops-bot sandbox registry tokens',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  const pem = await readFile(certFile, 'utf8');
  return {
    key: createPrivateKey(await readFile(keyFile)),
    certificate: new X509Certificate(pem).raw,
    certFile,
  };
}

/** An htpasswd file (bcrypt, as docker-registry requires), made with crypt(3) through perl. */
export async function htpasswd(users: Record<string, string>): Promise<string> {
  const dir = await tempDir('gitops-bot-htpasswd-');
  const lines: string[] = [];
  for (const [user, password] of Object.entries(users)) {
    const { stdout } = await run('perl', [
      '-e',
      'print crypt($ARGV[0], "\\$2y\\$05\\$" . $ARGV[1])',
      password,
      'gitopsbotsandboxsaltxx',
    ]);
    lines.push(`${user}:${stdout}`);
  }
  const file = join(dir, 'htpasswd');
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}
