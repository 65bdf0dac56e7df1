// Project hooks: GitLab's headers and payload keys for Push, Merge Request and Note events.
// Deliveries are asynchronous, as in GitLab (Sidekiq), and logged so that tests can wait for
// them (`idle()`) and resend one with the same Idempotency-Key, as "Resend request" does.
import { createHmac, randomUUID } from 'node:crypto';
import type { CommitInfo } from './git.js';
import type { CommitComment, Hook, MergeRequest, Note, Project, Store, User } from './state.js';

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
  /** Commit#hook_attrs: id, message, title, timestamp, url, author */
  hookCommit(p: Project, c: CommitInfo): Record<string, unknown>;
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

  /** The Push Hook: `user_*` name the pusher; `commits` are the newest 20, oldest first. */
  push(
    project: Project,
    user: User,
    push: {
      branch: string;
      before: string;
      after: string;
      commits: CommitInfo[];
      total: number;
      refProtected: boolean;
    },
  ) {
    this.enqueue(project, 'push', 'Push Hook', async () => {
      return {
        object_kind: 'push',
        event_name: 'push',
        before: push.before,
        after: push.after,
        ref: `refs/heads/${push.branch}`,
        ref_protected: push.refProtected,
        checkout_sha: /^0+$/.test(push.after) ? null : push.after,
        message: null,
        user_id: user.id,
        user_name: user.name,
        user_username: user.username,
        user_email: '',
        user_avatar: null,
        project_id: project.id,
        project: this.presenters.hookProject(project),
        commits: push.commits.map((c) => ({
          ...this.presenters.hookCommit(project, c),
          added: [],
          modified: [],
          removed: [],
        })),
        total_commits_count: push.total,
        push_options: {},
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

  /** What every Note Hook starts with: who, and in which project. */
  private noteEnvelope(project: Project, user: User) {
    const p = this.presenters.hookProject(project);
    return {
      object_kind: 'note',
      event_type: 'note',
      user: { ...this.presenters.user(user), email: '[REDACTED]' },
      project_id: project.id,
      project: p,
      repository: repository(p),
    };
  }

  /** The Note Hook of a comment on an MR. GitLab sends none for system notes. */
  note(project: Project, mr: MergeRequest, note: Note, user: User, action: 'create' | 'update') {
    if (note.system) return;
    this.enqueue(project, 'note', 'Note Hook', async () => {
      const web = `${this.baseUrl}/${project.namespace}/${project.path}`;
      return {
        ...this.noteEnvelope(project, user),
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

  /** The Note Hook of a comment on a commit: `commit_id`, and the commit as `commit`. */
  commitNote(project: Project, comment: CommitComment, commit: CommitInfo, user: User) {
    this.enqueue(project, 'note', 'Note Hook', async () => {
      const web = `${this.baseUrl}/${project.namespace}/${project.path}`;
      return {
        ...this.noteEnvelope(project, user),
        object_attributes: {
          id: comment.id,
          note: comment.note,
          noteable_type: 'Commit',
          author_id: comment.authorId,
          created_at: comment.createdAt,
          updated_at: comment.createdAt,
          project_id: project.id,
          attachment: null,
          line_code: null,
          commit_id: comment.sha,
          noteable_id: null,
          system: false,
          st_diff: null,
          internal: false,
          action: 'create',
          type: null,
          url: `${web}/-/commit/${comment.sha}#note_${comment.id}`,
        },
        commit: this.presenters.hookCommit(project, commit),
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
