// The polling fallback for teams that cannot configure Argo CD Notifications: every
// `pollMs`, the Argo CD applications the managed projects' policies name are read from
// Argo CD's REST API (GET /api/v1/applications/{name}, Bearer ARGOCD_AUTH_TOKEN) and a
// changed one takes the same path as a notification. The token is never logged.
import { log } from '../base/log.js';
import { networkCause, origin } from '../base/network-error.js';
import { observeArgoApplication } from '../feedback/argocd.js';
import type { GateContext } from '../gate/facts.js';
import { rulesInForce } from '../gate/trust.js';

export const DEFAULT_ARGOCD_POLL_MS = 30_000;
const REQUEST_TIMEOUT_MS = 15_000;

export interface ArgoPoller {
  /** one round now (tests; the timer runs them by itself) */
  poll(): Promise<void>;
  stop(): void;
}

export function startArgoPoller(o: {
  url: string;
  token: string;
  pollMs?: number;
  ctx: GateContext;
  projects: () => string[];
  deliver: (app: unknown) => string;
}): ArgoPoller {
  const base = o.url.replace(/\/+$/, '');
  const where = origin(base);
  const last = new Map<string, string>();
  let stopped = false;
  let running: Promise<void> | null = null;

  async function appNames(): Promise<string[]> {
    const names = new Set<string>();
    for (const project of o.projects()) {
      const rules = await rulesInForce(o.ctx.gitlab, project, o.ctx.policy);
      const p = rules.policy;
      if (!p || 'error' in p) continue;
      for (const e of p.environments) if (e.agent && 'argocd' in e.agent) names.add(e.agent.argocd);
    }
    return [...names].sort();
  }

  async function read(name: string): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${base}/api/v1/applications/${encodeURIComponent(name)}`, {
        headers: { Authorization: `Bearer ${o.token}`, Accept: 'application/json' },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (e) {
      throw new Error(`cannot reach Argo CD at ${where}: ${networkCause(e, base) ?? (e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let message = text.slice(0, 200);
      try {
        message = JSON.parse(text).message ?? message;
      } catch {}
      throw new Error(`Argo CD answered ${res.status} for application ${name}: ${message}`);
    }
    return JSON.parse(text);
  }

  async function round(): Promise<void> {
    let names: string[];
    try {
      names = await appNames();
    } catch (e) {
      log.warn({ error: (e as Error).message }, 'argocd poll: cannot read the policies');
      return;
    }
    for (const name of names) {
      if (stopped) return;
      try {
        const app = await read(name);
        const seen = JSON.stringify(observeArgoApplication(app));
        if (last.get(name) === seen) continue;
        last.set(name, seen);
        o.deliver(app);
      } catch (e) {
        log.warn({ application: name, error: (e as Error).message }, `argocd poll: ${(e as Error).message}`);
      }
    }
  }

  const poll = () => {
    running ??= round().finally(() => {
      running = null;
    });
    return running;
  };
  const timer = setInterval(() => void poll(), o.pollMs ?? DEFAULT_ARGOCD_POLL_MS);
  timer.unref();
  void poll();
  return {
    poll,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
