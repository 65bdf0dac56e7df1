// startSandbox(): the GitLab sandbox as a library. The CLI, the demo, the tests and the
// benchmarks all start it through here.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type RequestLogEntry, sandboxAdmin } from './admin.js';
import { ROUTES } from './api-routes.js';
import { type Argocd, type ArgocdOptions, startArgocd } from './argocd/index.js';
import { SandboxCore } from './core.js';
import { Entities } from './entities.js';
import { FaultInjector, type FaultSpec, parseFaults } from './faults.js';
import { handleGit, isGitRequest } from './git-http.js';
import { listenUrl, Router, sendJson } from './http.js';
import { handleJwtAuth, type RegistryTokenOptions } from './registry-auth.js';
import { type RateLimit, restApi } from './rest.js';
import { type SeedName, seed } from './seed.js';
import { Store } from './state.js';
import { Webhooks } from './webhooks.js';

export type { RequestLogEntry };

export interface SandboxOptions {
  host?: string;
  /** 0 picks a free port */
  port?: number;
  /** keep state here across restarts; without it a temporary folder is used and removed on close */
  dataDir?: string;
  seed?: SeedName;
  /** binding anything but loopback must be asked for explicitly */
  allowNonLoopback?: boolean;
  /**
   * GitLab's API throttle: requests per minute per user (or a limit per period) before 429,
   * with GitLab's RateLimit-* headers. Default: no throttle and no headers, as a self-managed
   * GitLab has by default.
   */
  rateLimit?: number | RateLimit;
  /** inject faults into API answers (see faults.ts), e.g. `rate=0.2,seed=7` */
  faults?: string | FaultSpec;
  /** serve GitLab's registry token service at /jwt/auth, signing with this key */
  registryTokens?: RegistryTokenOptions;
  /** also serve an Argo CD (its own loopback port) whose applications track sandbox branches */
  argocd?: boolean | ArgocdOptions;
}

export interface Sandbox {
  url: string;
  apiUrl: string;
  dataDir: string;
  users: Array<{ username: string; token: string; admin: boolean }>;
  core: SandboxCore;
  webhooks: Webhooks;
  /** the Argo CD's API URL, when started with `argocd` */
  argocdUrl: string | null;
  /** its controller, for tests: apps, refresh(name), idle(), notifications sent */
  argocd: Argocd['controller'] | null;
  requests: RequestLogEntry[];
  /** requests the rate limit answered with 429 so far (injected 429 faults not included) */
  throttled(): number;
  /** faults injected so far, by kind */
  faults(): Record<string, number>;
  /** change the fault injection while running (null: none) */
  setFaults(spec: string | FaultSpec | null): void;
  /** waits until every webhook delivery has finished */
  idle(): Promise<void>;
  /**
   * Waits until the sandbox and the given hook receivers are quiet together: deliveries
   * done, receivers idle, and no new delivery caused by their work.
   */
  settle(...receivers: Array<{ idle(): Promise<void> }>): Promise<void>;
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopback(host) && !opts.allowNonLoopback) {
    throw new Error(
      `refusing to bind ${host}: the sandbox binds loopback unless --host names another address`,
    );
  }
  const temporary = !opts.dataDir;
  const dataDir = opts.dataDir ? resolve(opts.dataDir) : await mkdtemp(join(tmpdir(), 'gitops-bot-sandbox-'));
  await mkdir(join(dataDir, 'repos'), { recursive: true });
  const store = await Store.load(join(dataDir, 'state.json'));
  const webhooks = new Webhooks(store);
  const core = new SandboxCore(store, dataDir, webhooks);
  const entities = new Entities(core);
  webhooks.presenters = {
    user: (u) => entities.user(u),
    hookProject: (p) => entities.hookProject(p),
    hookMergeRequest: (p, mr) => entities.hookMergeRequest(p, mr),
    hookCommit: (p, c) => entities.hookCommit(p, c),
  };
  if (store.data.users.length === 0) await seed(core, opts.seed ?? 'story');

  const router = new Router();
  for (const register of ROUTES) register(router, { core, entities });

  const requests: RequestLogEntry[] = [];
  let injector: FaultInjector | null = null;
  const setFaults = (spec: string | FaultSpec | null | undefined) => {
    injector = spec ? new FaultInjector(typeof spec === 'string' ? parseFaults(spec) : spec) : null;
  };
  setFaults(opts.faults);
  let throttled = 0;
  const api = restApi({
    core,
    router,
    rateLimit: typeof opts.rateLimit === 'number' ? { limit: opts.rateLimit } : opts.rateLimit,
    onThrottled: () => {
      throttled++;
    },
    faults: () => injector,
  });
  const admin = sandboxAdmin({
    core,
    entities,
    webhooks,
    requests,
    faultCounts: () => injector?.counts ?? {},
  });

  const server: Server = createServer((req, res) => {
    const started = performance.now();
    let who: string | null = null;
    res.on('finish', () => {
      // The sandbox's own endpoints are not what a client did to "GitLab": not logged.
      if ((req.url ?? '').startsWith('/-/sandbox/')) return;
      if (requests.length >= 200_000) requests.splice(0, 100_000);
      requests.push({
        method: req.method ?? 'GET',
        path: (req.url ?? '/').split('?')[0],
        status: res.statusCode,
        ms: Math.round((performance.now() - started) * 100) / 100,
        user: who,
        at: new Date().toISOString(),
      });
    });
    handle(req, res, (u) => {
      who = u;
    }).catch((e: Error) => {
      process.stderr.write(`sandbox: ${req.method} ${req.url}: ${e.stack ?? e.message}\n`);
      if (!res.headersSent) sendJson(res, 500, { message: '500 Internal Server Error' });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse, setUser: (u: string | null) => void) {
    const url = new URL(req.url ?? '/', core.baseUrl);
    if (url.pathname.startsWith('/api/v4/')) return api(req, res, url, setUser);
    if (url.pathname.startsWith('/-/sandbox/')) return admin(req, res, url);
    if (url.pathname === '/jwt/auth' && opts.registryTokens)
      return handleJwtAuth(core, opts.registryTokens, req, res, url, setUser);
    if (isGitRequest(url.pathname)) {
      await handleGit(core, req, res, url, setUser);
      return;
    }
    sendJson(res, 404, { error: '404 Not Found' });
  }

  core.baseUrl = await listenUrl(server, host, opts.port);
  webhooks.baseUrl = core.baseUrl;
  const argocd = opts.argocd ? await startArgocd(core, host, opts.argocd === true ? {} : opts.argocd) : null;

  let closed = false;
  return {
    url: core.baseUrl,
    apiUrl: `${core.baseUrl}/api/v4`,
    dataDir,
    users: store.data.users.map((u) => ({ username: u.username, token: u.token, admin: u.isAdmin })),
    core,
    webhooks,
    argocdUrl: argocd?.url ?? null,
    argocd: argocd?.controller ?? null,
    requests,
    throttled: () => throttled,
    faults: () => ({ ...(injector?.counts ?? {}) }),
    setFaults,
    idle: () => webhooks.idle(),
    async settle(...receivers) {
      for (let quiet = 0; quiet < 2; ) {
        const before = webhooks.deliveries.length;
        await webhooks.idle();
        for (const r of receivers) await r.idle();
        await new Promise((r) => setTimeout(r, 30));
        quiet = webhooks.deliveries.length === before ? quiet + 1 : 0;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await argocd?.close();
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
      await webhooks.idle();
      await store.stop();
      core.close();
      // git processes that were still finishing may add files while the folder goes: retry.
      if (temporary) await rm(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    },
  };
}
