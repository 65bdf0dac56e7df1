// The worker thread of `gitops-bot serve`: runs the jobs, so that GitLab calls, YAML and
// garbage collection never delay the acknowledgement of a delivery on the main thread.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { GitLabGate } from '../gitlab/client.js';
import { createJobRunner, type JobSpec } from './jobs.js';

export interface WorkerInit {
  url: string;
  token: string;
  botUserId: number;
  concurrency: number;
}

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
const runner = createJobRunner(
  {
    gitlab: new GitLabGate({ url: init.url, token: init.token }),
    botUserId: init.botUserId,
    onAlert: (kind) => port.postMessage({ type: 'alert', kind }),
    onDeployRefMove: () => port.postMessage({ type: 'move' }),
  },
  init.concurrency,
  {
    added: () => port.postMessage({ type: 'added' }),
    done: () => port.postMessage({ type: 'done' }),
    verdict: (state) => port.postMessage({ type: 'verdict', state }),
    failure: () => port.postMessage({ type: 'failure' }),
  },
);
// The main thread counted this job when it posted it; follow-ups are reported as `added`.
port.on('message', (job: JobSpec) => runner.enqueue(job, false));
