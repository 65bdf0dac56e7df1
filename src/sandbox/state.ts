// Everything the sandbox knows besides git: users, projects, members, merge requests,
// notes, approvals, statuses and hooks. Kept in memory and, when the sandbox has a data
// folder, persisted as one JSON file written atomically (write + rename) after each change.
import { readFile, rename, writeFile } from 'node:fs/promises';

export const AccessLevel = {
  NONE: 0,
  MINIMAL: 5,
  GUEST: 10,
  PLANNER: 15,
  REPORTER: 20,
  DEVELOPER: 30,
  MAINTAINER: 40,
  OWNER: 50,
  ADMIN: 60,
} as const;

export interface User {
  id: number;
  username: string;
  name: string;
  email: string;
  isAdmin: boolean;
  bot: boolean;
  token: string;
  createdAt: string;
}

export interface Project {
  id: number;
  name: string;
  path: string;
  namespace: string;
  description: string;
  defaultBranch: string;
  visibility: 'private' | 'internal' | 'public';
  onlyAllowMergeIfPipelineSucceeds: boolean;
  removeSourceBranchAfterMerge: boolean;
  /** protected branches besides the default branch (which is protected with 40/40) */
  protectedBranches?: Record<string, Protection>;
  /** the id of the default branch's protection, which GitLab keeps as a protected branch */
  defaultProtectionId?: number;
  /** GitLab's approval setting merge_requests_author_approval (off by default) */
  authorApproval?: boolean;
  /** user id → access level */
  members: Record<string, number>;
  nextMrIid: number;
  createdAt: string;
}

export interface Protection {
  /** GitLab's protected branch id (older state files have none; assigned when first shown) */
  id?: number;
  pushAccessLevel: number;
  mergeAccessLevel: number;
  /** users allowed to push whatever their role (GitLab's allowed_to_push user_id) */
  pushUserIds: number[];
}

export interface MrVersion {
  id: number;
  headCommitSha: string;
  baseCommitSha: string;
  startCommitSha: string;
  createdAt: string;
}

export interface Approval {
  userId: number;
  approvedAt: string;
  sha: string;
}

export interface MergeRequest {
  id: number;
  iid: number;
  projectId: number;
  title: string;
  description: string;
  state: 'opened' | 'closed' | 'merged' | 'locked';
  sourceBranch: string;
  targetBranch: string;
  authorId: number;
  assigneeIds: number[];
  reviewerIds: number[];
  labels: string[];
  removeSourceBranch: boolean;
  squash: boolean;
  discussionLocked: boolean;
  /** the source branch head as last seen; kept after the branch is deleted */
  sha: string;
  mergeCommitSha: string | null;
  mergedById: number | null;
  mergedAt: string | null;
  closedById: number | null;
  closedAt: string | null;
  createdAt: string;
  updatedAt: string;
  versions: MrVersion[];
  approvals: Approval[];
}

export interface Note {
  id: number;
  projectId: number;
  mrIid: number;
  body: string;
  authorId: number;
  system: boolean;
  internal: boolean;
  createdAt: string;
  updatedAt: string;
}

/**
 * A project event, as GitLab's `events` table keeps it. The sandbox records push events
 * only (action `pushed`, with GitLab's push_event_payloads row in `push`).
 */
export interface ProjectEvent {
  id: number;
  projectId: number;
  /** who pushed: the API user, or the user authenticated for `git push` */
  authorId: number;
  action: 'pushed';
  createdAt: string;
  push: PushPayload;
}

export interface PushPayload {
  commitCount: number;
  action: 'pushed' | 'created' | 'removed';
  refType: 'branch';
  /** null for a new branch and for a bulk push */
  commitFrom: string | null;
  /** null for a deleted branch and for a bulk push */
  commitTo: string | null;
  /** the branch name without refs/heads/; null for a bulk push */
  ref: string | null;
  /** the newest pushed commit's first line, at most 70 characters */
  commitTitle: string | null;
  /** how many refs a bulk push (more than 3 branches of one kind in one push) moved */
  refCount: number | null;
}

export interface CommitStatus {
  id: number;
  projectId: number;
  sha: string;
  ref: string | null;
  name: string;
  state: string;
  targetUrl: string | null;
  description: string | null;
  pipelineId: number;
  authorId: number;
  createdAt: string;
  finishedAt: string | null;
  /** a newer status of the same name in the same pipeline was written (GitLab's `retried`) */
  retried?: boolean;
}

export interface Hook {
  id: number;
  projectId: number;
  url: string;
  token: string | null;
  /** Standard Webhooks signing key, `whsec_<base64>`; never shown in API answers */
  signingToken?: string | null;
  pushEvents: boolean;
  mergeRequestsEvents: boolean;
  noteEvents: boolean;
  pipelineEvents: boolean;
  enableSslVerification: boolean;
  createdAt: string;
}

