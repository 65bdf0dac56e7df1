// `gitops-bot serve`: a thin webhook receiver. It checks the secret in constant time,
// answers 202 at once, drops duplicate deliveries, and hands each event to a queue per
// merge request so one MR's events are handled in order. All state lives in GitLab (the
// commit status, the sticky comments, the branches), so replicas can run side by side.
//
// The parts: route.ts (which work a delivery asks for, pure), sinks.ts (where jobs run:
// in-process or on a worker thread restarted when it dies), watch.ts (timeouts, failure
// counts and alerts, the same for both sinks), metrics.ts (what /metrics shows).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { log } from '../base/log.js';
import type { GateContext } from '../gate/gate.js';
import { type AgentKind, FeedbackInputError } from '../model/agent.js';
import { type ArgoPoller, startArgoPoller } from './argocd-poll.js';
import { type ServeMetrics, serveMetrics } from './metrics.js';
import { type ManagedProject, ProjectDirectory, resolveProjects } from './projects.js';
import { route, routeAgent } from './route.js';
import { signatureProblem, signingKey } from './signature.js';
import { checkWorkerOptions, inProcessSink, type JobSink, type WorkerOptions, workerSink } from './sinks.js';
import { createWatcher } from './watch.js';

export { DEFAULT_WORKER_HEAP_MB, type WorkerOptions } from './sinks.js';
export type { FailureReason } from './watch.js';

export const MAX_BODY = 1024 * 1024;
const DEDUPE_SIZE = 10_000;
export const DEFAULT_JOB_TIMEOUT_MS = 120_000;

export interface ServeOptions {
  ctx: GateContext;
  /** the hook's secret token (X-Gitlab-Token); at least one of secret and signingToken */
  secret?: string;
  /** the hook's signing token (`whsec_…`): deliveries must carry a valid webhook-signature */
  signingToken?: string;
  /**
   * projects this bot manages: paths or ids, resolved to id and canonical path through the
   * API by listen(), or already resolved. Deliveries are matched by `project.id` only and
   * jobs act on the resolved path; others are acknowledged and ignored (`unmanaged`).
   * Without it every project is served, by id, its path read from GitLab.
   */
  projects?: Array<string | ManagedProject>;
  maxBody?: number;
  /** events handled at once across all MRs (each MR's events stay in order) */
  concurrency?: number;
  /** a job running longer has failed (reason `timeout`), ms; default 120 s */
  jobTimeoutMs?: number;
  /**
   * run the jobs on a worker thread (serve does; tests may run them in-process). Its GitLab
   * client is made from ctx.gitlab's options; ctx's plain fields cross, onAlert,
   * onDeployRefMove and the client's onRetry are called here; any other function in ctx
   * (such as `now`) cannot cross and is refused.
   */
  worker?: boolean | WorkerOptions;
  /**
   * the shared secret of the in-cluster agents' webhooks (POST /argocd, /flux: header
   * X-Gitops-Bot-Token, or Flux's X-Signature HMAC); default: `secret`. Without either,
   * those endpoints answer 404.
   */
  agentSecret?: string;
  /** the polling fallback: read the policy's Argo CD applications from this Argo CD */
  argocd?: { url: string; token: string; pollMs?: number };
}

export interface Health {
  ok: boolean;
  status: 'ok' | 'starting' | 'shutting down' | 'worker down' | 'stuck';
  reason?: string;
  inFlight: number;
}

export interface WebhookServer {
  server: Server;
  registry: Registry;
  /** resolves when every queued event has been handled */
  idle(): Promise<void>;
  /** what /healthz answers */
  health(): Health;
  /** the managed projects, once listen() resolved them (null: every project is served) */
  managed(): ManagedProject[] | null;
  listen(port: number, host: string): Promise<string>;
  close(): Promise<void>;
}

function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

type Body = Record<string, unknown>;

