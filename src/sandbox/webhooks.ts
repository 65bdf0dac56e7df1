// Project hooks: GitLab's headers and payload keys for Push, Merge Request and Note events.
// Deliveries are asynchronous, as in GitLab (Sidekiq), and logged so that tests can wait for
// them (`idle()`) and resend one with the same Idempotency-Key, as "Resend request" does.
import { createHmac, randomUUID } from 'node:crypto';
import type { CommitInfo } from './git.js';
import type { Hook, MergeRequest, Note, Project, Store, User } from './state.js';

export interface Delivery {
  id: number;
  hookId: number;
  url: string;
  event: string;
  eventUuid: string;
  idempotencyKey: string;
  status: number | null;
  error: string | null;
  durationMs: number | null;
  at: string;
  payload: unknown;
}

export interface Presenters {
  user(u: User): Record<string, unknown>;
  hookProject(p: Project): Record<string, unknown>;
  hookMergeRequest(p: Project, mr: MergeRequest): Promise<Record<string, unknown>>;
}

export class Webhooks {
  readonly deliveries: Delivery[] = [];
  private readonly pending = new Set<Promise<void>>();
  // Events are assembled asynchronously; chaining keeps them in the order they happened.
  private chain: Promise<void> = Promise.resolve();
  presenters!: Presenters;
  baseUrl = '';
  timeoutMs = 10_000;

  constructor(private readonly store: Store) {}

  private hooksFor(project: Project, kind: 'push' | 'mr' | 'note'): Hook[] {
    return this.store.data.hooks.filter(
      (h) =>
        h.projectId === project.id &&
        (kind === 'push' ? h.pushEvents : kind === 'mr' ? h.mergeRequestsEvents : h.noteEvents),
    );
  }

  has(project: Project, kind: 'push' | 'mr' | 'note'): boolean {
    return this.hooksFor(project, kind).length > 0;
  }

  private enqueue(
    project: Project,
    kind: 'push' | 'mr' | 'note',
    event: string,
    build: () => Promise<unknown>,
  ) {
    const hooks = this.hooksFor(project, kind);
    if (!hooks.length) return;
    const job = this.chain.then(async () => {
      const payload = await build();
      const eventUuid = randomUUID();
      for (const hook of hooks) this.send(hook, event, payload, eventUuid, randomUUID());
    });
    this.chain = job.catch(() => {});
    this.track(this.chain);
  }

  private track(p: Promise<void>) {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private send(
    hook: Hook,
    event: string,
    payload: unknown,
    eventUuid: string,
    idempotencyKey: string,
  ): Delivery {
    const delivery: Delivery = {
      id: this.deliveries.length + 1,
      hookId: hook.id,
      url: hook.url,
      event,
      eventUuid,
      idempotencyKey,
      status: null,
      error: null,
      durationMs: null,
      at: new Date().toISOString(),
      payload,
    };
    this.deliveries.push(delivery);
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'User-Agent': 'GitLab/17.11.0-sandbox',
      'X-Gitlab-Event': event,
      'X-Gitlab-Instance': this.baseUrl,
      'X-Gitlab-Webhook-UUID': hookUuid(hook),
      'X-Gitlab-Event-UUID': eventUuid,
      'Idempotency-Key': idempotencyKey,
    };
    if (hook.token) headers['X-Gitlab-Token'] = hook.token;
    const body = JSON.stringify(payload);
    if (hook.signingToken) Object.assign(headers, signatureHeaders(hook.signingToken, idempotencyKey, body));
    const started = Date.now();
    const p = fetch(hook.url, {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(this.timeoutMs),
    })
      .then(async (res) => {
        delivery.status = res.status;
        await res.arrayBuffer().catch(() => undefined);
      })
      .catch((e: Error) => {
        delivery.error = e.message;
      })
      .finally(() => {
        delivery.durationMs = Date.now() - started;
      });
    this.track(p);
    return delivery;
  }

  /** Sends a logged delivery again with the same Idempotency-Key and Event-UUID. */
  resend(id: number): Delivery | null {
    const d = this.deliveries.find((x) => x.id === id);
    const hook = d && this.store.data.hooks.find((h) => h.id === d.hookId);
    if (!d || !hook) return null;
    return this.send(hook, d.event, d.payload, d.eventUuid, d.idempotencyKey);
  }

