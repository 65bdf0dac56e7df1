// The sandbox's Argo CD: its own HTTP server on loopback (so its paths never meet GitLab's),
// an application controller reading the sandbox's repositories in-process, and the
// notifications the README configures.
import { createServer, type Server } from 'node:http';
import type { SandboxCore } from '../core.js';
import { listenUrl } from '../http.js';
import { argocdApi } from './api.js';
import { type AppDefinition, ArgocdController, type ArgocdOptions } from './controller.js';

export type { AppDefinition, ArgocdOptions } from './controller.js';
export { ArgocdController } from './controller.js';
export type { SentNotification } from './notify.js';
export type { Application } from './types.js';

/** The story's application: helloworld tracks root/helloworld-ops at deploy/prod. */
export const STORY_APPLICATION: AppDefinition = {
  name: 'helloworld',
  project: 'default',
  repo: 'root/helloworld-ops',
  path: '.',
  targetRevision: 'deploy/prod',
  // The ops repository's root also holds gitops-bot's policy, which is no Kubernetes object.
  directory: { exclude: '.gitops-bot.yml' },
  destinationNamespace: 'helloworld',
};

export const ARGOCD_ADMIN = { username: 'admin', password: 'argocd-admin' } as const;

export interface Argocd {
  url: string;
  controller: ArgocdController;
  close(): Promise<void>;
}

export async function startArgocd(
  core: SandboxCore,
  host: string,
  opts: ArgocdOptions & { apps?: AppDefinition[] } = {},
): Promise<Argocd> {
  const controller = new ArgocdController(core, opts);
  const apps = opts.apps ?? (core.store.project(STORY_APPLICATION.repo) ? [STORY_APPLICATION] : []);
  for (const a of apps) controller.addApp(a);
  const handle = argocdApi(controller, {
    users: { [ARGOCD_ADMIN.username]: opts.adminPassword ?? ARGOCD_ADMIN.password },
    gitlabWebhookSecret: opts.gitlabWebhookSecret,
  });
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      process.stderr.write(`sandbox argocd: ${req.method} ${req.url}: ${e.stack ?? e.message}\n`);
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: e.message, code: 2, message: e.message }));
      } else res.destroy();
    });
  });
  const url = await listenUrl(server, host, opts.port);
  controller.start();
  return {
    url,
    controller,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
      await controller.close();
    },
  };
}
