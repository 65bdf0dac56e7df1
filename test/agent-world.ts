// A world for the closed loop's end-to-end tests (rollback, chains, layouts): the sandbox
// (GitLab on real git), Debian's docker-registry, the sandbox's Argo CD pulling from it (an
// image never pushed there is Degraded, "Back-off pulling image"), and `serve` receiving
// GitLab's webhooks and Argo CD's notifications, as the README configures them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GitLab, GitLabGate } from '../src/gitlab/client.js';
import { type PromoteRequest, type PromoteResult, promote } from '../src/promote/promote.js';
import { pushImage } from '../src/sandbox/images.js';
import type { AppDefinition, Sandbox } from '../src/sandbox/index.js';
import { createWebhookServer, type WebhookServer } from '../src/server/webhook.js';
import { type Client, client, OPS, protect, sandboxFixture, until } from './helpers.js';
import { freePort, type Registry, startRegistry } from './registry/docker-registry.js';

export const SECRET = 'agent-world-secret';
const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

export interface AgentWorld {
  sb: Sandbox;
  registry: Registry;
  /** the operator (Maintainer of the ops project) */
  op: Client;
  /** the image repository in the test registry */
  image: string;
  serve: WebhookServer;
  serveUrl: string;
  bot: GitLabGate;
  botUserId: number;
  close(): Promise<void>;
}

export interface WorldOptions {
  /** the ops repository's files besides the policy (path → text); `IMAGE` in them is replaced by the image */
  files?: Record<string, string>;
  policy: string;
  /** Argo CD applications (default: the story's helloworld at deploy/prod) */
  apps?: AppDefinition[];
  /** tags pushed to the registry (the others are Degraded when deployed) */
  tags: string[];
  /** other branches to create from main before main is protected */
  branches?: string[];
}

/** Starts everything; the ops repo gets the policy and files on main, then main is protected. */
export async function agentWorld(o: WorldOptions): Promise<AgentWorld> {
  const registry = await startRegistry();
  const port = await freePort();
  const sb = await sandboxFixture({
    argocd: {
      pollMs: 150,
      syncMs: 50,
      progressingMs: 200,
      registries: [registry.url],
      notifyUrl: `http://127.0.0.1:${port}/argocd`,
      notifyToken: SECRET,
      notifyRetryWaitMs: 50,
      ...(o.apps ? { apps: o.apps } : {}),
    },
  });
  const op = client(sb, 'operator');
  const image = `${registry.host}/root/helloworld`;
  for (const tag of o.tags) await pushImage(registry.url, 'root/helloworld', tag);
  const base = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
  const files = o.files ?? {
    'deployment.yml': base.replace('registry.example.com/root/helloworld', 'IMAGE'),
  };
  const exists = async (path: string) =>
    op.RepositoryFiles.show(OPS, path, 'main').then(
      () => true,
      () => false,
    );
  const actions = [{ action: 'create' as const, filePath: '.gitops-bot.yml', content: o.policy }];
  for (const [filePath, text] of Object.entries(files))
    actions.push({
      action: ((await exists(filePath)) ? 'update' : 'create') as 'create',
      filePath,
      content: text.replaceAll('IMAGE', image),
    });
  await op.Commits.create(OPS, 'main', 'Policy, and images from the test registry', actions);
  for (const b of ['deploy/prod', ...(o.branches ?? [])])
    await op.Branches.create(OPS, b, 'main').catch(() => undefined);
  await protect(sb, { name: 'main', push_access_level: 40, merge_access_level: 30 });
  const bot = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  const me = await bot.currentUser();
  const serve = createWebhookServer({
    ctx: { gitlab: bot, botUserId: me.id },
    secret: SECRET,
    projects: [OPS],
  });
  const serveUrl = await serve.listen(port, '127.0.0.1');
  await op.ProjectHooks.add(OPS, `${serveUrl}/webhook`, {
    token: SECRET,
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
  });
  await op.ProjectHooks.add(OPS, `${sb.argocdUrl}/api/webhook`, { pushEvents: true });
  return {
    sb,
    registry,
    op,
    image,
    serve,
    serveUrl,
    bot,
    botUserId: me.id,
    async close() {
      await serve.close();
      await sb.close();
      await registry.close();
    },
  };
}

/** Waits until GitLab's webhooks, serve's jobs and Argo CD are all quiet. */
export async function settle(w: AgentWorld): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await w.sb.argocd!.idle();
    await w.sb.settle(w.serve);
  }
}

/** Waits until Argo CD's `app` runs `revision` with a settled health, and serve wrote it back. */
export async function argoAt(w: AgentWorld, app: string, revision: string): Promise<string> {
  await until(
    async () => {
      await w.sb.argocd!.idle();
      const a = w.sb.argocd!.get(app);
      const h = a?.status.health.status;
      return a?.status.sync.revision === revision && h !== 'Progressing' && h !== 'Missing';
    },
    `${app} at ${revision.slice(0, 8)}`,
    25,
    800,
  );
  await settle(w);
  return w.sb.argocd!.get(app)?.status.health.status ?? 'Missing';
}

/** promote as the app pipeline does (the registry not asked: some tags are meant to be missing). */
export function promoteAs(
  w: AgentWorld,
  req: Partial<PromoteRequest> & { tag: string },
): Promise<PromoteResult> {
  return promote(
    { project: OPS, files: [], image: w.image, verifyImage: false, ...req },
    { gitlab: new GitLab({ url: w.sb.url, token: 'gitops-bot-token' }) },
  );
}

/** The operator approves `iid`; the gate merges it (merge: bot). Returns the merge commit. */
export async function approveAndMerge(w: AgentWorld, iid: number): Promise<string> {
  await settle(w);
  const mr = await w.op.MergeRequests.show(OPS, iid);
  await w.op.MergeRequestApprovals.approve(OPS, iid, { sha: mr.sha });
  await settle(w);
  const merged = await w.op.MergeRequests.show(OPS, iid);
  assert.equal(merged.state, 'merged', `!${iid} merged by the bot`);
  return String(merged.merge_commit_sha);
}

/** The bot's deployments in a GitLab environment, newest first. */
export async function deploymentsIn(
  w: AgentWorld,
  environment: string,
): Promise<Array<{ id: number; sha: string; status: string }>> {
  const r = await fetch(
    `${w.sb.apiUrl}/projects/${encodeURIComponent(OPS)}/deployments?environment=${encodeURIComponent(environment)}&order_by=id&sort=desc&per_page=100`,
    { headers: { 'PRIVATE-TOKEN': 'operator-token' } },
  );
  return (await r.json()) as Array<{ id: number; sha: string; status: string }>;
}

/** The CLI as CI runs it: a fresh process, the bot's token in the environment. */
export function cli(
  w: AgentWorld,
  args: string[],
  token = 'gitops-bot-token',
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          GITLAB_URL: w.sb.url,
          GITOPS_BOT_TOKEN: token,
        },
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