/** Reads a delivery's body up to `maxBody`; past a hard cap it stops listening altogether. */
async function readBody(req: IncomingMessage, maxBody: number): Promise<Buffer | 'too big' | 'destroyed'> {
  // Over the limit: read and drop the rest (a reset mid-upload looks like an outage to
  // GitLab), but stop listening altogether past a hard cap.
  const chunks: Buffer[] = [];
  let size = 0;
  let tooBig = Number(req.headers['content-length'] ?? 0) > maxBody;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBody) tooBig = true;
    if (size > 64 * maxBody) {
      req.destroy();
      return 'destroyed';
    }
    if (!tooBig) chunks.push(chunk as Buffer);
  }
  return tooBig ? 'too big' : Buffer.concat(chunks);
}

function parseBody(raw: Buffer): Body | null {
  try {
    const body = JSON.parse(raw.toString('utf8'));
    return body && typeof body === 'object' && !Array.isArray(body) ? body : null;
  } catch {
    return null;
  }
}

interface Receiver {
  secret?: string;
  agentSecret?: string;
  /** queues an agent's report (a parsed body) */
  deliverAgent(kind: AgentKind, body: Body): string;
  key: ReturnType<typeof signingKey> | null;
  maxBody: number;
  metrics: ServeMetrics;
  /** why no delivery is taken now (503), or null */
  refusal(): string | null;
  /** whether this delivery id was seen already */
  duplicate(event: string, id: string): boolean;
  /** queues the work a delivery asks for; returns the outcome label */
  deliver(event: string, body: Body): string;
}

/** One delivery: authenticated, read within the limit, parsed, deduplicated, routed; 202 at once. */
async function receive(d: Receiver, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const reply = (status: number, body: object, event = 'unknown', result = String(status)) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
    d.metrics.deliveries.inc({ event, result });
    d.metrics.ack.observe((performance.now() - started) / 1000);
  };
  const refusal = d.refusal();
  if (refusal) return reply(503, { message: refusal });
  const token = req.headers['x-gitlab-token'];
  if (d.secret && (typeof token !== 'string' || !safeEqual(token, d.secret))) {
    req.resume();
    return reply(401, { message: 'invalid or missing X-Gitlab-Token' }, 'unknown', 'unauthorized');
  }
  const type = String(req.headers['content-type'] ?? '')
    .split(';')[0]
    .trim();
  if (type !== 'application/json') {
    req.resume();
    return reply(415, { message: 'expected application/json' });
  }
  const raw = await readBody(req, d.maxBody);
  if (raw === 'destroyed') return;
  if (raw === 'too big') return reply(413, { message: `body over ${d.maxBody} bytes` });
  if (d.key) {
    const h = req.headers;
    const problem = signatureProblem(
      d.key,
      {
        id: h['webhook-id'] as string | undefined,
        timestamp: h['webhook-timestamp'] as string | undefined,
        signature: h['webhook-signature'] as string | undefined,
      },
      raw,
    );
    if (problem) return reply(401, { message: problem }, 'unknown', 'bad signature');
  }
  const body = parseBody(raw);
  if (!body) return reply(400, { message: 'invalid JSON' });
  const event = String(req.headers['x-gitlab-event'] ?? '');
  const id = req.headers['idempotency-key'] ?? req.headers['x-gitlab-event-uuid'];
  if (typeof id === 'string' && id && d.duplicate(event, id)) {
    return reply(200, { status: 'duplicate' }, event, 'duplicate');
  }
  const result = d.deliver(event, body);
  reply(202, { status: result }, event || 'none', result);
}

const FLUX_SIGNATURE = /^(sha224|sha256|sha384|sha512)=([0-9a-f]+)$/i;

/** null when an agent's delivery carries the shared secret (or Flux's HMAC of the body with it). */
export function agentAuthProblem(
  kind: AgentKind,
  secret: string,
  headers: IncomingMessage['headers'],
  raw: Buffer,
): string | null {
  const token = headers['x-gitops-bot-token'];
  if (typeof token === 'string' && token)
    return safeEqual(token, secret) ? null : 'X-Gitops-Bot-Token does not match';
  const signature = headers['x-signature'];
  if (kind === 'flux' && typeof signature === 'string') {
    const m = FLUX_SIGNATURE.exec(signature.trim());
    if (!m) return 'X-Signature is not <algorithm>=<hex>';
    const expected = createHmac(m[1].toLowerCase(), secret).update(raw).digest();
    const given = Buffer.from(m[2], 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected)
      ? null
      : 'X-Signature does not match';
  }
  return kind === 'flux' ? 'missing X-Gitops-Bot-Token or X-Signature' : 'missing X-Gitops-Bot-Token';
}

