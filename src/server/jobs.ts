// The work behind webhook deliveries: one queue per merge request (its events stay in
// order), at most `concurrency` jobs at once. Jobs are plain data so that they can cross to
// a worker thread, where `serve` runs them away from the thread that acknowledges deliveries.
// The runner only runs them and reports each one's start and end; timeouts, failure counts
// and alerts are the webhook server's (webhook.ts), the same for both ways of running.
import { acceptBypass, afterMerge, afterPush, type GateContext, gate } from '../gate/gate.js';
import { ProjectDirectory } from './projects.js';

export type JobSpec =
  | { type: 'gate'; project: string; iid: number }
  | { type: 'merged'; project: string; iid: number }
  | { type: 'push'; project: string; branch: string; after: string }
  /** `/gitops-bot accept <sha>`: a bypass on the target branch is accepted */
  | { type: 'accept'; project: string; sha: string };

export interface JobEvents {
  /** a job the runner queued itself (a follow-up), with the id it gave it */
  added(id: string, job: JobSpec): void;
  /** it got a slot and runs now */
  started(id: string): void;
  /** it finished; `error` is why it failed (undefined: it succeeded) */
  ended(id: string, error?: string): void;
  verdict(state: string): void;
}

export function jobKey(job: JobSpec): string {
  if (job.type === 'push') return `${job.project}:push:${job.branch}`;
  if (job.type === 'accept') return `${job.project}:accept`;
  return `${job.project}!${job.iid}`;
}

/** One line naming the job's project and MR, branch or commit (for logs and alerts). */
export function describeJob(job: JobSpec): string {
  if (job.type === 'push') return `push to ${job.branch} of ${job.project} (${job.after.slice(0, 8)})`;
  if (job.type === 'accept') return `accept ${job.sha.slice(0, 12)} in ${job.project}`;
  return `${job.type === 'gate' ? 'gate of' : 'after the merge of'} ${job.project}!${job.iid}`;
}

/**
 * `idPrefix` keeps the ids of follow-ups unique across runners (a restarted worker starts
 * counting again).
 */
export function createJobRunner(ctx: GateContext, concurrency: number, events: JobEvents, idPrefix = 'f') {
  const queues = new Map<string, Promise<void>>();
  let running = 0;
  let seq = 0;
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
  // Without --project, a delivery names its project by id only (its path is the sender's
  // word): the path is GitLab's answer for that id.
  let directory: ProjectDirectory | null = null;
  const paths = new Map<string, Promise<string>>();
  const canonical = (project: string): Promise<string> => {
    if (!/^\d+$/.test(project)) return Promise.resolve(project);
    directory ??= new ProjectDirectory(ctx.gitlab.opts);
    let p = paths.get(project);
    if (!p) {
      p = directory.identity(project).then((x) => x.path);
      p.catch(() => paths.delete(project));
      paths.set(project, p);
    }
    return p;
  };

  async function run(spec: JobSpec): Promise<void> {
    const job = { ...spec, project: await canonical(spec.project) } as JobSpec;
    if (job.type === 'gate') {
      events.verdict((await gate(ctx, job.project, job.iid, { merge: true })).verdict.state);
    } else if (job.type === 'merged') {
      await afterMerge(ctx, job.project, job.iid);
    } else if (job.type === 'accept') {
      await acceptBypass(ctx, job.project, job.sha);
    } else {
      await afterPush(ctx, job.project, job.branch, job.after);
      // The policy may have changed: evaluate again the open MRs whose rules it holds (the
      // policy is read from an MR's target branch). A push to any other branch, such as an
      // MR's own, changes no rules; it used to re-evaluate every open MR.
      if (/^0+$/.test(job.after)) return;
      for (const iid of await ctx.gitlab.openMergeRequests(job.project, job.branch))
        enqueue({ type: 'gate', project: spec.project, iid });
    }
  }

  /** `id`: the caller's id for the job (it reported it as added); else it is a follow-up. */
  function enqueue(job: JobSpec, id?: string): void {
    if (id === undefined) {
      id = `${idPrefix}${++seq}`;
      events.added(id, job);
    }
    const jobId = id;
    const key = jobKey(job);
    const prev = queues.get(key) ?? Promise.resolve();
    const next = prev
      .then(() =>
        slot(() => {
          events.started(jobId);
          return run(job);
        }),
      )
      .then(
        () => events.ended(jobId),
        (e: Error) => events.ended(jobId, e?.message ?? String(e)),
      )
      .finally(() => {
        if (queues.get(key) === next) queues.delete(key);
      });
    queues.set(key, next);
  }

  return { enqueue };
}
