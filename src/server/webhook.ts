// `gitops-bot serve`: a thin webhook receiver. It checks the secret in constant time,
// answers 202 at once, drops duplicate deliveries, and hands each event to a queue per
// merge request so one MR's events are handled in order. All state lives in GitLab (the
// commit status, the sticky comments, the branches), so replicas can run side by side.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Worker } from 'node:worker_threads';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { GateContext } from '../gate/gate.js';
import { log } from '../log.js';
import { createJobRunner, type JobSpec } from './jobs.js';
import { signatureProblem, signingKey } from './signature.js';

export const MAX_BODY = 1024 * 1024;
const DEDUPE_SIZE = 10_000;

export interface ServeOptions {
  ctx: GateContext;
  /** the hook's secret token (X-Gitlab-Token); at least one of secret and signingToken */
  secret?: string;
  /** the hook's signing token (`whsec_…`): deliveries must carry a valid webhook-signature */
  signingToken?: string;
  /** projects (path or id) this bot manages; events for others are acknowledged and ignored */
  projects?: string[];
  maxBody?: number;
  /** events handled at once across all MRs (each MR's events stay in order) */
  concurrency?: number;
  /** run the jobs on a worker thread (serve does; tests may run them in-process) */
  worker?: { url: string; token: string; botUserId: number };
}

export interface WebhookServer {
  server: Server;
  registry: Registry;
  /** resolves when every queued event has been handled */
  idle(): Promise<void>;
  listen(port: number, host: string): Promise<string>;
  close(): Promise<void>;
}

function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

// Set by the bundler (scripts/bundle.mjs): the bundle is one file, which also runs the worker.
declare const GITOPS_BOT_BUNDLED: boolean | undefined;

function workerScript(): URL {
  const bundled = typeof GITOPS_BOT_BUNDLED !== 'undefined' && GITOPS_BOT_BUNDLED;
  return bundled ? new URL(import.meta.url) : new URL('./worker.js', import.meta.url);
}

