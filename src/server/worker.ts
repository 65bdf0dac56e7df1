// The worker thread of `gitops-bot serve`: runs the jobs, so that GitLab calls, YAML and
// garbage collection never delay the acknowledgement of a delivery on the main thread.
// Everything the in-process runner has crosses here: the GitLab client's options (timeout,
// retry policy; its retries are reported back), the context's plain data (bot user, policy),
// the log level; the context's callbacks (alerts, deploy_ref moves) run on the main thread.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { log } from '../base/log.js';
import type { GateContext } from '../gate/gate.js';
import { GitLabGate, type GitLabOptions } from '../gitlab/client.js';
import { createJobRunner, type JobSpec } from './jobs.js';

export interface WorkerInit {
  /** GitLab client options, without callbacks */
  gitlab: Omit<GitLabOptions, 'onRetry'>;
  /** forward each retry to the main thread (the caller's onRetry) */
  reportRetries: boolean;
  /** the context's plain fields (botUserId, ...) */
  ctx: Record<string, unknown>;
  concurrency: number;
  logLevel: string;
  /** this worker's generation: prefixes the ids of the jobs it queues itself */
  generation: number;
  gitopsBotWorker: true;
}

export type ToWorker = { id: string; job: JobSpec };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'added'; id: string; job: JobSpec }
  | { type: 'started'; id: string }
  | { type: 'ended'; id: string; error?: string }
  | { type: 'verdict'; state: string }
  | { type: 'deploy-failure'; environment: string; reason: string }
  | { type: 'alert'; kind: 'merge' | 'push'; project: string; detail: string }
  | { type: 'move'; project: string; ref: string; sha: string }
  | { type: 'retry'; what: string; info: { attempt: number; delayMs: number; reason: string } };

// Acknowledgements are the latency-critical part; jobs can wait a few milliseconds. On
// Linux a thread has its own nice value: lower this one's priority so that, on a busy
// machine, the main thread gets the CPU first. (Elsewhere this is skipped.)
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (tid > 0) setPriority(tid, 10);
} catch {
  // not Linux, or not allowed: run at the process's priority
}

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
// the level serve runs at (GITOPS_BOT_LOG_LEVEL or its default), and which thread speaks
log.level = init.logLevel;
log.setBindings({ thread: 'worker' });
const gitlab = new GitLabGate({
  ...init.gitlab,
  ...(init.reportRetries ? { onRetry: (what, info) => post({ type: 'retry', what, info }) } : {}),
});
const ctx = {
  ...init.ctx,
  gitlab,
  onAlert: (kind, project, detail) => post({ type: 'alert', kind, project, detail }),
  onDeployRefMove: (project, ref, sha) => post({ type: 'move', project, ref, sha }),
} as GateContext;
const runner = createJobRunner(
  ctx,
  init.concurrency,
  {
    added: (id, job) => post({ type: 'added', id, job }),
    started: (id) => post({ type: 'started', id }),
    ended: (id, error) => post(error === undefined ? { type: 'ended', id } : { type: 'ended', id, error }),
    verdict: (state) => post({ type: 'verdict', state }),
    deployFailure: (environment, reason) => post({ type: 'deploy-failure', environment, reason }),
  },
  `w${init.generation}.`,
);
// The main thread counted this job when it posted it; follow-ups are reported as `added`.
port.on('message', (m: ToWorker) => runner.enqueue(m.job, m.id));
log.info({ generation: init.generation }, 'worker thread started');
post({ type: 'ready' });
