// `gitops-bot serve`: a thin webhook receiver. It checks the secret in constant time,
// answers 202 at once, drops duplicate deliveries, and hands each event to a queue per
// merge request so one MR's events are handled in order. All state lives in GitLab (the
// commit status, the sticky comments, the branches), so replicas can run side by side.
//
// Jobs are watched here, on the thread that answers, whether they run on the worker thread
// or in-process: a job that fails or runs past the job timeout is counted
// (gitops_bot_job_failures_total{reason}) and alerted (an error log line naming the project
// and MR, and why); /healthz is 503 while a job runs past the timeout or the worker is down.
// A worker that dies (out of memory, a crash) is restarted and the jobs it held count as
// failed; one still running a job at twice the timeout is restarted too.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Worker } from 'node:worker_threads';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { GateContext } from '../gate/gate.js';
import { GitLabGate } from '../gitlab/client.js';
import { log } from '../log.js';
import { createJobRunner, describeJob, type JobSpec } from './jobs.js';
import { type ManagedProject, ProjectDirectory, resolveProjects } from './projects.js';
import { signatureProblem, signingKey } from './signature.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker.js';

export const MAX_BODY = 1024 * 1024;
const DEDUPE_SIZE = 10_000;
export const DEFAULT_JOB_TIMEOUT_MS = 120_000;
/** The worker's old generation, MB. */
export const DEFAULT_WORKER_HEAP_MB = 96;
export type FailureReason = 'error' | 'timeout' | 'worker';

export interface WorkerOptions {
  /** the worker thread's old-generation heap, MB (default 96): past it the worker dies and is restarted */
  heapMb?: number;
  /** wait before the first restart of a dead worker, ms (default 1 s; doubles while it keeps dying, to 30 s) */
  restartDelayMs?: number;
}

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

// Set by the bundler (scripts/bundle.mjs): the bundle is one file, which also runs the worker.
declare const GITOPS_BOT_BUNDLED: boolean | undefined;

function workerScript(): URL {
  const bundled = typeof GITOPS_BOT_BUNDLED !== 'undefined' && GITOPS_BOT_BUNDLED;
  return bundled ? new URL(import.meta.url) : new URL('./worker.js', import.meta.url);
}

const CALLBACKS = new Set(['onAlert', 'onDeployRefMove']);

/** What of `ctx` crosses to the worker thread; throws, naming it, on what cannot. */
function workerInit(ctx: GateContext): Pick<WorkerInit, 'gitlab' | 'reportRetries' | 'ctx'> {
  if (Object.getPrototypeOf(ctx.gitlab) !== GitLabGate.prototype)
    throw new Error(
      'serve: ctx.gitlab is not a plain GitLabGate; the worker thread makes its own from ctx.gitlab.opts (use worker: false to run jobs with this one)',
    );
  const { onRetry, ...gitlab } = ctx.gitlab.opts;
  const plain: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ctx)) {
    if (k === 'gitlab' || CALLBACKS.has(k) || v === undefined) continue;
    if (typeof v === 'function')
      throw new Error(
        `serve: ctx.${k} is a function and cannot cross to the worker thread (use worker: false to run jobs in-process with it)`,
      );
    plain[k] = v;
  }
  for (const [k, v] of Object.entries(gitlab))
    if (typeof v === 'function')
      throw new Error(`serve: ctx.gitlab.opts.${k} cannot cross to the worker thread`);
  try {
    structuredClone({ plain, gitlab });
  } catch (e) {
    throw new Error(`serve: the context cannot cross to the worker thread: ${(e as Error).message}`);
  }
  return { gitlab, reportRetries: typeof onRetry === 'function', ctx: plain };
}