/** A group: only its members matter here (approval rules may name groups). */
export interface Group {
  id: number;
  name: string;
  path: string;
  visibility: 'private' | 'internal' | 'public';
  /** user id → access level */
  members: Record<string, number>;
  createdAt: string;
}

export interface CommitComment {
  id: number;
  projectId: number;
  sha: string;
  note: string;
  authorId: number;
  createdAt: string;
}

export interface JobToken {
  token: string;
  userId: number;
  projectId: number;
}

/** A GitLab environment (Environment model): found or created by name on a deployment. */
export interface Environment {
  id: number;
  projectId: number;
  name: string;
  /** Gitlab::Slug::Environment of the name, fixed at creation */
  slug: string;
  tier: 'production' | 'staging' | 'testing' | 'development' | 'other';
  externalUrl: string | null;
  description: string | null;
  state: 'available' | 'stopping' | 'stopped';
  createdAt: string;
  updatedAt: string;
}

/** A deployment written through the Deployments API (no CI job: `deployable` is null). */
export interface Deployment {
  id: number;
  /** per project, as GitLab's AtomicInternalId */
  iid: number;
  projectId: number;
  environmentId: number;
  ref: string;
  tag: boolean;
  sha: string;
  status: 'created' | 'running' | 'success' | 'failed' | 'canceled' | 'blocked' | 'skipped';
  userId: number;
  createdAt: string;
  updatedAt: string;
  /** set on success, failed, canceled, skipped (GitLab's column; its API entity does not show it) */
  finishedAt: string | null;
}

export interface StateData {
  version: 1;
  nextId: Record<string, number>;
  users: User[];
  projects: Project[];
  mergeRequests: MergeRequest[];
  notes: Note[];
  statuses: CommitStatus[];
  hooks: Hook[];
  jobTokens: JobToken[];
  commitComments?: CommitComment[];
  groups?: Group[];
  events?: ProjectEvent[];
  environments?: Environment[];
  deployments?: Deployment[];
}

export function emptyState(): StateData {
  return {
    version: 1,
    nextId: {},
    users: [],
    projects: [],
    mergeRequests: [],
    notes: [],
    statuses: [],
    hooks: [],
    jobTokens: [],
  };
}

export class Store {
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(
    readonly data: StateData,
    private readonly file: string | null,
  ) {}

  static async load(file: string | null): Promise<Store> {
    if (file) {
      try {
        const data = JSON.parse(await readFile(file, 'utf8')) as StateData;
        return new Store(data, file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    return new Store(emptyState(), file);
  }

  nextId(kind: string): number {
    const id = (this.data.nextId[kind] ?? 0) + 1;
    this.data.nextId[kind] = id;
    return id;
  }

  /** Schedules a write of the whole state; writes coalesce, so a burst costs one or two. */
  changed(): void {
    if (!this.file || this.stopped) return;
    if (this.dirty) return;
    this.dirty = true;
    this.writing = this.writing.then(async () => {
      this.dirty = false;
      const tmp = `${this.file}.tmp`;
      await writeFile(tmp, JSON.stringify(this.data));
      await rename(tmp, this.file!);
    });
  }

  flush(): Promise<void> {
    return this.writing;
  }

  /** No more writes (the sandbox is closing): a request still finishing cannot write into a removed folder. */
  private stopped = false;
  async stop(): Promise<void> {
    await this.writing;
    this.stopped = true;
    await this.writing;
  }

  user(id: number): User | undefined {
    return this.data.users.find((u) => u.id === id);
  }

  userByToken(token: string): User | undefined {
    return this.data.users.find((u) => u.token === token);
  }

  userByName(username: string): User | undefined {
    const lower = username.toLowerCase();
    return this.data.users.find((u) => u.username.toLowerCase() === lower);
  }

  project(idOrPath: string): Project | undefined {
    if (/^\d+$/.test(idOrPath)) return this.data.projects.find((p) => p.id === Number(idOrPath));
    const lower = idOrPath.toLowerCase();
    return this.data.projects.find((p) => `${p.namespace}/${p.path}`.toLowerCase() === lower);
  }

  group(idOrPath: string): Group | undefined {
    const groups = this.data.groups ?? [];
    if (/^\d+$/.test(idOrPath)) return groups.find((g) => g.id === Number(idOrPath));
    const lower = idOrPath.toLowerCase();
    return groups.find((g) => g.path.toLowerCase() === lower);
  }

  mergeRequest(projectId: number, iid: number): MergeRequest | undefined {
    return this.data.mergeRequests.find((m) => m.projectId === projectId && m.iid === iid);
  }
}
