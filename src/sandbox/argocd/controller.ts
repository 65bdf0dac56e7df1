// The application controller of the sandbox's Argo CD: reconcile (resolve the tracked
// branch, render, compare), auto-sync (operation Running → Succeeded or Failed, history),
// health from facts (Progressing for a while, then Healthy, or Degraded when the registry
// lacks an image), and the notifications after every change. Observe → decide → apply:
// `reconcile` observes git and the registry, the pure functions below decide, the class
// applies and notifies.
import { randomUUID } from 'node:crypto';
import type { SandboxCore } from '../core.js';
import {
  decideNotifications,
  type NotifyTarget,
  notificationBody,
  oncePer,
  type SentNotification,
  sendNotification,
} from './notify.js';
import { RegistryFacts } from './registry.js';
import {
  imagesOf,
  type K8sObject,
  manifestError,
  RenderError,
  type Rendered,
  renderSource,
} from './render.js';
import type {
  Application,
  ApplicationSource,
  HealthCode,
  OperationInitiator,
  ResourceStatus,
} from './types.js';

export interface ArgocdOptions {
  /** reconciliation interval (Argo CD's timeout.reconciliation, 180 s) */
  pollMs?: number;
  /** how long a synced workload stays Progressing before Healthy or Degraded */
  progressingMs?: number;
  /** how long a sync operation stays Running */
  syncMs?: number;
  /** where notifications go (the webhook service's url); none: no notifications */
  notifyUrl?: string;
  /** the X-Gitops-Bot-Token header value */
  notifyToken?: string;
  /** notifications-engine's retryWaitMin (1 s); tests shorten it */
  notifyRetryWaitMs?: number;
  /** registries whose images are checked (base URLs such as http://127.0.0.1:5000) */
  registries?: string[];
  /** `webhook.gitlab.secret`: /api/webhook then requires X-Gitlab-Token */
  gitlabWebhookSecret?: string;
  /** port of Argo CD's API server (0: a free one) */
  port?: number;
  /** admin's password (argocd-admin) */
  adminPassword?: string;
}

export interface AppDefinition {
  name: string;
  project?: string;
  /** `namespace/path` of the sandbox project the app reads */
  repo: string;
  path?: string;
  targetRevision: string;
  directory?: ApplicationSource['directory'];
  helm?: ApplicationSource['helm'];
  destinationNamespace?: string;
  automated?: boolean;
}

const HEALTH_ORDER: HealthCode[] = ['Healthy', 'Suspended', 'Progressing', 'Missing', 'Degraded', 'Unknown'];
const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Pod', 'Job', 'CronJob']);
// Kinds Argo CD has a health check for that are Healthy once they exist.
const HEALTHY_ON_CREATE = new Set(['Service', 'Ingress', 'PersistentVolumeClaim', 'ServiceAccount']);
const HISTORY_LIMIT = 10;

/** The worst of the resources' health codes (Argo CD's app health), Healthy when none has one. */
export function worstHealth(codes: HealthCode[]): HealthCode {
  return codes.reduce<HealthCode>(
    (w, c) => (HEALTH_ORDER.indexOf(c) > HEALTH_ORDER.indexOf(w) ? c : w),
    'Healthy',
  );
}

const groupVersion = (o: K8sObject) => {
  const [g, v] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  return { group: g, version: v };
};

/** A rollout's health: Progressing until it settles, then Healthy or Degraded with the kubelet's words. */
export function workloadHealth(
  o: K8sObject,
  phase: 'progressing' | 'settled',
  missing: ReadonlySet<string>,
): { status: HealthCode; message?: string } | undefined {
  if (HEALTHY_ON_CREATE.has(o.kind)) return { status: 'Healthy' };
  if (!WORKLOADS.has(o.kind)) return undefined;
  if (phase === 'progressing') {
    return {
      status: 'Progressing',
      message: `Waiting for rollout to finish: 0 of 1 updated replicas are available...`,
    };
  }
  const images = imagesOf([o]);
  const absent = images.find((i) => missing.has(i));
  // The pod's waiting message (reason ImagePullBackOff), as the kubelet writes it
  // (pkg/kubelet/images/image_manager.go); the sandbox has no pods, so the workload and the
  // app carry it.
  if (absent) return { status: 'Degraded', message: `Back-off pulling image "${absent}"` };
  return { status: 'Healthy' };
}