export function createWebhookServer(opts: ServeOptions): WebhookServer {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gitops_bot_' });
  const deliveries = new Counter({
    name: 'gitops_bot_webhook_deliveries_total',
    help: 'Webhook deliveries by event and outcome',
    labelNames: ['event', 'result'],
    registers: [registry],
  });
  const alerts = new Counter({
    name: 'gitops_bot_bypass_alerts_total',
    help: 'Merges and pushes that bypassed the approval rules',
    labelNames: ['kind'],
    registers: [registry],
  });
  const moves = new Counter({
    name: 'gitops_bot_deploy_ref_moves_total',
    help: 'deploy_ref fast-forwards after a merge that passed the rules',
    registers: [registry],
  });
  const verdicts = new Counter({
    name: 'gitops_bot_gate_verdicts_total',
    help: 'Gate evaluations by state',
    labelNames: ['state'],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'gitops_bot_job_failures_total',
    help: 'Events whose handling failed',
    registers: [registry],
  });
  const ack = new Histogram({
    name: 'gitops_bot_webhook_ack_seconds',
    help: 'Time to acknowledge a delivery',
    buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    registers: [registry],
  });
  const ctx: GateContext = {
    ...opts.ctx,
    onAlert: (kind, project, detail) => {
      alerts.inc({ kind });
      opts.ctx.onAlert?.(kind, project, detail);
    },
    onDeployRefMove: (project, ref, sha) => {
      moves.inc();
      opts.ctx.onDeployRefMove?.(project, ref, sha);
    },
  };
  if (!opts.secret && !opts.signingToken) throw new Error('serve needs a webhook secret or a signing token');
  const key = opts.signingToken ? signingKey(opts.signingToken) : null;
  const maxBody = opts.maxBody ?? MAX_BODY;
  const managed = opts.projects?.length ? new Set(opts.projects.map((p) => p.toLowerCase())) : null;
  const seen = new Map<string, true>();
  let inFlight = 0;
  let drained: Array<() => void> = [];
  let closing = false;
  const settled = () => {
    inFlight--;
    if (inFlight === 0) for (const d of drained.splice(0)) d();
  };

  function remember(key: string): boolean {
    if (seen.has(key)) return false;
    seen.set(key, true);
    if (seen.size > DEDUPE_SIZE) seen.delete(seen.keys().next().value as string);
    return true;
  }

  // A global limit keeps memory bounded however many merge requests have work queued.
  const concurrency = opts.concurrency ?? 4;
  let dispatch: (job: JobSpec) => void;
  let worker: Worker | null = null;
  if (opts.worker) {
    worker = new Worker(workerScript(), {
      workerData: { ...opts.worker, concurrency, gitopsBotWorker: true },
      // Small generations keep the worker's memory down (96 MB old space still fits a 10 MB
      // manifest, 6.3x its size at peak); its collections no longer
      // delay acknowledgements, which happen on this thread.
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 96 },
    });
    worker.on('message', (m: { type: string; state?: string; kind?: string }) => {
      if (m.type === 'added') inFlight++;
      else if (m.type === 'done') settled();
      else if (m.type === 'verdict') verdicts.inc({ state: m.state });
      else if (m.type === 'failure') failures.inc();
      else if (m.type === 'alert') alerts.inc({ kind: m.kind });
      else if (m.type === 'move') moves.inc();
    });
    worker.on('error', (e) => log.error({ err: e.message }, 'worker failed'));
    worker.unref();
    dispatch = (job) => {
      inFlight++;
      worker!.postMessage(job);
    };
  } else {
    const runner = createJobRunner(ctx, concurrency, {
      added: () => {
        inFlight++;
      },
      done: settled,
      verdict: (state) => verdicts.inc({ state }),
      failure: () => failures.inc(),
    });
    dispatch = (job) => runner.enqueue(job);
  }

  /** Turns a payload into queued work; returns the outcome label. */
  // biome-ignore lint/suspicious/noExplicitAny: webhook JSON, read field by field
  function route(event: string, body: Record<string, any>): string {
    const project = String(body.project?.path_with_namespace ?? body.project?.id ?? body.project_id ?? '');
    const projectId = String(body.project?.id ?? body.project_id ?? '');
    if (!project) return 'ignored';
    if (managed && !managed.has(project.toLowerCase()) && !managed.has(projectId)) return 'unmanaged';
    const kind = body.object_kind;
    if (event === 'Merge Request Hook' && kind === 'merge_request') {
      const a = body.object_attributes ?? {};
      const iid = Number(a.iid);
      if (!Number.isInteger(iid)) return 'invalid';
      if (a.action === 'close') return 'ignored';
      dispatch(a.action === 'merge' ? { type: 'merged', project, iid } : { type: 'gate', project, iid });
      return 'queued';
    }
    if (event === 'Note Hook' && kind === 'note') {
      const note = String(body.object_attributes?.note ?? '').trim();
      const iid = Number(body.merge_request?.iid);
      if (note !== '/gitops-bot recheck' || !Number.isInteger(iid)) return 'ignored';
      dispatch({ type: 'gate', project, iid });
      return 'queued';
    }
    if (event === 'Push Hook' && kind === 'push') {
      const ref = String(body.ref ?? '');
      if (!ref.startsWith('refs/heads/')) return 'ignored';
      const branch = ref.slice('refs/heads/'.length);
      dispatch({ type: 'push', project, branch, after: String(body.after ?? '') });
      return 'queued';
    }
    return 'ignored';
  }

  async function webhook(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const reply = (status: number, body: object, event = 'unknown', result = String(status)) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
      deliveries.inc({ event, result });
      ack.observe((performance.now() - started) / 1000);
    };
    if (closing) return reply(503, { message: 'shutting down' });
    const token = req.headers['x-gitlab-token'];
    if (opts.secret && (typeof token !== 'string' || !safeEqual(token, opts.secret))) {
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
        return;
      }
      if (!tooBig) chunks.push(chunk as Buffer);
    }
    if (tooBig) return reply(413, { message: `body over ${maxBody} bytes` });
    const raw = Buffer.concat(chunks);
    if (key) {
      const h = req.headers;
      const problem = signatureProblem(
        key,
        {
          id: h['webhook-id'] as string | undefined,
          timestamp: h['webhook-timestamp'] as string | undefined,
          signature: h['webhook-signature'] as string | undefined,
        },
        raw,
      );
      if (problem) return reply(401, { message: problem }, 'unknown', 'bad signature');
    }
    // biome-ignore lint/suspicious/noExplicitAny: webhook JSON, read field by field
    let body: Record<string, any>;
    try {
      body = JSON.parse(raw.toString('utf8'));
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
    } catch {
      return reply(400, { message: 'invalid JSON' });
    }
    const event = String(req.headers['x-gitlab-event'] ?? '');
    const id = req.headers['idempotency-key'] ?? req.headers['x-gitlab-event-uuid'];
    if (typeof id === 'string' && id && !remember(`${event}:${id}`)) {
      return reply(200, { status: 'duplicate' }, event, 'duplicate');
    }
    const result = route(event, body);
    reply(202, { status: result }, event || 'none', result);
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && path === '/webhook') {
      webhook(req, res).catch((e: Error) => {
        log.error({ err: e.message }, 'webhook failed');
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'application/json' });
          res.end('{"message":"internal error"}');
        }
      });
      return;
    }
    if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(closing ? 503 : 200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ status: closing ? 'shutting down' : 'ok', inFlight }));
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

  const idle = () =>
    inFlight === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          drained.push(resolve);
        });

  return {
    server,
    registry,
    idle,
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const addr = server.address() as { port: number };
          resolve(`http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`);
        });
      }),
    async close() {
      // Graceful: stop taking deliveries, finish the work in flight.
      closing = true;
      // The worker is unref'd while serving; once the listener is closed it would be the
      // only thing left, and Node would exit with its work unfinished.
      worker?.ref();
      await new Promise<void>((r) => server.close(() => r()));
      await idle();
      drained = [];
      await worker?.terminate();
    },
  };
}
