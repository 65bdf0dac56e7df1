// Where jobs run: in-process, or on a worker thread that `serve` restarts when it dies.
// Both take jobs by `dispatch` and report the same typed events to the watcher and the
// metrics, so timeouts, failure counts and alerts do not depend on which one runs them.
import { Worker } from 'node:worker_threads';
import { log } from '../base/log.js';
import type { GateContext } from '../gate/gate.js';
import { GitLabGate } from '../gitlab/client.js';
import { createJobRunner, type JobSpec } from './jobs.js';
import type { ServeMetrics } from './metrics.js';
import type { Watcher } from './watch.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker.js';

/** The worker's old generation, MB. */
export const DEFAULT_WORKER_HEAP_MB = 96;

export interface WorkerOptions {
  /** the worker thread's old-generation heap, MB (default 96): past it the worker dies and is restarted */
  heapMb?: number;
  /** wait before the first restart of a dead worker, ms (default 1 s; doubles while it keeps dying, to 30 s) */
  restartDelayMs?: number;
}

export interface JobSink {
  dispatch(job: JobSpec): void;
  /** resolves once jobs can run (the worker is up); rejects when it never came up */
  ready: Promise<void>;
  /** why jobs cannot run right now (the worker is down or starting), or null */
  down(): string | null;
  /** a job of generation `gen` is stuck (`why`): the worker version restarts its thread */
  stuck(gen: number | null, why: string): void;
  /** keep the process alive until close() finishes (the worker is unref'd while serving) */
  closing(): void;
  close(): Promise<void>;
}

interface SinkDeps {
  /** the context, with serve's own onAlert and onDeployRefMove (they count) */
  ctx: GateContext;
  /** the caller's context: its client counts retries */
  callerCtx: GateContext;
  concurrency: number;
  watcher: Watcher;
  metrics: ServeMetrics;
  /** a restarted worker is up: its runner starts with no freeze timers (serve schedules them again) */
  restarted?: () => void;
}

let seq = 0;
const nextId = () => `m${++seq}`;

export function inProcessSink(d: SinkDeps): JobSink {
  const runner = createJobRunner(d.ctx, d.concurrency, {
    added: (id, job) => d.watcher.track(id, job, 0),
    started: (id) => d.watcher.started(id),
    ended: (id, error) => d.watcher.ended(id, error),
    verdict: (state) => d.metrics.verdicts.inc({ state }),
    deployFailure: (environment, reason) => d.metrics.deployFailures.inc({ environment, reason }),
  });
  return {
    dispatch(job) {
      const id = nextId();
      d.watcher.track(id, job, 0);
      runner.enqueue(job, id);
    },
    ready: Promise.resolve(),
    down: () => null,
    stuck: () => {},
    closing: () => {},
    close: async () => runner.stop(),
  };
}

// Set by the bundler (scripts/bundle.mjs): the bundle is one file, which also runs the worker.
declare const GITOPS_BOT_BUNDLED: boolean | undefined;

function workerScript(): URL {
  const bundled = typeof GITOPS_BOT_BUNDLED !== 'undefined' && GITOPS_BOT_BUNDLED;
  return bundled ? new URL(import.meta.url) : new URL('./worker.js', import.meta.url);
}

const CALLBACKS = new Set(['onAlert', 'onDeployRefMove']);
type Init = Pick<WorkerInit, 'gitlab' | 'reportRetries' | 'ctx'>;

