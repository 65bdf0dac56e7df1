// Debian's docker-registry on 127.0.0.1, for tests that push and read real images.
import { type ChildProcess, spawn } from 'node:child_process';
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { run, tempDir } from '../helpers.js';

export interface Registry {
  host: string;
  url: string;
  close(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface RegistryOptions {
  /** share another registry's storage (one registry to push test images, others to read them) */
  storage?: string;
  /** htpasswd file: basic auth */
  htpasswd?: string;
  /** token auth against a token service (the sandbox's /jwt/auth) trusting this certificate */
  token?: { realm: string; certificate: string; service?: string; issuer?: string };
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry & { storage: string }> {
  const dir = await tempDir('gitops-bot-registry-');
  const storage = opts.storage ?? join(dir, 'data');
  const port = await freePort();
  const config = join(dir, 'config.yml');
  let auth = '';
  if (opts.htpasswd) auth = `auth:\n  htpasswd:\n    realm: gitops-bot-test\n    path: ${opts.htpasswd}\n`;
  if (opts.token) {
    auth =
      `auth:\n  token:\n    realm: ${opts.token.realm}\n    service: ${opts.token.service ?? 'container_registry'}\n` +
      `    issuer: ${opts.token.issuer ?? 'gitlab-issuer'}\n    rootcertbundle: ${opts.token.certificate}\n`;
  }
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${url}/v2/`).then(
      (r) => r.status === 200 || r.status === 401,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    storage,
    close: async () => {
      child.kill();
    },
  };
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
