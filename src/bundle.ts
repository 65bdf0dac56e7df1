// Entry of the bundle (dist/gitops-bot.mjs and gitops-bot.data, built by scripts/bundle.mjs), for
// the container image and the GitHub Action: the CLI, or, when the bundle is started as the
// worker thread of `gitops-bot serve`, that worker (a bundle has no worker.js beside it).
import './startup.js';
import { isMainThread, workerData } from 'node:worker_threads';

if (!isMainThread && (workerData as { gitopsBotWorker?: boolean } | null)?.gitopsBotWorker) {
  void import('./server/worker.js');
} else {
  void import('./cli.js');
}