interface AppRecord {
  def: AppDefinition;
  app: Application;
  resourceVersion: number;
  /** what the last successful sync applied (JSON of the objects), to compare with git */
  applied: string | null;
  appliedObjects: K8sObject[];
  missing: Set<string>;
  notified: Set<string>;
  /** bumps on every new sync; stale timers compare it */
  generation: number;
  timers: Set<NodeJS.Timeout>;
  queue: Promise<void>;
}

export class ArgocdController {
  private readonly apps = new Map<string, AppRecord>();
  private readonly renders = new Map<string, Promise<Rendered>>();
  private readonly registry: RegistryFacts;
  private readonly pending = new Set<Promise<unknown>>();
  private poller: NodeJS.Timeout | null = null;
  private readonly timerDone = new Map<NodeJS.Timeout, () => void>();
  private nextHistoryId = 0;
  private closed = false;
  /** every notification sent (or given up on), oldest first */
  readonly notifications: SentNotification[] = [];
  notifyTarget: NotifyTarget | null;

  constructor(
    private readonly core: SandboxCore,
    readonly opts: ArgocdOptions = {},
  ) {
    this.registry = new RegistryFacts(opts.registries ?? []);
    this.notifyTarget = opts.notifyUrl
      ? { url: opts.notifyUrl, token: opts.notifyToken, retryWaitMs: opts.notifyRetryWaitMs }
      : null;
  }

  /** Where notifications go from now on (null: nowhere); the token is the X-Gitops-Bot-Token value. */
  setNotify(url: string | null, token?: string): void {
    this.notifyTarget = url ? { url, token, retryWaitMs: this.opts.notifyRetryWaitMs } : null;
  }

  get pollMs(): number {
    return this.opts.pollMs ?? 180_000;
  }

  start(): void {
    this.poller = setInterval(() => {
      for (const name of this.apps.keys()) void this.refresh(name).catch(() => {});
    }, this.pollMs);
    this.poller.unref();
    for (const name of this.apps.keys()) void this.refresh(name).catch(() => {});
  }

  /** The repository URL Argo CD clones for a sandbox project. */
  repoUrl(repo: string): string {
    return `${this.core.baseUrl}/${repo}.git`;
  }

  addApp(def: AppDefinition): Application {
    const source: ApplicationSource = {
      repoURL: this.repoUrl(def.repo),
      path: def.path ?? '.',
      targetRevision: def.targetRevision,
      ...(def.directory ? { directory: def.directory } : {}),
      ...(def.helm ? { helm: def.helm } : {}),
    };
    const destination = {
      server: 'https://kubernetes.default.svc',
      namespace: def.destinationNamespace ?? 'default',
    };
    const now = new Date().toISOString();
    const app: Application = {
      metadata: {
        name: def.name,
        namespace: 'argocd',
        uid: randomUUID(),
        resourceVersion: '1',
        generation: 1,
        creationTimestamp: now,
      },
      spec: {
        source,
        destination,
        project: def.project ?? 'default',
        ...(def.automated !== false ? { syncPolicy: { automated: { prune: true, selfHeal: true } } } : {}),
      },
      status: {
        sync: { status: 'Unknown', comparedTo: { source, destination } },
        health: { status: 'Missing', lastTransitionTime: now },
        summary: {},
        resourceHealthSource: 'appTree',
        controllerNamespace: 'argocd',
      },
    };
    this.apps.set(def.name, {
      def,
      app,
      resourceVersion: 1,
      applied: null,
      appliedObjects: [],
      missing: new Set(),
      notified: new Set(),
      generation: 0,
      timers: new Set(),
      queue: Promise.resolve(),
    });
    return app;
  }

  names(): string[] {
    return [...this.apps.keys()].sort();
  }

  /** A copy of the stored Application (as the List answer has it) or null. */
  get(name: string): Application | null {
    const r = this.apps.get(name);
    return r ? structuredClone(r.app) : null;
  }

