// bench/sandbox: requests per second for file reads and for commits against the sandbox,
// and how long `gitops-bot sandbox --port 0 --seed story` takes to say it is ready.
// Targets (issue 2): 300 reads/s, 30 commits/s, ready in under 3 s.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Gitlab } from '@gitbeaker/rest';
import { startSandbox } from '../src/sandbox/index.js';

const OPS = 'root/helloworld-ops';

async function timed<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await fn(next++);
    }),
  );
  return n / ((performance.now() - started) / 1000);
}

export async function cliReadyMs(): Promise<number> {
  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const started = performance.now();
  const child = spawn(process.execPath, [cli, 'sandbox', '--port', '0', '--seed', 'story'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((ok) => {
    child.stdout.on('data', (b: Buffer) => {
      if (b.toString().includes('sandbox ready:')) ok();
    });
  });
  const ms = performance.now() - started;
  const exited = new Promise((ok) => child.on('exit', ok));
  child.kill('SIGTERM');
  await exited;
  return ms;
}

/** The acceptance line's own command: `npx gitops-bot sandbox --port 0 --seed story`, from the repo. */
export async function npxReadyMs(): Promise<number> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const started = performance.now();
  const child = spawn('npx', ['gitops-bot', 'sandbox', '--port', '0', '--seed', 'story'], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await new Promise<void>((ok) => {
    child.stdout.on('data', (b: Buffer) => {
      if (b.toString().includes('sandbox ready:')) ok();
    });
  });
  const ms = performance.now() - started;
  const exited = new Promise((ok) => child.on('exit', ok));
  process.kill(-child.pid!, 'SIGTERM');
  await exited;
  return ms;
}

export async function benchSandbox(): Promise<Record<string, number>> {
  const sb = await startSandbox({ port: 0, seed: 'story' });
  const c = new Gitlab({ host: sb.url, token: 'gitops-bot-token' });
  try {
    await c.RepositoryFiles.show(OPS, 'deployment.yml', 'main'); // warm up
    const reads = await timed(2000, 8, () => c.RepositoryFiles.show(OPS, 'deployment.yml', 'main'));
    const base = (await c.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main')) as unknown as string;
    await c.Branches.create(OPS, 'bench', 'main');
    const commits = await timed(300, 4, (i) =>
      c.Commits.create(OPS, 'bench', `ci-${i}`, [
        { action: 'update', filePath: 'deployment.yml', content: base.replace('ci-33', `ci-${1000 + i}`) },
      ]),
    );
    return {
      'file reads/s': Math.round(reads),
      'commits/s': Math.round(commits),
      'cli ready ms': Math.round(await cliReadyMs()),
      'npx gitops-bot sandbox ready ms (target < 3000)': Math.round(await npxReadyMs()),
    };
  } finally {
    await sb.close();
  }
}
