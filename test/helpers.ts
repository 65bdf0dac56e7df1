// Shared test helpers: a sandbox per test file, gitbeaker clients per user, git in temp dirs.
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GitbeakerRequestError, Gitlab } from '@gitbeaker/rest';
import {
  deployRefProtection,
  MAIN_PROTECTION,
  protectBranch,
  type Sandbox,
  type SandboxOptions,
  startSandbox,
  strictPolicy,
} from '../src/sandbox/index.js';

export const run = promisify(execFile);

export type Client = InstanceType<typeof Gitlab<false>>;

export function client(sandbox: Sandbox, username: string): Client {
  return new Gitlab({ host: sandbox.url, token: `${username}-token` });
}

export async function sandboxFixture(opts: SandboxOptions = {}): Promise<Sandbox> {
  return startSandbox({ port: 0, seed: 'story', ...opts });
}

const made: string[] = [];
// Each test file is its own process: its temp dirs go when it exits (a test that fails
// keeps nothing either; rerun it with GITOPS_BOT_KEEP_TMP=1 to look inside).
process.once('exit', () => {
  if (process.env.GITOPS_BOT_KEEP_TMP) return;
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

export async function tempDir(prefix = 'gitops-bot-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** The status and GitLab message of a failed gitbeaker call. */
export async function failure(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof GitbeakerRequestError) {
      const cause = e.cause as { description: string; response: Response };
      return { status: cause.response.status, message: cause.description };
    }
    throw e;
  }
  throw new Error('expected the call to fail');
}

/** Raw HTTP for what gitbeaker cannot show (headers, HEAD, malformed bodies). */
export async function api(
  sandbox: Sandbox,
  path: string,
  init: RequestInit & { token?: string } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('PRIVATE-TOKEN', init.token);
  const res = await fetch(`${sandbox.apiUrl}${path}`, { ...init, headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, body };
}

export const OPS = 'root/helloworld-ops';

/** `gitops-bot promote` for the story's app, without tag: the command line the tests build on. */
export const PROMOTE_STORY = [
  'promote',
  '--project',
  OPS,
  '--file',
  'deployment.yml',
  '--image',
  'registry.example.com/root/helloworld',
];
export const APP = 'root/helloworld';

/** Adds apps/app<i>.yml to the ops repo: the story's deployment, running `image(i)` instead. */
export async function addApps(sandbox: Sandbox, count: number, image: (i: number) => string): Promise<void> {
  const op = client(sandbox, 'operator');
  const base = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  await op.Commits.create(
    OPS,
    'main',
    `${count} apps`,
    Array.from({ length: count }, (_, i) => ({
      action: 'create' as const,
      filePath: `apps/app${i}.yml`,
      content: base.replace('root/helloworld:ci-33', image(i)),
    })),
  );
}

/** The strict-mode policy of the story: the operator approves, the bot merges and deploys. */
export const STRICT_POLICY = strictPolicy();

/** Protects a branch of the ops project, as operator (GitLab's protected_branches body). */
export function protect(sandbox: Sandbox, rule: Record<string, unknown>): Promise<void> {
  return protectBranch(sandbox.apiUrl, rule);
}

/** deploy/prod: only gitops-bot (user `botId`) may push to it. */
export function protectDeployRef(sandbox: Sandbox, botId: number): Promise<void> {
  return protect(sandbox, deployRefProtection(botId));
}

/** The ops project's hook to `url` with push, MR and note events, as operator. */
export async function addHook(sandbox: Sandbox, url: string, token: string): Promise<{ id: number }> {
  return client(sandbox, 'operator').ProjectHooks.add(OPS, url, {
    token,
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
  });
}

/** Adds STRICT_POLICY and deploy/prod, and lets Developers (the bot) merge into main. */
export async function strictOps(sandbox: Sandbox): Promise<void> {
  const op = client(sandbox, 'operator');
  await op.Commits.create(OPS, 'main', 'Policy', [
    { action: 'create', filePath: '.gitops-bot.yml', content: STRICT_POLICY },
  ]);
  await op.Branches.create(OPS, 'deploy/prod', 'main');
  await protect(sandbox, MAIN_PROTECTION);
}

/** Polls `check` until it holds; fails naming `what` after `tries` polls. */
export async function until(
  check: () => Promise<boolean>,
  what: string,
  ms = 25,
  tries = 400,
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, ms));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A loopback receiver for the sandbox's webhooks: every delivery, in order. */
export async function hookReceiver(): Promise<{
  url: string;
  received: Array<{ headers: IncomingHttpHeaders; event: string; body: any }>;
  close(): void;
}> {
  const received: Array<{ headers: IncomingHttpHeaders; event: string; body: any }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString());
      received.push({ headers: req.headers, event: String(req.headers['x-gitlab-event']), body });
      res.end('ok');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/hook`, received, close: () => server.close() };
}

/** A sandbox with a webhook receiver registered on OPS for `events`; `close` ends both. */
export async function sandboxWithHooks(events: Record<string, unknown>): Promise<{
  sb: Sandbox;
  hooks: Awaited<ReturnType<typeof hookReceiver>>;
  close(): Promise<void>;
}> {
  const sb = await sandboxFixture();
  const hooks = await hookReceiver();
  await client(sb, 'operator').ProjectHooks.add(OPS, hooks.url, events);
  const close = async () => {
    await sb.close();
    hooks.close();
  };
  return { sb, hooks, close };
}

/** `c` commits `actions` as `message` on a new `branch` off `target`, and opens the MR into `target`. */
export async function branchWithMr(
  c: Client,
  branch: string,
  target: string,
  message: string,
  actions: Parameters<Client['Commits']['create']>[3],
  title: string,
) {
  await c.Commits.create(OPS, branch, message, actions, { startBranch: target });
  return c.MergeRequests.create(OPS, branch, target, title);
}