/** POST /argocd, /flux: authenticated, read within the limit, parsed into a report; 202 at once. */
async function receiveAgent(
  d: Receiver,
  kind: AgentKind,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const started = performance.now();
  const reply = (status: number, body: object, result = String(status)) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
    d.metrics.deliveries.inc({ event: kind, result });
    d.metrics.ack.observe((performance.now() - started) / 1000);
  };
  const refusal = d.refusal();
  if (refusal) {
    req.resume();
    return reply(503, { message: refusal });
  }
  const raw = await readBody(req, d.maxBody);
  if (raw === 'destroyed') return;
  if (raw === 'too big') return reply(413, { message: `body over ${d.maxBody} bytes` });
  const problem = agentAuthProblem(kind, d.agentSecret!, req.headers, raw);
  if (problem) return reply(401, { message: problem }, 'unauthorized');
  const body = parseBody(raw);
  if (!body) return reply(400, { message: 'invalid JSON' });
  try {
    const result = d.deliverAgent(kind, body);
    reply(202, { status: result }, result);
  } catch (e) {
    if (!(e instanceof FeedbackInputError)) throw e;
    log.warn({ agent: kind, error: e.message }, `${kind} report refused`);
    reply(400, { message: e.message }, 'invalid');
  }
}

/** POST /webhook, POST /argocd, POST /flux, GET /healthz, GET /metrics. */
function httpServer(d: Receiver, health: () => Health): Server {
  const registry = d.metrics.registry;
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && path === '/webhook') {
      receive(d, req, res).catch((e: Error) => {
        log.error({ err: e.message }, 'webhook failed');
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'application/json' });
          res.end('{"message":"internal error"}');
        }
      });
      return;
    }
    if (req.method === 'POST' && (path === '/argocd' || path === '/flux') && d.agentSecret) {
      receiveAgent(d, path === '/argocd' ? 'argocd' : 'flux', req, res).catch((e: Error) => {
        log.error({ err: e.message }, `${path} failed`);
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'application/json' });
          res.end('{"message":"internal error"}');
        }
      });
      return;
    }
    if (req.method === 'GET' && path === '/healthz') {
      const { ok, ...h } = health();
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(h));
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      registry.metrics().then((text) => {
        res.writeHead(200, { 'Content-Type': registry.contentType });
        res.end(text);
      });
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"message":"not found"}');
  });
}