  /** The single-app GET: resource health filled from the (simulated) resource tree. */
  getWithTree(name: string): Application | null {
    const r = this.apps.get(name);
    if (!r) return null;
    const app = structuredClone(r.app);
    const phase = this.healthPhase(r);
    app.status.resources = (app.status.resources ?? []).map((res) => {
      const o = r.appliedObjects.find((x) => x.kind === res.kind && x.metadata?.name === res.name);
      const health = o
        ? workloadHealth(o, phase, r.missing)
        : { status: 'Missing' as const, message: 'Resource has not been created' };
      return health ? { ...res, health } : res;
    });
    return app;
  }

  private healthPhase(r: AppRecord): 'progressing' | 'settled' {
    return r.app.status.health.status === 'Progressing' ? 'progressing' : 'settled';
  }

  /** Reconciles now (GET ?refresh, the webhook, the poll); `hard` drops the render cache. */
  refresh(name: string, hard = false): Promise<void> {
    const r = this.apps.get(name);
    if (!r) return Promise.reject(new Error(`application ${name} not found`));
    if (hard) this.renders.clear();
    const next = r.queue.then(() => this.reconcile(r));
    r.queue = next.catch(() => {});
    return this.track(next);
  }

  /** Apps whose source is the sandbox repo at `webUrl` and tracks `branch` (the webhook). */
  appsTracking(webUrl: string, branch: string, defaultBranch: string): string[] {
    const norm = (u: string) =>
      u
        .toLowerCase()
        .replace(/\/+$/, '')
        .replace(/\.git$/, '');
    return this.names().filter((n) => {
      const src = this.apps.get(n)!.app.spec.source;
      const target = src.targetRevision || 'HEAD';
      const tracks = target === branch || (target === 'HEAD' && branch === defaultBranch);
      return norm(src.repoURL) === norm(webUrl) && tracks;
    });
  }

  /** Starts a sync like `POST .../sync`; false when an operation is already running. */
  async sync(name: string, initiatedBy: OperationInitiator, revision?: string): Promise<boolean> {
    const r = this.apps.get(name);
    if (!r) throw new Error(`application ${name} not found`);
    // In the app's queue, so a reconcile cannot start its own sync in between.
    const started = r.queue.then(async () => {
      if (r.app.status.operationState?.phase === 'Running') return false;
      const target = revision ? await this.resolve(r, revision) : await this.resolveTarget(r);
      if (!target) {
        throw new RenderError(`Unable to resolve '${revision ?? r.def.targetRevision}' to a commit SHA`);
      }
      const rendered = await this.render(r, target);
      this.startSync(r, target, rendered, initiatedBy);
      return true;
    });
    r.queue = started.then(
      () => {},
      () => {},
    );
    return this.track(started);
  }

  /** Waits until every reconcile, timer and notification in flight has finished. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    // A cleared timer never runs: settle what waits for it, or idle() and close() would hang.
    for (const r of this.apps.values()) for (const t of r.timers) clearTimeout(t);
    for (const done of this.timerDone.values()) done();
    this.timerDone.clear();
    await Promise.allSettled([...this.pending]);
  }

  // ---------- observe ----------

  private resolveTarget(r: AppRecord): Promise<string | null> {
    return this.resolve(r, r.def.targetRevision || 'HEAD');
  }

  /** A branch, tag or SHA of the app's repository as the commit SHA it names (HEAD: the default branch). */
  private async resolve(r: AppRecord, revision: string): Promise<string | null> {
    const project = this.core.store.project(r.def.repo);
    if (!project) return null;
    return this.core.repo(project).resolve(revision === 'HEAD' ? project.defaultBranch : revision);
  }

  private render(r: AppRecord, commit: string): Promise<Rendered> {
    const project = this.core.store.project(r.def.repo);
    if (!project) return Promise.reject(new RenderError('repository not found'));
    const key = `${r.def.repo}@${commit}:${JSON.stringify(r.app.spec.source)}`;
    let p = this.renders.get(key);
    if (!p) {
      p = renderSource(this.core.repo(project), commit, r.app.spec.source, r.app.metadata.name);
      this.renders.set(key, p);
      p.catch(() => this.renders.delete(key));
    }
    return p;
  }

