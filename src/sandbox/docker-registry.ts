// A real OCI registry beside the sandbox: Debian's docker-registry (the distribution project)
// on 127.0.0.1, for the demo and the tests. GitLab's registry is the same program; this
// starts it with anonymous access, htpasswd basic auth, or token auth against the sandbox's
// /jwt/auth. Null when docker-registry is not installed.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onPath } from './on-path.js';

export interface DockerRegistry {
  /** host:port, as in image references */
  host: string;
  url: string;
  /** the storage directory (another registry can serve the same images) */
  storage: string;
  close(): Promise<void>;
}

export interface DockerRegistryOptions {
  /** serve another registry's storage */
  storage?: string;
  /** htpasswd file (bcrypt entries): basic auth */
  htpasswd?: string;
  /** token auth: the realm (the sandbox's /jwt/auth) and the certificate its tokens carry */
  token?: { realm: string; certificate: string; service?: string; issuer?: string };
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

export async function startDockerRegistry(opts: DockerRegistryOptions = {}): Promise<DockerRegistry | null> {
  if (!onPath('docker-registry')) return null;
  const dir = await mkdtemp(join(tmpdir(), 'gitops-bot-registry-'));
  const storage = opts.storage ?? join(dir, 'data');
  const port = await freePort();
  const config = join(dir, 'config.yml');
  let auth = '';
  if (opts.htpasswd) auth = `auth:\n  htpasswd:\n    realm: gitops-bot-sandbox\n    path: ${opts.htpasswd}\n`;
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
      if (!opts.storage) await rm(dir, { recursive: true, force: true });
    },
  };
}
