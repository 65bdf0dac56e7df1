// The work behind webhook deliveries: one queue per merge request (its events stay in
// order), at most `concurrency` jobs at once. Jobs are plain data so that they can cross to
// a worker thread, where `serve` runs them away from the thread that acknowledges deliveries.
import { afterMerge, afterPush, type GateContext, gate } from '../gate/gate.js';
import { log } from '../log.js';

export type JobSpec =
  | { type: 'gate'; project: string; iid: number }
  | { type: 'merged'; project: string; iid: number }
  | { type: 'push'; project: string; branch: string; after: string };

export interface JobEvents {
  /** a job was queued (also follow-ups the runner queues itself) */
  added(): void;
  /** a job finished, whatever its outcome */
  done(): void;
  verdict(state: string): void;
  failure(): void;
}

export function jobKey(job: JobSpec): string {
  return job.type === 'push' ? `${job.project}:push:${job.branch}` : `${job.project}!${job.iid}`;
}

export function createJobRunner(ctx: GateContext, concurrency: number, events: JobEvents) {
  const queues = new Map<string, Promise<void>>();
  let running = 0;
  const waiting: Array<() => void> = [];
  const slot = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (running >= concurrency) await new Promise<void>((r) => waiting.push(r));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };

  async function run(job: JobSpec): Promise<void> {
    if (job.type === 'gate') {
      events.verdict((await gate(ctx, job.project, job.iid, { merge: true })).verdict.state);
    } else if (job.type === 'merged') {
      await afterMerge(ctx, job.project, job.iid);
    } else {
      await afterPush(ctx, job.project, job.branch, job.after);
      // The policy may have changed: evaluate again the open MRs whose rules it holds (the
      // policy is read from an MR's target branch). A push to any other branch, such as an
      // MR's own, changes no rules; it used to re-evaluate every open MR.
      if (/^0+$/.test(job.after)) return;
      for (const iid of await ctx.gitlab.openMergeRequests(job.project, job.branch))
        enqueue({ type: 'gate', project: job.project, iid });
    }
  }

  /** `counted: false` when the caller already counted it (a job posted to the worker). */
  function enqueue(job: JobSpec, counted = true): void {
    if (counted) events.added();
    const key = jobKey(job);
    const prev = queues.get(key) ?? Promise.resolve();
    const next = prev
      .then(() => slot(() => run(job)))
      .then(
        () => undefined,
        (e: Error) => {
          events.failure();
          log.error({ key, err: e.message }, 'event handling failed');
        },
      )
      .finally(() => {
        if (queues.get(key) === next) queues.delete(key);
        events.done();
      });
    queues.set(key, next);
  }

  return { enqueue };
}