  /** Resolves once every queued and in-flight delivery has finished. */
  async idle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  push(project: Project, user: User, branch: string, before: string, after: string, commits: CommitInfo[]) {
    this.enqueue(project, 'push', 'Push Hook', async () => {
      const web = `${this.baseUrl}/${project.namespace}/${project.path}`;
      return {
        object_kind: 'push',
        event_name: 'push',
        before,
        after,
        ref: `refs/heads/${branch}`,
        ref_protected: branch === project.defaultBranch,
        checkout_sha: /^0+$/.test(after) ? null : after,
        message: null,
        user_id: user.id,
        user_name: user.name,
        user_username: user.username,
        user_email: '',
        user_avatar: null,
        project_id: project.id,
        project: this.presenters.hookProject(project),
        commits: commits.map((c) => ({
          id: c.id,
          message: c.message,
          title: c.message.split('\n')[0],
          timestamp: c.committedDate,
          url: `${web}/-/commit/${c.id}`,
          author: { name: c.authorName, email: c.authorEmail },
          added: [],
          modified: [],
          removed: [],
        })),
        total_commits_count: commits.length,
        repository: repository(this.presenters.hookProject(project)),
      };
    });
  }

  mergeRequest(
    project: Project,
    mr: MergeRequest,
    user: User,
    action: string,
    extra: { oldrev?: string } = {},
  ) {
    this.enqueue(project, 'mr', 'Merge Request Hook', async () => {
      const attrs = await this.presenters.hookMergeRequest(project, mr);
      const userOf = (id: number) => this.store.user(id);
      const users = (ids: number[]) =>
        ids
          .map(userOf)
          .filter((u): u is User => !!u)
          .map((u) => this.presenters.user(u));
      return {
        object_kind: 'merge_request',
        event_type: 'merge_request',
        user: { ...this.presenters.user(user), email: '[REDACTED]' },
        project: this.presenters.hookProject(project),
        repository: repository(this.presenters.hookProject(project)),
        object_attributes: { ...attrs, action, ...(extra.oldrev ? { oldrev: extra.oldrev } : {}) },
        labels: mr.labels.map((title, i) => ({ id: i + 1, title })),
        changes: {},
        assignees: users(mr.assigneeIds),
        reviewers: users(mr.reviewerIds),
      };
    });
  }

  note(project: Project, mr: MergeRequest, note: Note, user: User, action: 'create' | 'update') {
    this.enqueue(project, 'note', 'Note Hook', async () => {
      const web = `${this.baseUrl}/${project.namespace}/${project.path}`;
      return {
        object_kind: 'note',
        event_type: 'note',
        user: { ...this.presenters.user(user), email: '[REDACTED]' },
        project_id: project.id,
        project: this.presenters.hookProject(project),
        repository: repository(this.presenters.hookProject(project)),
        object_attributes: {
          id: note.id,
          note: note.body,
          noteable_type: 'MergeRequest',
          author_id: note.authorId,
          created_at: note.createdAt,
          updated_at: note.updatedAt,
          project_id: project.id,
          noteable_id: mr.id,
          system: note.system,
          internal: note.internal,
          action,
          type: null,
          url: `${web}/-/merge_requests/${mr.iid}#note_${note.id}`,
        },
        merge_request: await this.presenters.hookMergeRequest(project, mr),
      };
    });
  }
}

function repository(project: Record<string, unknown>) {
  return {
    name: project.name,
    url: project.git_http_url,
    description: project.description,
    homepage: project.web_url,
    git_http_url: project.git_http_url,
    visibility_level: project.visibility_level,
  };
}

function hookUuid(hook: Hook): string {
  const hex = hook.id.toString(16).padStart(12, '0');
  return `00000000-0000-4000-8000-${hex}`;
}

/**
 * Standard Webhooks signature headers, as GitLab sends them for a hook with a signing
 * token: HMAC-SHA256 over `{webhook-id}.{timestamp}.{body}`, keyed with the token's bytes.
 */
export function signatureHeaders(
  signingToken: string,
  id: string,
  body: string,
  timestamp = Math.floor(Date.now() / 1000),
): Record<string, string> {
  const key = Buffer.from(signingToken.replace(/^whsec_/, ''), 'base64');
  const mac = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${mac}` };
}
