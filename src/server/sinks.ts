// Where jobs run: in-process, or on a worker thread that `serve` restarts when it dies.
// Both take jobs by `dispatch` and report the same typed events to the watcher and the
// metrics, so timeouts, failure counts and alerts do not depend on which one runs them.
import { Worker } from 'node:worker_threads';
import type { GateContext } from '../gate/gate.js';
import { GitLabGate } from '../gitlab/client.js';
import { log } from '../log.js';
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
}

let seq = 0;
const nextId = () => `m${++seq}`;

export function inProcessSink(d: SinkDeps): JobSink {
  const runner = createJobRunner(d.ctx, d.concurrency, {
    added: (id, job) => d.watcher.track(id, job, 0),
    started: (id) => d.watcher.started(id),
    ended: (id, error) => d.watcher.ended(id, error),
    verdict: (state) => d.metrics.verdicts.inc({ state }),
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
    close: async () => {},
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

/**
 * Jobs on a worker thread. A worker that dies (out of memory, a crash) is restarted after a
 * delay that doubles while it keeps dying; the jobs it held count as failed.
 */
export function workerSink(d: SinkDeps, o: WorkerOptions): JobSink {
  const init = workerInit(d.callerCtx);
  const heapMb = o.heapMb ?? DEFAULT_WORKER_HEAP_MB;
  let worker: Worker | null = null;
  let workerReady = false;
  let generation = 0;
  let downSince: { reason: string; restartAt: number } | null = null;
  let restartTimer: NodeJS.Timeout | null = null;
  let terminating = false;
  let shuttingDown = false;
  let killReason: string | null = null;
  let crashes = 0;
  let startedAt = 0;
  const pending: string[] = [];
  let firstStart: { resolve: () => void; reject: (e: Error) => void } | null = null;
  const ready = new Promise<void>((resolve, reject) => {
    firstStart = { resolve, reject };
  });
  ready.catch(() => {});

  function onMessage(gen: number, m: FromWorker): void {
    if (gen !== generation) return;
    if (m.type === 'ready') {
      // Serving, the listener keeps the process alive, not the worker (see close()).
      if (!shuttingDown) worker?.unref();
      workerReady = true;
      downSince = null;
      firstStart?.resolve();
      firstStart = null;
    } else if (m.type === 'added') d.watcher.track(m.id, m.job, gen);
    else if (m.type === 'started') d.watcher.started(m.id);
    else if (m.type === 'ended') d.watcher.ended(m.id, m.error);
    else if (m.type === 'verdict') d.metrics.verdicts.inc({ state: m.state });
    else if (m.type === 'alert') d.ctx.onAlert?.(m.kind, m.project, m.detail);
    else if (m.type === 'move') d.ctx.onDeployRefMove?.(m.project, m.ref, m.sha);
    else if (m.type === 'retry') {
      d.callerCtx.gitlab.retries++;
      d.callerCtx.gitlab.opts.onRetry?.(m.what, m.info);
    }
  }

  function start(): void {
    const gen = ++generation;
    const data: WorkerInit = {
      ...init,
      concurrency: d.concurrency,
      logLevel: log.level,
      generation: gen,
      gitopsBotWorker: true,
    };
    const w = new Worker(workerScript(), {
      workerData: data,
      // Small generations keep the worker's memory down; its collections no longer delay
      // acknowledgements, which happen on the main thread. A job that needs more than the
      // old generation kills the worker, which is then restarted (its jobs count as failed).
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: heapMb },
    });
    let lastError: (Error & { code?: string }) | null = null;
    w.on('message', (m: FromWorker) => onMessage(gen, m));
    w.on('error', (e) => {
      lastError = e;
    });
    w.on('exit', (code) => onExit(gen, lastError, code));
    worker = w;
    workerReady = false;
    startedAt = Date.now();
    for (const id of pending.splice(0)) {
      const job = d.watcher.assign(id, gen);
      if (job) w.postMessage({ id, job } satisfies ToWorker);
    }
  }

  function onExit(gen: number, error: (Error & { code?: string }) | null, code: number): void {
    if (gen !== generation) return;
    worker = null;
    workerReady = false;
    if (terminating) return;
    const why =
      killReason ??
      (error?.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? `out of memory (heap limit ${heapMb} MB)`
        : error
          ? `crashed: ${error.message}`
          : `exited with code ${code}`);
    killReason = null;
    d.metrics.restarts.inc();
    const lost = d.watcher.lost(gen, why);
    crashes = Date.now() - startedAt < 60_000 ? crashes + 1 : 1;
    const delay = shuttingDown ? 0 : Math.min(30_000, (o.restartDelayMs ?? 1000) * 2 ** (crashes - 1));
    downSince = { reason: `the worker thread ${why}`, restartAt: Date.now() + delay };
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
      start();
    }, delay);
  }

  start();
  return {
    ready,
    dispatch(job) {
      const id = nextId();
      if (worker) {
        d.watcher.track(id, job, generation);
        worker.postMessage({ id, job } satisfies ToWorker);
      } else {
        d.watcher.track(id, job, null);
        pending.push(id);
      }
    },
    down() {
      if (worker && workerReady) return null;
      return downSince
        ? `${downSince.reason}; restarting${downSince.restartAt > Date.now() ? ` in ${((downSince.restartAt - Date.now()) / 1000).toFixed(1)} s` : ''}`
        : 'the worker thread is starting';
    },
    stuck(gen, why) {
      if (gen !== generation || !worker) return;
      killReason = why;
      void worker.terminate();
    },
    closing() {
      shuttingDown = true;
      // The worker is unref'd while serving; once the listener is closed it would be the
      // only thing left, and Node would exit with its work unfinished.
      worker?.ref();
      // A dead worker is restarted now if work waits for it.
      if (restartTimer) {
        clearTimeout(restartTimer);
        restartTimer = null;
        if (pending.length) start();
      }
    },
    async close() {
      terminating = true;
      await worker?.terminate();
    },
  };
}
