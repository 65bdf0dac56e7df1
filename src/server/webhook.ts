// `gitops-bot serve`: a thin webhook receiver. It checks the secret in constant time,
// answers 202 at once, drops duplicate deliveries, and hands each event to a queue per
// merge request so one MR's events are handled in order. All state lives in GitLab (the
// commit status, the sticky comments, the branches), so replicas can run side by side.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { afterMerge, afterPush, type GateContext, gate } from '../gate/gate.js';
import { log } from '../log.js';

export const MAX_BODY = 1024 * 1024;
const DEDUPE_SIZE = 10_000;

export interface ServeOptions {
  ctx: GateContext;
  secret: string;
  /** projects (path or id) this bot manages; events for others are acknowledged and ignored */
  projects?: string[];
  maxBody?: number;
  /** events handled at once across all MRs (each MR's events stay in order) */
  concurrency?: number;
}

export interface WebhookServer {
  server: Server;
  registry: Registry;
  /** resolves when every queued event has been handled */
  idle(): Promise<void>;
  listen(port: number, host: string): Promise<string>;
  close(): Promise<void>;
}

interface Job {
  key: string;
  run: () => Promise<unknown>;
}

function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
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
  const maxBody = opts.maxBody ?? MAX_BODY;
  const managed = opts.projects?.length ? new Set(opts.projects.map((p) => p.toLowerCase())) : null;
  const seen = new Map<string, true>();
  const queues = new Map<string, Promise<void>>();
  let inFlight = 0;
  let drained: Array<() => void> = [];
  let closing = false;

  function remember(key: string): boolean {
    if (seen.has(key)) return false;
    seen.set(key, true);
    if (seen.size > DEDUPE_SIZE) seen.delete(seen.keys().next().value as string);
    return true;
  }

  // A global limit keeps memory and the event loop free for acknowledging deliveries,
  // however many merge requests have work queued.
  const limit = opts.concurrency ?? Number(process.env.GITOPS_BOT_CONCURRENCY ?? 4);
  let running = 0;
  const waiting: Array<() => void> = [];
  const slot = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (running >= limit) await new Promise<void>((r) => waiting.push(r));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };

  function enqueue(job: Job): void {
    inFlight++;
    const prev = queues.get(job.key) ?? Promise.resolve();
    const next = prev
      .then(() => slot(job.run))
      .then(
        () => undefined,
        (e: Error) => {
          failures.inc();
          log.error({ key: job.key, err: e.message }, 'event handling failed');
        },
      )
      .finally(() => {
        inFlight--;
        if (queues.get(job.key) === next) queues.delete(job.key);
        if (inFlight === 0) {
          for (const d of drained.splice(0)) d();
        }
      });
    queues.set(job.key, next);
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
      const key = `${project}!${iid}`;
      if (a.action === 'merge') enqueue({ key, run: () => afterMerge(ctx, project, iid) });
      else if (a.action === 'close') return 'ignored';
      else {
        enqueue({
          key,
          run: async () =>
            verdicts.inc({ state: (await gate(ctx, project, iid, { merge: true })).verdict.state }),
        });
      }
      return 'queued';
    }
    if (event === 'Note Hook' && kind === 'note') {
      const note = String(body.object_attributes?.note ?? '').trim();
      const iid = Number(body.merge_request?.iid);
      if (note !== '/gitops-bot recheck' || !Number.isInteger(iid)) return 'ignored';
      const key = `${project}!${iid}`;
      enqueue({
        key,
        run: async () =>
          verdicts.inc({ state: (await gate(ctx, project, iid, { merge: true })).verdict.state }),
      });
      return 'queued';
    }
    if (event === 'Push Hook' && kind === 'push') {
      const ref = String(body.ref ?? '');
      if (!ref.startsWith('refs/heads/')) return 'ignored';
      const branch = ref.slice('refs/heads/'.length);
      const after = String(body.after ?? '');
      enqueue({
        key: `${project}:push:${branch}`,
        run: async () => {
          await afterPush(ctx, project, branch, after);
          // The policy may have changed: evaluate the open MRs again.
          for (const iid of await ctx.gitlab.openMergeRequests(project)) {
            enqueue({ key: `${project}!${iid}`, run: () => gate(ctx, project, iid, { merge: true }) });
          }
        },
      });
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
    if (typeof token !== 'string' || !safeEqual(token, opts.secret)) {
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
    // biome-ignore lint/suspicious/noExplicitAny: webhook JSON, read field by field
    let body: Record<string, any>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
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
      await new Promise<void>((r) => server.close(() => r()));
      await idle();
      drained = [];
    },
  };
}
