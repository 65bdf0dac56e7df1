// Watching jobs, the same whether they run on the worker thread or in-process: each job is
// tracked from the moment it is queued; one that fails or runs past the job timeout is
// counted (gitops_bot_job_failures_total{reason}) and alerted (an error log line naming the
// project and MR, and why); /healthz asks `stuck()`.
import { log } from '../base/log.js';
import { describeJob, type JobSpec } from './jobs.js';
import type { ServeMetrics } from './metrics.js';

export type FailureReason = 'error' | 'timeout' | 'worker';

interface Tracked {
  job: JobSpec;
  /** the worker generation holding it (0 in-process), null while it waits for a worker */
  gen: number | null;
  startedAt: number | null;
  timedOut: boolean;
  timer?: NodeJS.Timeout;
}

const fields = (job: JobSpec) => ({
  job: job.type,
  project: job.project,
  ...(job.type === 'gate' || job.type === 'merged' ? { mr: job.iid } : {}),
  ...(job.type === 'push' ? { branch: job.branch, sha: job.after } : {}),
  ...(job.type === 'accept' ? { sha: job.sha } : {}),
});

export interface WatcherOptions {
  jobTimeoutMs: number;
  metrics: ServeMetrics;
  /** a job still running at twice the timeout, on worker generation `gen` (the sink may restart it) */
  onStuck?: (gen: number | null, why: string) => void;
}

export function createWatcher(o: WatcherOptions) {
  const jobs = new Map<string, Tracked>();
  let drained: Array<() => void> = [];

  function failed(t: Tracked, reason: FailureReason, why: string): void {
    o.metrics.failures.inc({ reason });
    log.error(
      { alert: 'job failed', reason, ...fields(t.job), error: why },
      `job failed (${reason}): ${describeJob(t.job)}: ${why}`,
    );
  }
  function untrack(id: string): void {
    const t = jobs.get(id);
    if (!t) return;
    clearTimeout(t.timer);
    jobs.delete(id);
    if (jobs.size === 0) for (const d of drained.splice(0)) d();
  }

  return {
    /** a job was queued (`gen` null: it waits for a worker) */
    track(id: string, job: JobSpec, gen: number | null): void {
      jobs.set(id, { job, gen, startedAt: null, timedOut: false });
    },
    /** a job that waited for a worker now runs on generation `gen` */
    assign(id: string, gen: number): JobSpec | null {
      const t = jobs.get(id);
      if (!t) return null;
      t.gen = gen;
      return t.job;
    },
    started(id: string): void {
      const t = jobs.get(id);
      if (!t) return;
      t.startedAt = Date.now();
      t.timer = setTimeout(() => {
        t.timedOut = true;
        failed(t, 'timeout', `still running after the ${o.jobTimeoutMs / 1000} s job timeout`);
        // Still busy with it at twice the timeout: stuck (a blocked event loop cannot even notice).
        t.timer = setTimeout(() => {
          if (jobs.get(id) === t)
            o.onStuck?.(
              t.gen,
              `${describeJob(t.job)} still running at twice the ${o.jobTimeoutMs / 1000} s job timeout`,
            );
        }, o.jobTimeoutMs);
        t.timer.unref();
      }, o.jobTimeoutMs);
      t.timer.unref();
    },
    ended(id: string, error?: string): void {
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
    },
    /** the worker of generation `gen` died: its jobs failed with it; how many */
    lost(gen: number, why: string): number {
      let n = 0;
      for (const [id, t] of [...jobs]) {
        if (t.gen !== gen) continue;
        n++;
        if (!t.timedOut) failed(t, 'worker', `the worker thread ${why}`);
        untrack(id);
      }
      return n;
    },
    /** the first job running past the timeout, in words; null when none is */
    stuck(now = Date.now()): string | null {
      // Only once its timer fired: /healthz never says stuck before the failure is counted
      // and alerted (a late timer on a busy machine would otherwise be seen first).
      for (const t of jobs.values())
        if (t.timedOut && t.startedAt !== null)
          return `${describeJob(t.job)} has been running for ${((now - t.startedAt) / 1000).toFixed(1)} s (job timeout ${o.jobTimeoutMs / 1000} s)`;
      return null;
    },
    inFlight: () => jobs.size,
    idle: (): Promise<void> =>
      jobs.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => drained.push(resolve)),
    forgetWaiters(): void {
      drained = [];
    },
  };
}

export type Watcher = ReturnType<typeof createWatcher>;