/** What of `ctx` crosses to the worker thread; throws, naming it, on what cannot. */
export function workerInit(ctx: GateContext): Init {
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

export function checkWorkerOptions(o: WorkerOptions): void {
  const unknown = Object.keys(o).filter((k) => k !== 'heapMb' && k !== 'restartDelayMs');
  if (unknown.length)
    throw new Error(
      `serve: unknown worker option ${unknown.join(', ')} (known: heapMb, restartDelayMs; the GitLab client and bot user come from ctx)`,
    );
  if (o.heapMb !== undefined && !(o.heapMb >= 16))
    throw new Error(`serve: worker heap ${o.heapMb} MB is under 16 MB`);
}

/** A worker's report about its jobs, passed on to the watcher, the metrics and the callbacks. */
function relay(d: SinkDeps, gen: number, m: Exclude<FromWorker, { type: 'ready' }>): void {
  if (m.type === 'added') d.watcher.track(m.id, m.job, gen);
  else if (m.type === 'started') d.watcher.started(m.id);
  else if (m.type === 'ended') d.watcher.ended(m.id, m.error);
  else if (m.type === 'verdict') d.metrics.verdicts.inc({ state: m.state });
  else if (m.type === 'deploy-failure')
    d.metrics.deployFailures.inc({ environment: m.environment, reason: m.reason });
  else if (m.type === 'alert') d.ctx.onAlert?.(m.kind, m.project, m.detail);
  else if (m.type === 'move') d.ctx.onDeployRefMove?.(m.project, m.ref, m.sha);
  else if (m.type === 'retry') {
    d.callerCtx.gitlab.retries++;
    d.callerCtx.gitlab.opts.onRetry?.(m.what, m.info);
  }
}

function deathReason(error: (Error & { code?: string }) | null, code: number, heapMb: number): string {
  if (error?.code === 'ERR_WORKER_OUT_OF_MEMORY') return `out of memory (heap limit ${heapMb} MB)`;
  return error ? `crashed: ${error.message}` : `exited with code ${code}`;
}

/**
 * Jobs on a worker thread. A worker that dies (out of memory, a crash) is restarted after a
 * delay that doubles while it keeps dying; the jobs it held count as failed.
 */
export function workerSink(d: SinkDeps, o: WorkerOptions): JobSink {
  return new WorkerSink(d, o);
}

class WorkerSink implements JobSink {
  readonly ready: Promise<void>;
  private readonly init: Init;
  private readonly heapMb: number;
  private worker: Worker | null = null;
  private workerReady = false;
  private generation = 0;
  private downSince: { reason: string; restartAt: number } | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private terminating = false;
  private shuttingDown = false;
  private killReason: string | null = null;
  private crashes = 0;
  private startedAt = 0;
  /** jobs waiting for a worker */
  private readonly pending: string[] = [];
  private firstStart: { resolve: () => void; reject: (e: Error) => void } | null = null;

  constructor(
    private readonly d: SinkDeps,
    private readonly o: WorkerOptions,
  ) {
    this.init = workerInit(d.callerCtx);
    this.heapMb = o.heapMb ?? DEFAULT_WORKER_HEAP_MB;
    this.ready = new Promise<void>((resolve, reject) => {
      this.firstStart = { resolve, reject };
    });
    this.ready.catch(() => {});
    this.start();
  }

  private onMessage(gen: number, m: FromWorker): void {
    if (gen !== this.generation) return;
    if (m.type !== 'ready') {
      relay(this.d, gen, m);
      return;
    }
    // Serving, the listener keeps the process alive, not the worker (see close()).
    if (!this.shuttingDown) this.worker?.unref();
    this.workerReady = true;
    this.downSince = null;
    if (!this.firstStart && !this.shuttingDown) this.d.restarted?.();
    this.firstStart?.resolve();
    this.firstStart = null;
  }

  private start(): void {
    const gen = ++this.generation;
    const data: WorkerInit = {
      ...this.init,
      concurrency: this.d.concurrency,
      logLevel: log.level,
      generation: gen,
      gitopsBotWorker: true,
    };
    const w = new Worker(workerScript(), {
      workerData: data,
      // Small generations keep the worker's memory down; its collections no longer delay
      // acknowledgements, which happen on the main thread. A job that needs more than the
      // old generation kills the worker, which is then restarted (its jobs count as failed).
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: this.heapMb },
    });
    let lastError: (Error & { code?: string }) | null = null;
    w.on('message', (m: FromWorker) => this.onMessage(gen, m));
    w.on('error', (e) => {
      lastError = e;
    });
    w.on('exit', (code) => this.onExit(gen, lastError, code));
    this.worker = w;
    this.workerReady = false;
    this.startedAt = Date.now();
    for (const id of this.pending.splice(0)) {
      const job = this.d.watcher.assign(id, gen);
      if (job) w.postMessage({ id, job } satisfies ToWorker);
    }
  }

  private onExit(gen: number, error: (Error & { code?: string }) | null, code: number): void {
    if (gen !== this.generation) return;
    this.worker = null;
    this.workerReady = false;
    if (this.terminating) return;
    const why = this.killReason ?? deathReason(error, code, this.heapMb);
    this.killReason = null;
    this.d.metrics.restarts.inc();
    const lost = this.d.watcher.lost(gen, why);
    this.crashes = Date.now() - this.startedAt < 60_000 ? this.crashes + 1 : 1;
    const delay = this.shuttingDown
      ? 0
      : Math.min(30_000, (this.o.restartDelayMs ?? 1000) * 2 ** (this.crashes - 1));
    this.downSince = { reason: `the worker thread ${why}`, restartAt: Date.now() + delay };
    log.error(
      { alert: 'worker died', reason: why, jobsLost: lost, restartInMs: delay },
      `worker thread ${why}; ${lost} job(s) failed with it; restarting in ${(delay / 1000).toFixed(1)} s`,
    );
    if (this.firstStart) {
      // it never came up: that is a start-up failure, not something to retry
      this.firstStart.reject(new Error(`the worker thread did not start: ${why}`));
      this.firstStart = null;
      return;
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.start();
    }, delay);
  }

  dispatch(job: JobSpec): void {
    const id = nextId();
    if (this.worker) {
      this.d.watcher.track(id, job, this.generation);
      this.worker.postMessage({ id, job } satisfies ToWorker);
    } else {
      this.d.watcher.track(id, job, null);
      this.pending.push(id);
    }
  }

  down(): string | null {
    if (this.worker && this.workerReady) return null;
    const s = this.downSince;
    if (!s) return 'the worker thread is starting';
    const wait = s.restartAt - Date.now();
    return `${s.reason}; restarting${wait > 0 ? ` in ${(wait / 1000).toFixed(1)} s` : ''}`;
  }

  stuck(gen: number | null, why: string): void {
    if (gen !== this.generation || !this.worker) return;
    this.killReason = why;
    void this.worker.terminate();
  }

  closing(): void {
    this.shuttingDown = true;
    // The worker is unref'd while serving; once the listener is closed it would be the
    // only thing left, and Node would exit with its work unfinished.
    this.worker?.ref();
    // A dead worker is restarted now if work waits for it.
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
      if (this.pending.length) this.start();
    }
  }

  async close(): Promise<void> {
    this.terminating = true;
    await this.worker?.terminate();
  }
}