  private async reconcile(r: AppRecord): Promise<void> {
    if (this.closed) return;
    const status = r.app.status;
    status.reconciledAt = new Date().toISOString();
    const head = await this.resolveTarget(r);
    if (!head) {
      this.compareFailed(r, `Unable to resolve '${r.def.targetRevision}' to a commit SHA`);
      return this.changed(r);
    }
    let rendered: Rendered;
    try {
      rendered = await this.render(r, head);
    } catch (e) {
      if (!(e instanceof RenderError)) throw e;
      this.compareFailed(r, e.message, head);
      return this.changed(r);
    }
    status.conditions = undefined;
    status.sourceType = rendered.sourceType;
    status.sync.revision = head;
    const synced = r.applied === JSON.stringify(rendered.objects);
    status.sync.status = synced ? 'Synced' : 'OutOfSync';
    if (!status.resources || !synced) status.resources = this.resourceStatuses(rendered.objects, r);
    const op = status.operationState;
    const running = op?.phase === 'Running';
    // Auto-sync does not retry a revision whose sync already failed ("already attempted").
    const attempted = op?.syncResult?.revision === head && op.phase !== 'Succeeded';
    if (!synced && !running && !attempted && r.app.spec.syncPolicy?.automated) {
      this.startSync(r, head, rendered, { automated: true });
    }
    this.changed(r);
  }

  private compareFailed(r: AppRecord, message: string, revision?: string): void {
    const status = r.app.status;
    status.sync.status = 'Unknown';
    if (revision) status.sync.revision = revision;
    const existing = status.conditions?.find((c) => c.type === 'ComparisonError');
    const text = manifestError(message);
    if (existing?.message !== text) {
      status.conditions = [
        { type: 'ComparisonError', message: text, lastTransitionTime: new Date().toISOString() },
      ];
    }
  }

  private resourceStatuses(objects: K8sObject[], r: AppRecord): ResourceStatus[] {
    const appliedJson = new Map(
      r.appliedObjects.map((o) => [`${o.kind}/${o.metadata?.name}`, JSON.stringify(o)]),
    );
    return objects.map((o) => ({
      ...groupVersion(o),
      kind: o.kind,
      namespace: o.metadata?.namespace ?? r.app.spec.destination.namespace ?? '',
      name: o.metadata?.name ?? '',
      status: appliedJson.get(`${o.kind}/${o.metadata?.name}`) === JSON.stringify(o) ? 'Synced' : 'OutOfSync',
    }));
  }

  // ---------- sync and health ----------

  private startSync(
    r: AppRecord,
    revision: string,
    rendered: Rendered,
    initiatedBy: OperationInitiator,
  ): void {
    const generation = ++r.generation;
    const startedAt = new Date().toISOString();
    const source = structuredClone(r.app.spec.source);
    r.app.status.operationState = {
      operation: { sync: { revision, prune: true }, initiatedBy, retry: {} },
      phase: 'Running',
      message: 'one or more tasks are running',
      // Argo CD's sync sets syncResult.revision before it runs the tasks, so a Running
      // operation already says which revision it is deploying.
      syncResult: { revision, source },
      startedAt,
    };
    this.changed(r);
    this.later(r, this.opts.syncMs ?? 200, async () => {
      if (r.generation !== generation) return;
      this.finishSync(r, revision, rendered, startedAt, initiatedBy);
      this.changed(r);
      const images = imagesOf(rendered.objects);
      const missing = new Set<string>();
      for (const i of images) if (await this.registry.missing(i)) missing.add(i);
      this.later(r, this.opts.progressingMs ?? 2000, () => {
        if (r.generation !== generation) return;
        r.missing = missing;
        this.settleHealth(r);
        this.changed(r);
      });
    });
  }

