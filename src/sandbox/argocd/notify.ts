// Argo CD Notifications as the README configures them for gitops-bot: the catalog triggers
// on-deployed, on-health-degraded, on-sync-failed and on-sync-running (their `when`
// conditions from argo-cd's notifications_catalog), all with
// `oncePer: app.status.operationState?.syncResult?.revision`, one webhook service sending
// the partial Application of the `gitops-bot` template with the X-Gitops-Bot-Token header.
import type { Application } from './types.js';

export const TRIGGERS = ['on-deployed', 'on-health-degraded', 'on-sync-failed', 'on-sync-running'] as const;
export type Trigger = (typeof TRIGGERS)[number];

const ms = (t: string | undefined) => (t ? Date.parse(t) : Number.NaN);

/** The trigger's `when`, evaluated on the Application's JSON. */
export function triggerHolds(trigger: Trigger, app: Application): boolean {
  const op = app.status.operationState;
  switch (trigger) {
    case 'on-deployed': {
      // ... phase in ['Succeeded'] and health == 'Healthy' and
      // (!time.Parse(health.lastTransitionTime).Add(1 * time.Minute).Before(time.Parse(op.finishedAt))
      //  or time.Parse(health.lastTransitionTime).Before(time.Parse(op.startedAt)))
      if (op?.phase !== 'Succeeded' || app.status.health.status !== 'Healthy') return false;
      const ltt = ms(app.status.health.lastTransitionTime);
      return !(ltt + 60_000 < ms(op.finishedAt)) || ltt < ms(op.startedAt);
    }
    case 'on-health-degraded':
      return app.status.health.status === 'Degraded';
    case 'on-sync-failed':
      return !!op && (op.phase === 'Error' || op.phase === 'Failed');
    case 'on-sync-running':
      return !!op && op.phase === 'Running';
  }
}

/** The value of the triggers' `oncePer` expression ('' when the app has no sync result). */
export function oncePer(app: Application): string {
  return app.status.operationState?.syncResult?.revision ?? '';
}

/**
 * notifications-engine's firing decision. `notified` holds the keys already sent (the
 * `notified.notifications.argoproj.io` annotation): a trigger fires when its condition holds
 * and its key is absent. With a oncePer value the key carries it, so it fires once per
 * revision; with none, a false condition removes the key so the next true one fires again.
 */
export function decideNotifications(
  app: Application,
  notified: ReadonlySet<string>,
): { send: Array<{ trigger: Trigger; key: string }>; forget: string[] } {
  const once = oncePer(app);
  const send: Array<{ trigger: Trigger; key: string }> = [];
  const forget: string[] = [];
  for (const trigger of TRIGGERS) {
    const key = `${once ? `${once}:` : ''}${trigger}:gitops-bot`;
    if (triggerHolds(trigger, app)) {
      if (!notified.has(key)) send.push({ trigger, key });
    } else if (!once && notified.has(key)) forget.push(key);
  }
  return { send, forget };
}

/**
 * The body the README's `gitops-bot` template renders: `{{toJson .app.status.sync}}` and
 * friends on the Application map; a missing field renders as `null`.
 */
export function notificationBody(app: Application): string {
  const j = (v: unknown) => JSON.stringify(v ?? null);
  return (
    `{"application": {"metadata": {"name": ${j(app.metadata.name)}, "namespace": ${j(app.metadata.namespace)}},\n` +
    ` "spec": {"source": ${j(app.spec.source)}},\n` +
    ` "status": {"sync": ${j(app.status.sync)}, "health": ${j(app.status.health)},\n` +
    `            "operationState": ${j(app.status.operationState)}, "summary": ${j(app.status.summary)}}}}`
  );
}

export interface NotifyTarget {
  url: string;
  /** the X-Gitops-Bot-Token header; none when unset */
  token?: string;
  /** go-retryablehttp's retryWaitMin (1 s in notifications-engine); doubled per retry up to 5× */
  retryWaitMs?: number;
  /** retryMax (3) */
  retries?: number;
}

export interface SentNotification {
  trigger: Trigger;
  revision: string;
  status: number | null;
  attempts: number;
  at: string;
}

/**
 * POSTs one notification, retrying as go-retryablehttp does for notifications-engine: on a
 * connection error or a 5xx (not 501) or 429, up to `retries` more times, waiting retryWaitMin × 2^n
 * (capped at retryWaitMax = 5 × retryWaitMin). True when a 2xx came back.
 */
export async function sendNotification(
  target: NotifyTarget,
  body: string,
): Promise<{ ok: boolean; status: number | null; attempts: number }> {
  const wait = target.retryWaitMs ?? 1000;
  const retries = target.retries ?? 3;
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (target.token) headers['X-Gitops-Bot-Token'] = target.token;
  let status: number | null = null;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(wait * 2 ** (attempt - 1), wait * 5)));
    try {
      const res = await fetch(target.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(30_000),
      });
      await res.arrayBuffer();
      status = res.status;
      if (res.ok) return { ok: true, status, attempts: attempt + 1 };
      // DefaultRetryPolicy: 429 and 5xx are retried, except 501 Not Implemented.
      if ((res.status < 500 && res.status !== 429) || res.status === 501) {
        return { ok: false, status, attempts: attempt + 1 };
      }
    } catch {
      status = null;
    }
  }
  return { ok: false, status, attempts: retries + 1 };
}
