// `gitops-bot serve` as a child process for the tests: its stdout, its JSON log lines
// (stderr), /healthz and /metrics; and a directory with a `git` to put first on its PATH.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sandbox } from '../../src/sandbox/index.js';
import { tempDir, until } from '../helpers.js';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  stdout(): string;
  stderr(): string;
  /** the JSON log lines so far */
  logs(): Array<Record<string, any>>;
  health(): Promise<{ status: number; body: Record<string, any> }>;
  /** one metric's value (0 when absent) */
  metric(name: string, labels?: string): Promise<number>;
  /** SIGKILL to its process group (its git children too) */
  kill(): Promise<void>;
  /** SIGTERM (it finishes its work in flight), then SIGKILL after `graceMs` */
  stop(graceMs?: number): Promise<void>;
}

const running: ServeProcess[] = [];
process.once('exit', () => {
  for (const s of running)
    try {
      process.kill(-s.child.pid!, 'SIGKILL');
    } catch {}
});

export async function startServe(
  sb: Sandbox,
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', ...args], {
    env: {
      ...process.env,
      GITOPS_BOT_LOG_LEVEL: undefined,
      GITLAB_URL: sb.url,
      GITOPS_BOT_TOKEN: 'gitops-bot-token',
      GITOPS_BOT_WEBHOOK_SECRET: 's',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  // A child left behind by a failed test must not keep this test file from finishing (it is
  // killed on exit, below).
  child.unref();
  (child.stdout as unknown as { unref(): void }).unref();
  (child.stderr as unknown as { unref(): void }).unref();
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await until(
    async () => /listening on (\S+)/.test(out) || child.exitCode !== null,
    'serve to listen',
    25,
    800,
  );
  if (!/listening on (\S+)/.test(out)) throw new Error(`serve did not start: ${out}${err}`);
  const url = /listening on (\S+)/.exec(out)![1];
  const s: ServeProcess = {
    child,
    url,
    stdout: () => out,
    stderr: () => err,
    logs: () =>
      err
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l)),
    async health() {
      const r = await fetch(`${url}/healthz`);
      return { status: r.status, body: (await r.json()) as Record<string, any> };
    },
    async metric(name, labels = '') {
      const text = await (await fetch(`${url}/metrics`)).text();
      const esc = `${name}${labels}`.replace(/[{}[\]().*+?^$|\\]/g, '\\$&');
      const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => void s.kill(), graceMs);
      await exited;
      clearTimeout(timer);
      await s.kill();
    },
    async kill() {
      const alive = child.exitCode === null && child.signalCode === null;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {}
      if (alive) await exited;
    },
  };
  running.push(s);
  return s;
}

/** Posts one delivery to serve, with its secret. */
export function deliver(s: ServeProcess, event: string, body: unknown, secret = 's'): Promise<Response> {
  return fetch(`${s.url}/webhook`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Gitlab-Token': secret, 'X-Gitlab-Event': event },
    body: JSON.stringify(body),
  });
}

/**
 * A directory holding a `git` script to put first on serve's PATH: it appends its argv
 * and its environment's variable names to `calls.log`, then runs `script` (shell).
 */
export async function fakeGit(script: string): Promise<{ dir: string; calls: string }> {
  const dir = await tempDir('gitops-bot-fake-git-');
  const calls = join(dir, 'calls.log');
  await writeFile(
    join(dir, 'git'),
    `#!/bin/sh
{ printf 'ARGV'; for a in "$@"; do printf ' [%s]' "$a"; done; printf '\\nENV %s\\n' "$(env | cut -d= -f1 | tr '\\n' ' ')"; } >> '${calls}'
${script}
`,
  );
  await chmod(join(dir, 'git'), 0o755);
  return { dir, calls };
}

/** The real git, for a fake one that passes through. */
export async function realGit(): Promise<string> {
  const { run } = await import('../helpers.js');
  return (await run('sh', ['-c', 'command -v git'])).stdout.trim();
}