  private finishSync(
    r: AppRecord,
    revision: string,
    rendered: Rendered,
    startedAt: string,
    initiatedBy: OperationInitiator,
  ): void {
    const status = r.app.status;
    const op = status.operationState!;
    const finishedAt = new Date().toISOString();
    const nameless = rendered.objects.find((o) => !o.metadata?.name);
    const results = rendered.objects.map((o) => ({
      ...groupVersion(o),
      kind: o.kind,
      namespace: o.metadata?.namespace ?? r.app.spec.destination.namespace ?? '',
      name: o.metadata?.name ?? '',
      status: (o === nameless ? 'SyncFailed' : 'Synced') as 'Synced' | 'SyncFailed',
      message:
        o === nameless
          ? 'resource name may not be empty'
          : `${o.kind.toLowerCase()}${groupVersion(o).group ? `.${groupVersion(o).group}` : ''}/${o.metadata?.name} configured`,
      hookPhase: o === nameless ? 'Failed' : 'Running',
      syncPhase: 'Sync',
    }));
    op.syncResult = { ...op.syncResult!, resources: results };
    op.finishedAt = finishedAt;
    if (nameless) {
      op.phase = 'Failed';
      op.message = 'one or more objects failed to apply, reason: resource name may not be empty';
      return;
    }
    op.phase = 'Succeeded';
    op.message = 'successfully synced (all tasks run)';
    r.applied = JSON.stringify(rendered.objects);
    r.appliedObjects = rendered.objects;
    status.sync.status = status.sync.revision === revision ? 'Synced' : 'OutOfSync';
    status.resources = this.resourceStatuses(rendered.objects, r);
    status.summary = { ...status.summary, images: imagesOf(rendered.objects) };
    status.history = [
      ...(status.history ?? []),
      {
        revision,
        deployedAt: finishedAt,
        id: this.nextHistoryId++,
        source: op.syncResult?.source,
        deployStartedAt: startedAt,
        initiatedBy,
      },
    ].slice(-HISTORY_LIMIT);
    const hasWorkload = rendered.objects.some(
      (o) => workloadHealth(o, 'progressing', r.missing)?.status === 'Progressing',
    );
    if (hasWorkload) this.setHealth(r, 'Progressing');
    else this.settleHealth(r);
  }

  private settleHealth(r: AppRecord): void {
    const healths = r.appliedObjects
      .map((o) => workloadHealth(o, 'settled', r.missing))
      .filter((h): h is { status: HealthCode; message?: string } => !!h);
    const worst = worstHealth(healths.map((h) => h.status));
    this.setHealth(r, worst, healths.find((h) => h.status === worst)?.message);
  }

  private setHealth(r: AppRecord, code: HealthCode, message?: string): void {
    const h = r.app.status.health;
    if (h.status !== code) h.lastTransitionTime = new Date().toISOString();
    h.status = code;
    if (message) h.message = message;
    else delete h.message;
  }

  // ---------- apply: versions, timers, notifications ----------

  private later(r: AppRecord, ms: number, fn: () => void | Promise<void>): void {
    let done!: () => void;
    const p = new Promise<void>((ok) => {
      done = ok;
    });
    const t = setTimeout(() => {
      r.timers.delete(t);
      this.timerDone.delete(t);
      const next = r.queue.then(async () => {
        if (!this.closed) await fn();
      });
      r.queue = next.catch(() => {});
      void next.finally(done);
    }, ms);
    r.timers.add(t);
    this.timerDone.set(t, done);
    this.track(p);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    const drop = () => this.pending.delete(p);
    p.then(drop, drop);
    return p;
  }

  /** Every write bumps resourceVersion (as the API server does) and re-evaluates the triggers. */
  private changed(r: AppRecord): void {
    r.resourceVersion++;
    r.app.metadata.resourceVersion = String(r.resourceVersion);
    this.evaluateNotifications(r);
  }

  private evaluateNotifications(r: AppRecord): void {
    const target = this.notifyTarget;
    if (!target) return;
    const { send, forget } = decideNotifications(r.app, r.notified);
    for (const k of forget) r.notified.delete(k);
    if (send.length === 0) return;
    const body = notificationBody(r.app);
    const revision = oncePer(r.app);
    for (const { trigger, key } of send) {
      r.notified.add(key);
      this.track(
        sendNotification(target, body).then((result) => {
          this.notifications.push({
            trigger,
            revision,
            status: result.status,
            attempts: result.attempts,
            at: new Date().toISOString(),
          });
          // A failed send clears the mark, so the next evaluation tries again.
          if (!result.ok) r.notified.delete(key);
        }),
      );
    }
  }
}