interface Tracked {
  job: JobSpec;
  /** the worker generation holding it (0 in-process), null while it waits for a worker */
  gen: number | null;
  startedAt: number | null;
  timedOut: boolean;
  timer?: NodeJS.Timeout;
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
    help: 'Events whose handling failed: error, timeout (ran past the job timeout), worker (the worker thread died)',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const reason of ['error', 'timeout', 'worker']) failures.inc({ reason }, 0);
  const restarts = new Counter({
    name: 'gitops_bot_worker_restarts_total',
    help: 'Times the worker thread died (or was stuck) and was started again',
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
  const jobTimeoutMs = opts.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
  if (!(jobTimeoutMs > 0)) throw new Error(`serve: job timeout ${jobTimeoutMs} ms is not positive`);
  const workerOpts: WorkerOptions | null = opts.worker ? (opts.worker === true ? {} : opts.worker) : null;
  if (workerOpts) {
    const unknown = Object.keys(workerOpts).filter((k) => k !== 'heapMb' && k !== 'restartDelayMs');
    if (unknown.length)
      throw new Error(
        `serve: unknown worker option ${unknown.join(', ')} (known: heapMb, restartDelayMs; the GitLab client and bot user come from ctx)`,
      );
    if (workerOpts.heapMb !== undefined && !(workerOpts.heapMb >= 16))
      throw new Error(`serve: worker heap ${workerOpts.heapMb} MB is under 16 MB`);
  }
  // Deliveries are matched by numeric project id; jobs act on the path GitLab gave for it.
  let managed: Map<number, ManagedProject> | null = null;
  const seen = new Map<string, true>();
  let inFlight = 0;
  let drained: Array<() => void> = [];
  let closing = false;
  let ready = false;

  function remember(key: string): boolean {
    if (seen.has(key)) return false;
    seen.set(key, true);
    if (seen.size > DEDUPE_SIZE) seen.delete(seen.keys().next().value as string);
    return true;
  }

  // --- watching jobs: the same for the worker thread and in-process ---
  const jobs = new Map<string, Tracked>();
  let seq = 0;
  const fields = (job: JobSpec) => ({
    job: job.type,
    project: job.project,
    ...(job.type === 'gate' || job.type === 'merged' ? { mr: job.iid } : {}),
    ...(job.type === 'push' ? { branch: job.branch, sha: job.after } : {}),
    ...(job.type === 'accept' ? { sha: job.sha } : {}),
  });

  function track(id: string, job: JobSpec, gen: number | null): void {
    inFlight++;
    jobs.set(id, { job, gen, startedAt: null, timedOut: false });
  }
  function untrack(id: string): void {
    const t = jobs.get(id);
    if (!t) return;
    clearTimeout(t.timer);
    jobs.delete(id);
    inFlight--;
    if (inFlight === 0) for (const d of drained.splice(0)) d();
  }
  function failed(t: Tracked, reason: FailureReason, why: string): void {
    failures.inc({ reason });
    log.error(
      { alert: 'job failed', reason, ...fields(t.job), error: why },
      `job failed (${reason}): ${describeJob(t.job)}: ${why}`,
    );
  }
  function started(id: string): void {
    const t = jobs.get(id);
    if (!t) return;
    t.startedAt = Date.now();
    t.timer = setTimeout(() => {
      t.timedOut = true;
      failed(t, 'timeout', `still running after the ${jobTimeoutMs / 1000} s job timeout`);
      // A worker still busy with it at twice the timeout is stuck (a blocked event loop
      // cannot even notice): start a new one.
      if (workerOpts) {
        t.timer = setTimeout(() => {
          if (jobs.get(id) === t && t.gen === generation && worker)
            restartWorker(
              `${describeJob(t.job)} still running at twice the ${jobTimeoutMs / 1000} s job timeout`,
            );
        }, jobTimeoutMs);
        t.timer.unref();
      }
    }, jobTimeoutMs);
    t.timer.unref();
  }
  function ended(id: string, error?: string): void {
    const t = jobs.get(id);
    if (!t) return;
    if (t.timedOut) {
      const s = ((Date.now() - (t.startedAt ?? Date.now())) / 1000).toFixed(1);
      log.warn(
        { ...fields(t.job), seconds: Number(s), ...(error ? { error } : {}) },
        `${describeJob(t.job)} ended ${error ? 'in failure ' : ''}after ${s} s, past its timeout`,
      );
    } else if (error !== undefined) failed(t, 'error', error);
    else log.debug({ ...fields(t.job) }, 'job done');
    untrack(id);
  }

  // A global limit keeps memory bounded however many merge requests have work queued.
  const concurrency = opts.concurrency ?? 4;
  let dispatch: (job: JobSpec) => void;
  let worker: Worker | null = null;
  let workerReady = false;
  let generation = 0;
  let down: { reason: string; restartAt: number } | null = null;
  let restartTimer: NodeJS.Timeout | null = null;
  let terminating = false;
  let killReason: string | null = null;
  let crashes = 0;
  let startedAt = 0;
  const pending: string[] = [];
  let firstStart: { resolve: () => void; reject: (e: Error) => void } | null = null;
  const firstReady = workerOpts
    ? new Promise<void>((resolve, reject) => {
        firstStart = { resolve, reject };
      })
    : Promise.resolve();
  firstReady.catch(() => {});

  function onMessage(gen: number, m: FromWorker): void {
    if (gen !== generation) return;
    if (m.type === 'ready') {
      // Serving, the listener keeps the process alive, not the worker (see close()); until
      // it is ready, the worker does.
      if (!closing) worker?.unref();
      workerReady = true;
      down = null;
      firstStart?.resolve();
      firstStart = null;
    } else if (m.type === 'added') track(m.id, m.job, gen);
    else if (m.type === 'started') started(m.id);
    else if (m.type === 'ended') ended(m.id, m.error);
    else if (m.type === 'verdict') verdicts.inc({ state: m.state });
    else if (m.type === 'alert') ctx.onAlert?.(m.kind, m.project, m.detail);
    else if (m.type === 'move') ctx.onDeployRefMove?.(m.project, m.ref, m.sha);
    else if (m.type === 'retry') {
      opts.ctx.gitlab.retries++;
      opts.ctx.gitlab.opts.onRetry?.(m.what, m.info);
    }
  }

  function startWorker(init: Pick<WorkerInit, 'gitlab' | 'reportRetries' | 'ctx'>): void {
    const gen = ++generation;
    const data: WorkerInit = {
      ...init,
      concurrency,
      logLevel: log.level,
      generation: gen,
      gitopsBotWorker: true,
    };
    const w = new Worker(workerScript(), {
      workerData: data,
      // Small generations keep the worker's memory down; its collections no longer delay
      // acknowledgements, which happen on this thread. A job that needs more than the old
      // generation kills the worker, which is then restarted (its jobs count as failed).
      resourceLimits: {
        maxYoungGenerationSizeMb: 4,
        maxOldGenerationSizeMb: workerOpts?.heapMb ?? DEFAULT_WORKER_HEAP_MB,
      },
    });
    let lastError: (Error & { code?: string }) | null = null;
    w.on('message', (m: FromWorker) => onMessage(gen, m));
    w.on('error', (e) => {
      lastError = e;
    });
    w.on('exit', (code) => onExit(gen, lastError, code, init));
    worker = w;
    workerReady = false;
    startedAt = Date.now();
    for (const id of pending.splice(0)) {
      const t = jobs.get(id);
      if (!t) continue;
      t.gen = gen;
      w.postMessage({ id, job: t.job } satisfies ToWorker);
    }
  }

  function restartWorker(why: string): void {
    killReason = why;
    void worker?.terminate();
  }

  function onExit(
    gen: number,
    error: (Error & { code?: string }) | null,
    code: number,
    init: Pick<WorkerInit, 'gitlab' | 'reportRetries' | 'ctx'>,
  ): void {
    if (gen !== generation) return;
    worker = null;
    workerReady = false;
    if (terminating) return;
    const why =
      killReason ??
      (error?.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? `out of memory (heap limit ${workerOpts?.heapMb ?? DEFAULT_WORKER_HEAP_MB} MB)`
        : error
          ? `crashed: ${error.message}`
          : `exited with code ${code}`);
    killReason = null;
    restarts.inc();
    let lost = 0;
    for (const [id, t] of [...jobs]) {
      if (t.gen !== gen) continue;
      lost++;
      if (!t.timedOut) failed(t, 'worker', `the worker thread ${why}`);
      untrack(id);
    }
    crashes = Date.now() - startedAt < 60_000 ? crashes + 1 : 1;
    const base = workerOpts?.restartDelayMs ?? 1000;
    const delay = closing ? 0 : Math.min(30_000, base * 2 ** (crashes - 1));
    down = { reason: `the worker thread ${why}`, restartAt: Date.now() + delay };
    log.error(
      { alert: 'worker died', reason: why, jobsLost: lost, restartInMs: delay },
      `worker thread ${why}; ${lost} job(s) failed with it; restarting in ${(delay / 1000).toFixed(1)} s`,
    );
    if (firstStart) {
      // it never came up: that is a start-up failure, not something to retry
      firstStart.reject(new Error(`the worker thread did not start: ${why}`));
      firstStart = null;
      return;
    }
    restartTimer = setTimeout(() => {
      restartTimer = null;
      startWorker(init);
    }, delay);
  }

  if (workerOpts) {
    const init = workerInit(opts.ctx);
    startWorker(init);
    dispatch = (job) => {
      const id = `m${++seq}`;
      if (worker) {
        track(id, job, generation);
        worker.postMessage({ id, job } satisfies ToWorker);
      } else {
        track(id, job, null);
        pending.push(id);
      }
    };
  } else {
    const runner = createJobRunner(ctx, concurrency, {
      added: (id, job) => track(id, job, 0),
      started,
      ended,
      verdict: (state) => verdicts.inc({ state }),
    });
    dispatch = (job) => {
      const id = `m${++seq}`;
      track(id, job, 0);
      runner.enqueue(job, id);
    };
  }

  function health(): Health {
    if (closing) return { ok: false, status: 'shutting down', inFlight };
    if (!ready) return { ok: false, status: 'starting', inFlight };
    if (workerOpts && (!worker || !workerReady)) {
      const reason = down
        ? `${down.reason}; restarting${down.restartAt > Date.now() ? ` in ${((down.restartAt - Date.now()) / 1000).toFixed(1)} s` : ''}`
        : 'the worker thread is starting';
      return { ok: false, status: 'worker down', reason, inFlight };
    }
    const now = Date.now();
    for (const t of jobs.values()) {
      if (t.startedAt !== null && now - t.startedAt > jobTimeoutMs) {
        return {
          ok: false,
          status: 'stuck',
          reason: `${describeJob(t.job)} has been running for ${((now - t.startedAt) / 1000).toFixed(1)} s (job timeout ${jobTimeoutMs / 1000} s)`,
          inFlight,
        };
      }
    }
    return { ok: true, status: 'ok', inFlight };
  }

  const NOTE_ACCEPT = /^\/gitops-bot accept ([0-9a-f]{7,40})$/i;
  type Work = JobSpec extends infer J ? (J extends JobSpec ? Omit<J, 'project'> : never) : never;

  /** Turns a payload into queued work; returns the outcome label. */
  // biome-ignore lint/suspicious/noExplicitAny: webhook JSON, read field by field
  function route(event: string, body: Record<string, any>): string {
    const kind = body.object_kind;
    let work: Work;
    if (event === 'Merge Request Hook' && kind === 'merge_request') {
      const a = body.object_attributes ?? {};
      const iid = Number(a.iid);
      if (!Number.isInteger(iid)) return 'invalid';
      if (a.action === 'close') return 'ignored';
      work = a.action === 'merge' ? { type: 'merged', iid } : { type: 'gate', iid };
    } else if (event === 'Note Hook' && kind === 'note') {
      const a = body.object_attributes ?? {};
      const note = String(a.note ?? '').trim();
      const iid = Number(body.merge_request?.iid);
      const accept = NOTE_ACCEPT.exec(note);
      if (note === '/gitops-bot recheck' && Number.isInteger(iid)) work = { type: 'gate', iid };
      else if (accept && (Number.isInteger(iid) || a.noteable_type === 'Commit'))
        work = { type: 'accept', sha: accept[1].toLowerCase() };
      else return 'ignored';
    } else if (event === 'Push Hook' && kind === 'push') {
      const ref = String(body.ref ?? '');
      if (!ref.startsWith('refs/heads/')) return 'ignored';
      work = { type: 'push', branch: ref.slice('refs/heads/'.length), after: String(body.after ?? '') };
    } else return 'ignored';
    // The project: by numeric id only. A payload's path is the sender's word, never acted on.
    const raw = body.project?.id ?? body.project_id;
    const id = typeof raw === 'number' || (typeof raw === 'string' && /^\d+$/.test(raw)) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(id) || id <= 0) return managed || opts.projects ? 'unmanaged' : 'ignored';
    let project: string;
    if (opts.projects) {
      const m = managed?.get(id);
      if (!m) return 'unmanaged';
      project = m.path;
    } else project = String(id);
    dispatch({ ...work, project } as JobSpec);
    return 'queued';
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
    if (!ready) return reply(503, { message: 'starting: the managed projects are not resolved yet' });
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

  const idle = () =>
    inFlight === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          drained.push(resolve);
        });

  const setManaged = (list: ManagedProject[]) => {
    managed = new Map(list.map((p) => [p.id, p]));
    ready = true;
  };
  if (!opts.projects) ready = true;
  else if (opts.projects.every((p) => typeof p !== 'string')) setManaged(opts.projects as ManagedProject[]);

  return {
    server,
    registry,
    idle,
    health,
    managed: () => (managed ? [...managed.values()] : null),
    async listen(port, host) {
      if (!ready && opts.projects)
        setManaged(await resolveProjects(new ProjectDirectory(opts.ctx.gitlab.opts), opts.projects));
      await firstReady;
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
      // The worker is unref'd while serving; once the listener is closed it would be the
      // only thing left, and Node would exit with its work unfinished.
      worker?.ref();
      // A dead worker is restarted now if work waits for it.
      if (restartTimer) {
        clearTimeout(restartTimer);
        restartTimer = null;
        if (pending.length) startWorker(workerInit(opts.ctx));
      }
      await new Promise<void>((r) => server.close(() => r()));
      await idle();
      drained = [];
      terminating = true;
      await worker?.terminate();
    },
  };
}