export function createWebhookServer(opts: ServeOptions): WebhookServer {
  const metrics = serveMetrics();
  const { registry } = metrics;
  const ctx: GateContext = {
    ...opts.ctx,
    onAlert: (kind, project, detail) => {
      metrics.alerts.inc({ kind });
      opts.ctx.onAlert?.(kind, project, detail);
    },
    onDeployRefMove: (project, ref, sha) => {
      metrics.moves.inc();
      opts.ctx.onDeployRefMove?.(project, ref, sha);
    },
  };
  if (!opts.secret && !opts.signingToken) throw new Error('serve needs a webhook secret or a signing token');
  const key = opts.signingToken ? signingKey(opts.signingToken) : null;
  const maxBody = opts.maxBody ?? MAX_BODY;
  const jobTimeoutMs = opts.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
  if (!(jobTimeoutMs > 0)) throw new Error(`serve: job timeout ${jobTimeoutMs} ms is not positive`);
  const workerOpts: WorkerOptions | null = opts.worker ? (opts.worker === true ? {} : opts.worker) : null;
  if (workerOpts) checkWorkerOptions(workerOpts);
  // Deliveries are matched by numeric project id; jobs act on the path GitLab gave for it.
  let managed: Map<number, ManagedProject> | null = null;
  const seen = new Map<string, true>();
  let closing = false;
  let ready = false;
  const remember = (key: string): boolean => {
    if (seen.has(key)) return false;
    seen.set(key, true);
    if (seen.size > DEDUPE_SIZE) seen.delete(seen.keys().next().value as string);
    return true;
  };

  let sink: JobSink | null = null;
  const watcher = createWatcher({ jobTimeoutMs, metrics, onStuck: (gen, why) => sink?.stuck(gen, why) });
  // A global limit keeps memory bounded however many merge requests have work queued.
  // Freeze windows start and end with no event: each managed project's timer is set when
  // serve starts and again when a dead worker comes back (its timers died with it). Without
  // --project, a project is timed from its first job.
  const scheduleManaged = () => {
    if (opts.projects && managed)
      for (const p of managed.values()) {
        sink?.dispatch({ type: 'schedule', project: p.path });
        // deploy_timeout timers live in the runner: a start (or a restarted worker) reads
        // the deployments still running from GitLab and sets them again
        sink?.dispatch({ type: 'deploy-resume', project: p.path });
        // so do the chains' timers (a soak under way): decided again from GitLab's facts
        sink?.dispatch({ type: 'chain', project: p.path });
      }
  };
  const deps = {
    ctx,
    callerCtx: opts.ctx,
    concurrency: opts.concurrency ?? 4,
    watcher,
    metrics,
    restarted: scheduleManaged,
  };
  sink = workerOpts ? workerSink(deps, workerOpts) : inProcessSink(deps);
  const jobs = sink;

  function health(): Health {
    const inFlight = watcher.inFlight();
    if (closing) return { ok: false, status: 'shutting down', inFlight };
    if (!ready) return { ok: false, status: 'starting', inFlight };
    const down = jobs.down();
    if (down) return { ok: false, status: 'worker down', reason: down, inFlight };
    const stuck = watcher.stuck();
    if (stuck) return { ok: false, status: 'stuck', reason: stuck, inFlight };
    return { ok: true, status: 'ok', inFlight };
  }

  const agentSecret = opts.agentSecret ?? opts.secret;
  const managedOrNull = () => (opts.projects ? (managed ?? new Map<number, ManagedProject>()) : null);
  const deliverAgent = (kind: AgentKind, body: Body): string => {
    const routed = routeAgent(kind, body, managedOrNull(), opts.ctx.gitlab.webUrl);
    if (routed.result === 'queued') for (const job of routed.jobs) jobs.dispatch(job);
    return routed.result;
  };
  let poller: ArgoPoller | null = null;
  const server = httpServer(
    {
      secret: opts.secret,
      agentSecret,
      deliverAgent,
      key,
      maxBody,
      metrics,
      refusal: () =>
        closing ? 'shutting down' : ready ? null : 'starting: the managed projects are not resolved yet',
      duplicate: (event, id) => !remember(`${event}:${id}`),
      deliver(event, body) {
        const routed = route(event, body, opts.projects ? (managed ?? new Map()) : null);
        if (routed.result === 'queued') jobs.dispatch(routed.job);
        return routed.result;
      },
    },
    health,
  );

  const setManaged = (list: ManagedProject[]) => {
    managed = new Map(list.map((p) => [p.id, p]));
    ready = true;
  };
  if (!opts.projects) ready = true;
  else if (opts.projects.every((p) => typeof p !== 'string')) setManaged(opts.projects as ManagedProject[]);

  return {
    server,
    registry,
    idle: () => watcher.idle(),
    health,
    managed: () => (managed ? [...managed.values()] : null),
    async listen(port, host) {
      if (!ready && opts.projects)
        setManaged(await resolveProjects(new ProjectDirectory(opts.ctx.gitlab.opts), opts.projects));
      await jobs.ready;
      scheduleManaged();
      if (opts.argocd)
        poller = startArgoPoller({
          ...opts.argocd,
          ctx: opts.ctx,
          projects: () => (managed ? [...managed.values()].map((p) => p.path) : []),
          deliver: (app) => deliverAgent('argocd', { application: app }),
        });
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const addr = server.address() as { port: number };
          resolve(`http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`);
        });
      });
    },
    async close() {
      // Graceful: stop taking deliveries, finish the work in flight.
      closing = true;
      poller?.stop();
      jobs.closing();
      await new Promise<void>((r) => server.close(() => r()));
      await watcher.idle();
      watcher.forgetWaiters();
      await jobs.close();
    },
  };
}
