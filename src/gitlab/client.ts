// Every GitLab call gitops-bot makes goes through here, over @gitbeaker/rest. Each method
// is one HTTP request (lists are capped at one page), so `requests` is an exact count and
// the request budget of a promotion can be read off the code.
import { randomBytes } from 'node:crypto';
import * as gitbeaker from '@gitbeaker/rest';
import { GitbeakerRequestError, GitbeakerTimeoutError, type Gitlab } from '@gitbeaker/rest';
import { log } from '../base/log.js';
import { networkErrorMessage, origin } from '../base/network-error.js';
import { DEFAULT_RETRY, type Repeat, type RetryPolicy, withRetry } from '../base/retry.js';
import { fastForward, GIT_REQUESTS_PER_PUSH, replaceRef } from './git-push.js';
import { isPushNote } from './push-notes.js';
import { countingRequesterFn } from './transport.js';

/**
 * A file over the size limit (16 MiB, promote's MAX_MANIFEST_BYTES): refused without reading
 * it into memory, from GitLab's size header or by stopping the download at the limit.
 */
export class FileTooLargeError extends Error {
  override name = 'FileTooLargeError';
  /** the limit on every file `serve` reads (the same as promote's manifests) */
  static readonly MAX_BYTES = 16 * 1024 * 1024;
  constructor(
    readonly path: string,
    readonly ref: string,
    readonly limit: number,
    /** the size GitLab announced, or null when the download was cut at the limit */
    readonly size: number | null,
  ) {
    super(
      `${path} at ${ref}: ${size === null ? 'more than' : `${size} bytes is over`} the ${
        limit >= 1024 * 1024 ? `${limit / 1024 / 1024} MiB` : `${limit} bytes`
      } limit for a file gitops-bot reads`,
    );
  }
}

export class GitLabError extends Error {
  override name = 'GitLabError';
  constructor(
    message: string,
    /** HTTP status, 0 for network errors and timeouts */
    readonly status: number,
    /** GitLab's own message */
    readonly gitlabMessage: string,
  ) {
    super(message);
  }
}

export interface FileAtRef {
  path: string;
  content: Buffer;
  lastCommitId: string;
  commitId: string;
  blobId: string;
}

export interface MergeRequest {
  iid: number;
  webUrl: string;
  sha: string;
  title: string;
  description: string;
  sourceBranch: string;
  targetBranch: string;
  userNotesCount: number;
  assignees: Array<{ id: number; username: string }>;
  reviewers: Array<{ id: number; username: string }>;
  labels: string[];
  /** who opened it (gitops-bot, for its own proposals) */
  authorUsername: string;
}

export interface Note {
  id: number;
  body: string;
  /** the author's username */
  author: string;
  authorId: number;
  /** GitLab's own notes ("added 1 commit"): their author is who did it, not free text */
  system: boolean;
  createdAt: string;
}

/** GitLab's push system note on an MR: who pushed which commits (GitLab's record, not git's). */
export interface PushNote {
  username: string;
  userId: number;
  at: string;
  body: string;
}

/** A GitLab deployment, as plain data (GitLab's Deployment entity). */
export interface DeploymentInfo {
  id: number;
  iid: number;
  sha: string;
  ref: string;
  status: 'created' | 'running' | 'success' | 'failed' | 'canceled' | 'blocked' | 'skipped';
  /** the environment's name (`production/helloworld`) */
  environment: string;
  createdAt: string;
  /** for a finished deployment, when it finished (GitLab's entity has no finished_at field) */
  updatedAt: string;
  /** null unless GitLab's answer carries `finished_at` (its public entity does not) */
  finishedAt: string | null;
  /** who created it (GitLab's `user`): only the bot's own deployments count as its records */
  user: { id: number; username: string } | null;
}

/** A GitLab environment; `lastDeployment` only from the single GET (undefined from lists). */
export interface EnvironmentInfo {
  id: number;
  name: string;
  /** available, stopping, stopped */
  state: string;
  lastDeployment?: DeploymentInfo | null;
}

export interface CommitAction {
  action: 'create' | 'update' | 'delete';
  filePath: string;
  content?: string;
  lastCommitId?: string;
}

export interface GitLabOptions {
  url: string;
  token: string;
  /** per-request timeout, ms (default 30 s) */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** told about each retry (the CLI prints them as progress) */
  onRetry?: (what: string, info: { attempt: number; delayMs: number; reason: string }) => void;
}

// biome-ignore lint/suspicious/noExplicitAny: GitLab JSON, read field by field at this boundary
type Raw = Record<string, any>;

function toMergeRequest(m: Raw): MergeRequest {
  const people = (xs: unknown) =>
    (Array.isArray(xs) ? xs : []).map((u: Raw) => ({ id: Number(u.id), username: String(u.username) }));
  return {
    iid: Number(m.iid),
    webUrl: String(m.web_url),
    sha: String(m.sha),
    title: String(m.title),
    description: String(m.description ?? ''),
    sourceBranch: String(m.source_branch),
    targetBranch: String(m.target_branch),
    userNotesCount: Number(m.user_notes_count ?? 0),
    assignees: people(m.assignees),
    reviewers: people(m.reviewers),
    labels: Array.isArray(m.labels) ? m.labels.map(String) : [],
    authorUsername: String(m.author?.username ?? ''),
  };
}

type Api = InstanceType<typeof Gitlab<false>>;

/**
 * gitbeaker's `Gitlab`, with each resource (MergeRequests, Commits…) made on first use:
 * `new Gitlab()` builds all ~200 of them with a requester each, a few ms of every fresh
 * process that then uses a dozen.
 */
function lazyResources(options: Record<string, unknown>): Api {
  const made = new Map<string, unknown>();
  const classes = gitbeaker as unknown as Record<string, new (o: unknown) => unknown>;
  return new Proxy({} as Api, {
    get(_, name) {
      if (typeof name !== 'string') return undefined;
      let resource = made.get(name);
      if (resource === undefined) {
        const Resource = classes[name];
        if (typeof Resource !== 'function') return undefined;
        resource = new Resource(options);
        made.set(name, resource);
      }
      return resource;
    },
  });
}

// gitbeaker's client-side rate limiter is off (rateLimits: {}): it re-parses its endpoint
// globs with picomatch on every request, a measurable cost in `serve`, and it cannot honour
// GitLab's Retry-After anyway; 429s are GitLab's to send and ours to handle.
export class GitLab {
  /** HTTP requests made so far (each attempt counts) */
  requests = 0;
  /** attempts repeated after a retryable failure */
  retries = 0;
  protected readonly api: Api;
  private readonly policy: RetryPolicy;

  constructor(readonly opts: GitLabOptions) {
    this.api = lazyResources({
      host: opts.url,
      token: opts.token,
      queryTimeout: opts.timeoutMs ?? 30_000,
      rateLimits: {},
      requesterFn: countingRequesterFn(() => {
        this.requests++;
      }),
    });
    this.policy = { ...DEFAULT_RETRY, ...opts.retry };
  }

  /**
   * One GitLab call under the retry policy; turns gitbeaker's errors into GitLabError with
   * a message for people. Reads are `safe` to repeat; every write says how (see retry.ts).
   */
  protected async call<T>(what: string, fn: () => Promise<T>, repeat: Repeat<T> = 'safe'): Promise<T> {
    try {
      return await withRetry(fn, repeat, this.policy, {
        onRetry: (info) => {
          this.retries++;
          log.warn({ call: what, ...info }, 'GitLab call failed; retrying');
          this.opts.onRetry?.(what, info);
        },
      });
    } catch (e) {
      throw toGitLabError(what, e, this.opts.url);
    }
  }

  /** GitLab's base URL, for links the bot writes (never with credentials). */
  get webUrl(): string {
    return this.opts.url.replace(/\/+$/, '');
  }

  async projectDefaultBranch(project: string): Promise<string> {
    const p = (await this.call(`read project ${project}`, () => this.api.Projects.show(project))) as Raw;
    return String(p.default_branch);
  }

  /** The file at `ref`, or null when the project has no such file there. */
  async readFile(project: string, path: string, ref: string): Promise<FileAtRef | null> {
    return orNull(
      async () => {
        const f = (await this.call(`read ${path} at ${ref} of ${project}`, () =>
          this.api.RepositoryFiles.show(project, path, ref),
        )) as Raw;
        return {
          path,
          content: Buffer.from(String(f.content), 'base64'),
          lastCommitId: String(f.last_commit_id),
          commitId: String(f.commit_id),
          blobId: String(f.blob_id),
        };
      },
      (e) => e.status === 404 && /File Not Found|Commit Not Found/i.test(e.gitlabMessage),
    );
  }

  /** The paths of the files at `ref` (all pages, recursive), for an environment's globs. */
  async listFiles(project: string, ref: string): Promise<string[]> {
    const list = (await this.call(`list the files at ${ref} of ${project}`, () =>
      this.api.Repositories.allRepositoryTrees(project, { ref, recursive: true, perPage: 100 }),
    )) as Raw[];
    return list.filter((e) => e.type === 'blob').map((e) => String(e.path));
  }

  /**
   * The merged MRs from `sourceBranch` (gitops-bot's branch of one app and environment),
   * newest merge first: one page of `perPage`. Their records say what was promoted and
   * rolled back there.
   */
  async mergedMergeRequests(
    project: string,
    sourceBranch: string,
    // one page, by updated_at (a comment on an old MR moves it up): a full page keeps the
    // rollbacks of a busy branch in view
    perPage = 100,
  ): Promise<Array<MergeRequest & { mergedAt: string | null }>> {
    const list = (await this.call(`list merged merge requests of ${project} from ${sourceBranch}`, () =>
      this.api.MergeRequests.all({
        projectId: project,
        sourceBranch,
        state: 'merged',
        orderBy: 'updated_at',
        sort: 'desc',
        perPage,
        maxPages: 1,
      }),
    )) as Raw[];
    return list
      .map((m) => ({ ...toMergeRequest(m), mergedAt: m.merged_at ? String(m.merged_at) : null }))
      .sort((a, b) => String(b.mergedAt ?? '').localeCompare(String(a.mergedAt ?? '')));
  }

  async openMergeRequest(project: string, sourceBranch: string): Promise<MergeRequest | null> {
    const raw = await this.openMergeRequestRaw(project, sourceBranch);
    return raw ? toMergeRequest(raw) : null;
  }

  private async openMergeRequestRaw(project: string, sourceBranch: string): Promise<Raw | undefined> {
    const list = (await this.call(`list merge requests of ${project}`, () =>
      this.api.MergeRequests.all({
        projectId: project,
        sourceBranch,
        state: 'opened',
        perPage: 100,
        maxPages: 1,
      }),
    )) as Raw[];
    return list[0];
  }

  /** username → id for the project's members (inherited included), one page of 100. */
  async members(project: string): Promise<Map<string, number>> {
    const list = (await this.call(`list members of ${project}`, () =>
      this.api.ProjectMembers.all(project, { includeInherited: true, perPage: 100, maxPages: 1 }),
    )) as Raw[];
    return new Map(list.map((m) => [String(m.username).toLowerCase(), Number(m.id)]));
  }

  async userId(username: string): Promise<number | null> {
    const list = (await this.call(`look up user ${username}`, () =>
      this.api.Users.all({ username }),
    )) as Raw[];
    return list.length ? Number(list[0].id) : null;
  }

  async createCommit(
    project: string,
    branch: string,
    message: string,
    actions: CommitAction[],
    opts: { startBranch?: string; force?: boolean },
  ): Promise<string> {
    const c = (await this.call(
      `commit to ${branch} of ${project}`,
      () => this.api.Commits.create(project, branch, message, actions, { ...opts, stats: false } as never),
      {
        // Landed if the branch head is this message on top of the start branch's head.
        check: async () => {
          const head = await this.commitInfo(project, branch);
          if (!head || head.message.trim() !== message.trim()) return undefined;
          if (opts.startBranch) {
            const base = await this.commitInfo(project, opts.startBranch);
            if (!base || head.parentIds[0] !== base.id) return undefined;
          }
          return { id: head.id } as Raw;
        },
      },
    )) as Raw;
    return String(c.id);
  }

  /**
   * A branch made of one new commit on top of `startBranch`, written only if the branch is
   * still at `expected` (null: only if it does not exist): a compare-and-swap, which the
   * Commits API's `force` is not. A new branch is one Commits API call (GitLab refuses it
   * when the branch exists). Replacing one commits to a scratch branch through the API (so
   * GitLab authors the commit, as for any other), then moves the branch with an atomic
   * compare-and-swap push that also deletes the scratch branch (git-push.ts: 2 git HTTP
   * requests, no objects transferred, whatever the size of the repository).
   * Returns the new head, or null when someone else moved the branch first.
   */
  async writeBranch(
    project: string,
    branch: string,
    expected: string | null,
    message: string,
    actions: CommitAction[],
    startBranch: string,
  ): Promise<string | null> {
    if (expected === null) {
      try {
        return await this.createCommit(project, branch, message, actions, { startBranch });
      } catch (e) {
        if (e instanceof GitLabError && e.status === 400 && /already exists/.test(e.gitlabMessage))
          return null;
        throw e;
      }
    }
    const scratch = `gitops-bot-next/${branch}/${randomBytes(4).toString('hex')}`;
    const sha = await this.createCommit(project, scratch, message, actions, { startBranch });
    this.requests += GIT_REQUESTS_PER_PUSH; // git's push protocol, outside the API transport
    let moved: 'moved' | 'stale';
    try {
      moved = await replaceRef({
        url: this.opts.url,
        token: this.opts.token,
        project,
        ref: branch,
        sha,
        expected,
        from: scratch,
      });
    } catch (e) {
      await this.deleteBranch(project, scratch).catch(() => {});
      throw new GitLabError(`moving ${branch} of ${project}: ${(e as Error).message}`, 0, '');
    }
    if (moved === 'stale') await this.deleteBranch(project, scratch);
    return moved === 'moved' ? sha : null;
  }

  async branchHead(project: string, branch: string): Promise<string | null> {
    return orNull(async () => {
      const b = (await this.call(`read branch ${branch}`, () =>
        this.api.Branches.show(project, branch),
      )) as Raw;
      return String(b.commit.id);
    });
  }

  /** Deletes a branch; one that is already gone is fine. */
  async deleteBranch(project: string, branch: string): Promise<void> {
    await orNull(() => this.call(`delete branch ${branch}`, () => this.api.Branches.remove(project, branch)));
  }

  /** A commit's id, message and parents; null when the ref does not exist. */
  async commitInfo(
    project: string,
    ref: string,
  ): Promise<{ id: string; message: string; parentIds: string[] } | null> {
    return orNull(async () => {
      const c = (await this.call(`read commit ${ref} of ${project}`, () =>
        this.api.Commits.show(project, ref),
      )) as Raw;
      return {
        id: String(c.id),
        message: String(c.message ?? ''),
        parentIds: (c.parent_ids ?? []).map(String),
      };
    });
  }

  async createMergeRequest(
    project: string,
    mr: {
      sourceBranch: string;
      targetBranch: string;
      title: string;
      description: string;
      assigneeIds: number[];
      reviewerIds: number[];
      labels: string[];
    },
  ): Promise<MergeRequest> {
    const m = (await this.call(
      `open a merge request in ${project}`,
      () =>
        this.api.MergeRequests.create(project, mr.sourceBranch, mr.targetBranch, mr.title, {
          description: mr.description,
          assigneeIds: mr.assigneeIds,
          reviewerIds: mr.reviewerIds,
          labels: mr.labels.join(','),
          removeSourceBranch: true,
        }),
      {
        // GitLab allows one open MR per source and target branch: if it is there, it is ours.
        check: async () => {
          const open = await this.openMergeRequestRaw(project, mr.sourceBranch);
          return open?.target_branch === mr.targetBranch ? open : undefined;
        },
      },
    )) as Raw;
    return toMergeRequest(m);
  }

  async updateMergeRequest(
    project: string,
    iid: number,
    changes: {
      title?: string;
      description?: string;
      addLabels?: string[];
      removeLabels?: string[];
      assigneeIds?: number[];
      reviewerIds?: number[];
      stateEvent?: 'close';
    },
  ): Promise<MergeRequest> {
    const m = (await this.call(`update !${iid} of ${project}`, () =>
      this.api.MergeRequests.edit(project, iid, {
        ...(changes.title !== undefined ? { title: changes.title } : {}),
        ...(changes.description !== undefined ? { description: changes.description } : {}),
        ...(changes.addLabels?.length ? { addLabels: changes.addLabels.join(',') } : {}),
        ...(changes.removeLabels?.length ? { removeLabels: changes.removeLabels.join(',') } : {}),
        ...(changes.assigneeIds ? { assigneeIds: changes.assigneeIds } : {}),
        ...(changes.reviewerIds ? { reviewerIds: changes.reviewerIds } : {}),
        ...(changes.stateEvent ? { stateEvent: changes.stateEvent } : {}),
      }),
    )) as Raw;
    return toMergeRequest(m);
  }

  /**
   * The commits from `from` to `to` in `project`, oldest first (GitLab's compare: from the
   * merge base), with GitLab's link to the comparison. Null when either commit is unknown
   * there; a project the token cannot read is a GitLabError 404.
   */
  async compare(
    project: string,
    from: string,
    to: string,
  ): Promise<{
    webUrl: string;
    commits: Array<{ id: string; title: string; message: string; webUrl: string; parentIds: string[] }>;
    /** the paths the comparison changes (old and new names) */
    paths: string[];
  } | null> {
    return orNull(
      async () => {
        const c = (await this.call(`compare ${from.slice(0, 8)}...${to.slice(0, 8)} in ${project}`, () =>
          this.api.Repositories.compare(project, from, to),
        )) as Raw;
        return {
          webUrl: String(c.web_url ?? ''),
          commits: ((c.commits ?? []) as Raw[]).map((x) => ({
            id: String(x.id),
            title: String(x.title ?? ''),
            message: String(x.message ?? ''),
            webUrl: String(x.web_url ?? ''),
            parentIds: ((x.parent_ids ?? []) as unknown[]).map(String),
          })),
          paths: [
            ...new Set(((c.diffs ?? []) as Raw[]).flatMap((d) => [String(d.old_path), String(d.new_path)])),
          ],
        };
      },
      (e) => e.status === 404 && /Ref|Commit/i.test(e.gitlabMessage),
    );
  }

  /** The first 100 notes, oldest first: the bot's sticky comment is among the first. */
  async notes(project: string, iid: number): Promise<Note[]> {
    return this.notePage(project, iid, 'asc', `list comments of !${iid}`);
  }

  /** One page of 100 notes of an MR, by creation time. */
  private async notePage(project: string, iid: number, sort: 'asc' | 'desc', what: string): Promise<Note[]> {
    const list = (await this.call(what, () =>
      this.api.MergeRequestNotes.all(project, iid, {
        sort,
        orderBy: 'created_at',
        perPage: 100,
        maxPages: 1,
      }),
    )) as Raw[];
    return list.map(toNote);
  }

  /**
   * GitLab's "added N commits" system notes of an MR, newest first (one page of 100): who
   * pushed to its source branch since it was opened, as GitLab recorded it.
   */
  async pushNotes(project: string, iid: number): Promise<PushNote[]> {
    return (await this.notePage(project, iid, 'desc', `list pushes to !${iid}`))
      .filter((n) => n.system && isPushNote(n.body))
      .map((n) => ({ username: n.author, userId: n.authorId, at: n.createdAt, body: n.body }));
  }

  async createNote(project: string, iid: number, body: string): Promise<number> {
    const n = (await this.call(
      `comment on !${iid}`,
      () => this.api.MergeRequestNotes.create(project, iid, body),
      {
        // The bot's comments carry a marker and the commit they describe: an equal body is ours.
        check: async () => {
          const found = (await this.notes(project, iid)).find((x) => x.body === body);
          return found ? ({ id: found.id } as Raw) : undefined;
        },
      },
    )) as Raw;
    return Number(n.id);
  }

  /** The head commit of a merge request. */
  async mergeRequest(project: string, iid: number): Promise<MergeRequestDetail> {
    const m = (await this.call(`read !${iid} of ${project}`, () =>
      this.api.MergeRequests.show(project, iid),
    )) as Raw;
    return {
      ...toMergeRequest(m),
      state: String(m.state),
      draft: !!(m.draft ?? m.work_in_progress),
      author: { id: Number(m.author?.id), username: String(m.author?.username) },
      mergeCommitSha: (m.merge_commit_sha as string) ?? null,
      mergedBy: (m.merged_by?.username as string) ?? null,
      baseSha: (m.diff_refs?.base_sha as string) ?? null,
      mergedById: m.merged_by?.id ? Number(m.merged_by.id) : null,
      mergedAt: (m.merged_at as string) ?? null,
    };
  }
  /** Deletes a note; one already gone is fine (another run deleted it). */
  async deleteNote(project: string, iid: number, noteId: number): Promise<void> {
    await orNull(() =>
      this.call(`delete a comment on !${iid}`, () => this.api.MergeRequestNotes.remove(project, iid, noteId)),
    );
  }

  async updateNote(project: string, iid: number, noteId: number, body: string): Promise<void> {
    await this.call(`edit the comment on !${iid}`, () =>
      this.api.MergeRequestNotes.edit(project, iid, noteId, { body }),
    );
  }

  // ---- Deployments and Environments (issue 17: what the in-cluster agent did, told to GitLab) ----

  /**
   * One page of the project's deployments (newest first unless `sort` says otherwise), filtered
   * by environment name and status. GitLab pairs `order_by=finished_at` with a `finished_*`
   * filter and that filter with `status=success` (else 400): for finished_at ordering this
   * sends `finished_after` = `finishedAfter` or the epoch, and the caller passes status success.
   */
  async listDeployments(
    project: string,
    q: {
      environment?: string;
      status?: DeploymentInfo['status'];
      orderBy?: 'id' | 'updated_at' | 'finished_at';
      sort?: 'asc' | 'desc';
      perPage?: number;
      /** ISO 8601; only with orderBy finished_at */
      finishedAfter?: string;
    },
  ): Promise<DeploymentInfo[]> {
    const list = (await this.call(
      `list deployments of ${project}${q.environment ? ` in ${q.environment}` : ''}`,
      () =>
        this.api.Deployments.all(project, {
          ...(q.environment ? { environment: q.environment } : {}),
          ...(q.status ? { status: q.status } : {}),
          orderBy: q.orderBy ?? 'id',
          ...(q.orderBy === 'finished_at'
            ? { finishedAfter: q.finishedAfter ?? '1970-01-01T00:00:00Z' }
            : {}),
          sort: q.sort ?? 'desc',
          perPage: q.perPage ?? 20,
          maxPages: 1,
        } as never),
    )) as Raw[];
    return list.map(toDeploymentInfo);
  }

  /**
   * A deployment of `sha` (at branch `ref`) to `environment`, which GitLab creates on first
   * use. On repeat GitLab creates another deployment, except when the environment's last
   * successful deployment has the same ref, sha and status: that one is returned instead. So
   * callers look for an existing deployment of the revision first (listDeployments); a
   * retried request after a lost answer is checked the same way before it is sent again.
   */
  async createDeployment(
    project: string,
    d: { environment: string; sha: string; ref: string; status: 'running' | 'success' | 'failed' },
  ): Promise<DeploymentInfo> {
    const raw = (await this.call(
      `create a ${d.status} deployment of ${d.sha.slice(0, 8)} in ${d.environment}`,
      () => this.api.Deployments.create(project, d.environment, d.sha, d.ref, false, { status: d.status }),
      {
        check: async () => {
          const [newest] = (await this.call(`list deployments in ${d.environment}`, () =>
            this.api.Deployments.all(project, {
              environment: d.environment,
              orderBy: 'id',
              sort: 'desc',
              perPage: 1,
              maxPages: 1,
            } as never),
          )) as Raw[];
          return newest && newest.sha === d.sha && newest.ref === d.ref && newest.status === d.status
            ? newest
            : undefined;
        },
      },
    )) as Raw;
    return toDeploymentInfo(raw);
  }

  /**
   * Moves deployment `id` to `status`. GitLab refuses (400, `{"status":["cannot transition
   * via \"run\""]}`) a repeat of the current status (success → success too) and running
   * after created/blocked only; a finished deployment may still become another finished
   * status (success → failed). A retry after a lost answer reads the deployment back instead
   * of repeating the PUT. Deployments created by CI jobs cannot be updated here (403).
   */
  async updateDeployment(
    project: string,
    id: number,
    status: 'running' | 'success' | 'failed' | 'canceled',
  ): Promise<DeploymentInfo> {
    const raw = (await this.call(
      `set deployment ${id} to ${status}`,
      () => this.api.Deployments.edit(project, id, status),
      {
        check: async () => {
          const now = (await this.call(`read deployment ${id}`, () =>
            this.api.Deployments.show(project, id),
          )) as Raw;
          return now.status === status ? now : undefined;
        },
      },
    )) as Raw;
    return toDeploymentInfo(raw);
  }

  /**
   * The project's environments (one page of 100), by exact `name` or a `search` (GitLab
   * wants at least 3 characters and not both). GitLab's list has no last deployment; each
   * environment's `lastDeployment` is filled only when `withLastDeployment` is set, at one
   * more request per environment (the single GET is the only place GitLab shows it).
   */
  async listEnvironments(
    project: string,
    q: { search?: string; name?: string; withLastDeployment?: boolean } = {},
  ): Promise<EnvironmentInfo[]> {
    const list = (await this.call(`list environments of ${project}`, () =>
      this.api.Environments.all(project, {
        ...(q.name ? { name: q.name } : q.search ? { search: q.search } : {}),
        perPage: 100,
        maxPages: 1,
      } as never),
    )) as Raw[];
    const envs = list.map(toEnvironmentInfo);
    if (!q.withLastDeployment) return envs;
    return Promise.all(envs.map((e) => this.environment(project, e.id)));
  }

  /** One environment with its last deployment (null when it has none). */
  async environment(project: string, id: number): Promise<EnvironmentInfo> {
    const raw = (await this.call(`read environment ${id} of ${project}`, () =>
      this.api.Environments.show(project, id),
    )) as Raw;
    return toEnvironmentInfo(raw);
  }
}

export interface MergeRequestDetail extends MergeRequest {
  state: string;
  draft: boolean;
  author: { id: number; username: string };
  mergeCommitSha: string | null;
  mergedBy: string | null;
  /** the merge base the MR's latest diff version is computed from (diff_refs.base_sha) */
  baseSha: string | null;
  mergedById: number | null;
  mergedAt: string | null;
}

export interface Approval {
  user: { id: number; username: string };
  approvedAt: string;
}

export interface UserInfo {
  id: number;
  username: string;
  name: string;
  bot: boolean;
  email: string | null;
}

/** Calls the gate and the webhook server need; one request each, lists paginated in full. */
export class GitLabGate extends GitLab {
  private readonly userCache = new Map<number, UserInfo>();

  async currentUser(): Promise<UserInfo> {
    const u = (await this.call('read the current user', () => this.api.Users.showCurrentUser())) as Raw;
    return {
      id: Number(u.id),
      username: String(u.username),
      name: String(u.name),
      bot: !!u.bot,
      email: u.email ?? null,
    };
  }

  async user(id: number): Promise<UserInfo> {
    const cached = this.userCache.get(id);
    if (cached) return cached;
    const u = (await this.call(`read user ${id}`, () => this.api.Users.show(id))) as Raw;
    const info = {
      id,
      username: String(u.username),
      name: String(u.name),
      bot: !!u.bot,
      email: (u.public_email as string) || null,
    };
    this.userCache.set(id, info);
    return info;
  }

  async approvals(project: string, iid: number): Promise<Approval[]> {
    const a = (await this.call(`read approvals of !${iid}`, () =>
      this.api.MergeRequestApprovals.showConfiguration(project, { mergerequestIId: iid }),
    )) as Raw;
    return ((a.approved_by as Raw[]) ?? []).map((x) => ({
      user: { id: Number(x.user.id), username: String(x.user.username) },
      approvedAt: String(x.approved_at ?? ''),
    }));
  }

  /** When the MR's latest push landed: the newest diff version's server time. */
  async lastPushAt(project: string, iid: number): Promise<string | null> {
    const v = (await this.call(`read versions of !${iid}`, () =>
      this.api.MergeRequests.allDiffVersions(project, iid, { perPage: 1, maxPages: 1 } as never),
    )) as Raw[];
    return v.length ? String(v[0].created_at) : null;
  }

  async changedPaths(project: string, iid: number): Promise<string[]> {
    const diffs = (await this.call(`read changes of !${iid}`, () =>
      this.api.MergeRequests.allDiffs(project, iid),
    )) as Raw[];
    return [...new Set(diffs.flatMap((d) => [String(d.old_path), String(d.new_path)]))];
  }

  async accessLevels(project: string): Promise<Map<number, number>> {
    const list = (await this.call(`list members of ${project}`, () =>
      this.api.ProjectMembers.all(project, { includeInherited: true }),
    )) as Raw[];
    return new Map(list.map((m) => [Number(m.id), Number(m.access_level)]));
  }

  /** User ids of a group's members (inherited ones too); null when it cannot be read. */
  async groupMembers(group: string): Promise<Set<number> | null> {
    return orNull(
      async () => {
        const list = (await this.call(`list members of group ${group}`, () =>
          this.api.GroupMembers.all(group, { includeInherited: true }),
        )) as Raw[];
        return new Set(list.map((m) => Number(m.id)));
      },
      (e) => e.status === 404 || e.status === 403,
    );
  }

  /**
   * A file's text at `ref`; null when there is no such file. Over `limit` bytes (GitLab's
   * X-Gitlab-Size or Content-Length, else counted while streaming) the download stops and
   * FileTooLargeError is thrown: a hostile MR's 50 MB file never sits in memory.
   */
  async rawFile(
    project: string,
    path: string,
    ref: string,
    limit = FileTooLargeError.MAX_BYTES,
  ): Promise<string | null> {
    const read = await orNull(() =>
      this.call(`read ${path} at ${ref}`, async () => {
        const r = (await this.api.RepositoryFiles.showRaw(project, path, ref, {
          asStream: true,
          showExpanded: true,
        } as never)) as unknown as {
          data: ReadableStream<Uint8Array> | null;
          headers: Record<string, string>;
        };
        const announced = Number(r.headers['x-gitlab-size'] ?? r.headers['content-length']);
        if (Number.isFinite(announced) && announced > limit) {
          await r.data?.cancel().catch(() => {});
          return { tooLarge: announced };
        }
        const chunks: Buffer[] = [];
        let size = 0;
        if (r.data) {
          const reader = r.data.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            size += value.byteLength;
            if (size > limit) {
              await reader.cancel().catch(() => {});
              return { tooLarge: null };
            }
            chunks.push(Buffer.from(value));
          }
        }
        return { text: Buffer.concat(chunks, size).toString('utf8') };
      }),
    );
    if (read === null) return null;
    if ('tooLarge' in read) throw new FileTooLargeError(path, ref, limit, read.tooLarge ?? null);
    return read.text;
  }

  /**
   * Posts `state` under `opts.name` on `sha`. GitLab moves the caller's own pending or running
   * status of that name through its state machine, and refuses the same state again (400
   * "Cannot transition status via :enqueue from :pending"), changing nothing. That means
   * "it already says so" only when the newest status of the name is ours in that state
   * (`seen: 'mine'`, from the caller's read-back). Otherwise the refused record is an older
   * one of ours that someone's newer status (a Developer's `success`, say) superseded: it is
   * moved on to `failed` (blocking, same words) so that the second post of `state` makes a
   * new status, the newest. Without `seen` the caller did not read back; the refusal is
   * taken as "already says so".
   */
  async setStatus(
    project: string,
    sha: string,
    state: string,
    opts: { name: string; description: string; targetUrl?: string; seen?: 'mine' | 'other' },
  ) {
    const post = (to: string) =>
      this.call(`set status ${opts.name} on ${sha.slice(0, 8)}`, () =>
        this.api.Commits.editStatus(project, sha, to as never, {
          name: opts.name,
          description: opts.description.slice(0, 255),
          ...(opts.targetUrl ? { targetUrl: opts.targetUrl } : {}),
        }),
      );
    const refused = (e: unknown) =>
      e instanceof GitLabError && e.status === 400 && /Cannot transition status/.test(e.gitlabMessage);
    try {
      await post(state);
    } catch (e) {
      if (!refused(e)) throw e;
      if (opts.seen !== 'other') return;
      await post('failed');
      await post(state);
    }
  }

  async merge(project: string, iid: number, sha: string): Promise<MergeRequestDetail> {
    await this.call(
      `merge !${iid}`,
      () => this.api.MergeRequests.merge(project, iid, { sha, shouldRemoveSourceBranch: true }),
      {
        check: async () => {
          const now = await this.mergeRequest(project, iid);
          return now.state === 'merged' ? ({} as never) : undefined;
        },
      },
    );
    return this.mergeRequest(project, iid);
  }

  async commitMergeRequests(
    project: string,
    sha: string,
  ): Promise<
    Array<{
      iid: number;
      mergeCommitSha: string | null;
      squashCommitSha: string | null;
      sha: string;
      state: string;
      targetBranch: string;
      mergedBy: string | null;
    }>
  > {
    const list = (await this.call(`read merge requests of ${sha.slice(0, 8)}`, () =>
      this.api.Commits.allMergeRequests(project, sha),
    )) as Raw[];
    return list.map((m) => ({
      iid: Number(m.iid),
      mergeCommitSha: (m.merge_commit_sha as string) ?? null,
      squashCommitSha: (m.squash_commit_sha as string) ?? null,
      sha: String(m.sha),
      state: String(m.state),
      targetBranch: String(m.target_branch),
      mergedBy: (m.merged_by?.username as string) ?? null,
    }));
  }

  /** A branch's head and whether it is protected; null when there is no such branch. */
  async branch(project: string, name: string): Promise<{ head: string; protected: boolean } | null> {
    return orNull(async () => {
      const b = (await this.call(`read branch ${name}`, () => this.api.Branches.show(project, name))) as Raw;
      return { head: String(b.commit.id), protected: !!b.protected };
    });
  }

  /**
   * The project's newest push events (one page of 100): who pushed what to which branch, as
   * GitLab recorded it. Reporter access is enough.
   */
  async pushEvents(
    project: string,
  ): Promise<Array<{ username: string; userId: number; ref: string; from: string; to: string; at: string }>> {
    const list = (await this.call(`read push events of ${project}`, () =>
      this.api.Events.all({ projectId: project, action: 'pushed', perPage: 100, maxPages: 1 } as never),
    )) as Raw[];
    return list
      .filter((e) => e.push_data)
      .map((e) => ({
        username: String(e.author_username ?? e.author?.username ?? ''),
        userId: Number(e.author_id ?? e.author?.id ?? 0),
        ref: String(e.push_data.ref ?? ''),
        from: String(e.push_data.commit_from ?? ''),
        to: String(e.push_data.commit_to ?? ''),
        at: String(e.created_at ?? ''),
      }));
  }

  /** An MR's commits, newest first (one page of 100), with their messages. */
  async mergeRequestCommits(project: string, iid: number): Promise<Array<{ id: string; message: string }>> {
    const list = (await this.call(`read commits of !${iid}`, () =>
      this.api.MergeRequests.allCommits(project, iid, { perPage: 100, maxPages: 1 } as never),
    )) as Raw[];
    return list.map((c) => ({ id: String(c.id), message: String(c.message ?? '') }));
  }

  /** The files a commit changes, with GitLab's diff text (a merge commit: against its first parent). */
  async commitDiff(project: string, sha: string): Promise<Array<{ path: string; diff: string }>> {
    const list = (await this.call(`read the diff of ${sha.slice(0, 8)}`, () =>
      this.api.Commits.showDiff(project, sha),
    )) as Raw[];
    return list.map((d) => ({ path: String(d.new_path ?? d.old_path), diff: String(d.diff ?? '') }));
  }

  /** Comments on a commit with their authors, oldest first. */
  async commitNotes(
    project: string,
    sha: string,
  ): Promise<Array<{ username: string; userId: number; body: string; at: string }>> {
    const list = (await this.call(`read comments of ${sha.slice(0, 8)}`, () =>
      this.api.Commits.allComments(project, sha),
    )) as Raw[];
    return list.map((c) => ({
      username: String(c.author?.username ?? ''),
      userId: Number(c.author?.id ?? 0),
      body: String(c.note ?? ''),
      at: String(c.created_at ?? ''),
    }));
  }

  async mergeBase(project: string, a: string, b: string): Promise<string | null> {
    return orNull(
      async () => {
        const c = (await this.call(`merge base of ${a.slice(0, 8)} and ${b.slice(0, 8)}`, () =>
          this.api.Repositories.mergeBase(project, [a, b]),
        )) as Raw;
        return String(c.id);
      },
      (e) => e.status === 404 || e.status === 400,
    );
  }

  /**
   * Moves `ref` forward to `sha` with a compare-and-swap push (git's receive-pack protocol
   * over HTTPS, git-push.ts): never backwards or sideways. `current` is the head read through the
   * API (null: the branch does not exist yet).
   */
  async fastForward(
    project: string,
    ref: string,
    sha: string,
    current: string | null,
  ): Promise<'moved' | 'already' | 'diverged'> {
    if (current === sha) return 'already';
    if (current && (await this.mergeBase(project, current, sha)) !== current) return 'diverged';
    this.requests += GIT_REQUESTS_PER_PUSH; // git's push protocol, outside the API transport
    return fastForward({
      url: this.opts.url,
      token: this.opts.token,
      project,
      ref,
      sha,
      current,
      isAncestor: async () => true,
    });
  }

  async commitComment(project: string, sha: string, note: string): Promise<void> {
    await this.call(
      `comment on ${sha.slice(0, 8)}`,
      () => this.api.Commits.createComment(project, sha, note),
      {
        check: async () =>
          (await this.commitComments(project, sha)).some((c) => c.note === note) ? ({} as never) : undefined,
      },
    );
  }

  /** The comments on commit `sha`, oldest first, with who wrote them (username and id). */
  async commitComments(
    project: string,
    sha: string,
  ): Promise<Array<{ note: string; author: string; authorId: number }>> {
    const list = (await this.call(`read comments of ${sha.slice(0, 8)}`, () =>
      this.api.Commits.allComments(project, sha),
    )) as Raw[];
    return list.map((c) => ({
      note: String(c.note ?? ''),
      author: String(c.author?.username ?? ''),
      authorId: Number(c.author?.id ?? 0),
    }));
  }

  /**
   * Every open MR of `project` (into `targetBranch` only, when given), as plain data: all
   * pages, 100 to a page (one request per 100 MRs). For deciding which MRs an event affects.
   */
  async openMergeRequestList(
    project: string,
    targetBranch?: string,
  ): Promise<Array<{ iid: number; targetBranch: string; sha: string }>> {
    const list = (await this.call(`list open merge requests of ${project} (all pages)`, () =>
      this.api.MergeRequests.all({
        projectId: project,
        state: 'opened',
        perPage: 100,
        ...(targetBranch ? { targetBranch } : {}),
      }),
    )) as Raw[];
    return list.map((m) => ({
      iid: Number(m.iid),
      targetBranch: String(m.target_branch),
      sha: String(m.sha),
    }));
  }

  /**
   * The paths that differ between the trees of `from` and `to` (GitLab's compare with
   * `straight`: from `from` itself, not the merge base, so a force push that drops a change
   * shows it too). Null when GitLab does not know a commit or its diffs overflowed
   * (`compare_timeout`: GitLab caps a compare's diffs at 100 files, 5,000 lines or 500 KiB,
   * and lists only the files before the cap). Other failures throw (after the retries).
   */
  async pathsBetween(project: string, from: string, to: string): Promise<string[] | null> {
    return orNull(
      async () => {
        const c = (await this.call(`compare ${from.slice(0, 8)}..${to.slice(0, 8)} in ${project}`, () =>
          this.api.Repositories.compare(project, from, to, { straight: true }),
        )) as Raw;
        if (c.compare_timeout) return null;
        return [
          ...new Set(((c.diffs ?? []) as Raw[]).flatMap((d) => [String(d.old_path), String(d.new_path)])),
        ];
      },
      (e) => e.status === 404 && /Ref|Commit/i.test(e.gitlabMessage),
    );
  }

  /**
   * The newest commit status named `name` on `sha`. GitLab lists the latest (not retried)
   * status of each name in each of the commit's pipelines, ascending by id, so a commit with
   * several pipelines lists the name several times: the highest id is the newest.
   */
  async commitStatus(
    project: string,
    sha: string,
    name: string,
  ): Promise<{ state: string; description: string; authorId: number } | null> {
    const list = (await this.call(`read status ${name} of ${sha.slice(0, 8)}`, () =>
      this.api.Commits.allStatuses(project, sha, { name }),
    )) as Raw[];
    const s = list
      .filter((x) => x.name === name)
      .reduce<Raw | undefined>(
        (newest, x) => (!newest || Number(x.id) > Number(newest.id) ? x : newest),
        undefined,
      );
    return s
      ? {
          state: String(s.status),
          description: String(s.description ?? ''),
          authorId: Number(s.author?.id ?? 0),
        }
      : null;
  }

  /**
   * The project hook pointing at `url`, created or brought up to date (events, secret,
   * signing token): re-running `serve --register-hook` never adds a second hook.
   */
  async ensureHook(
    project: string,
    url: string,
    secrets: { token?: string; signingToken?: string },
  ): Promise<{ id: number; action: 'created' | 'updated' }> {
    const options = {
      ...(secrets.token ? { token: secrets.token } : {}),
      ...(secrets.signingToken ? { signingToken: secrets.signingToken } : {}),
      pushEvents: true,
      mergeRequestsEvents: true,
      noteEvents: true,
      enableSslVerification: url.startsWith('https:'),
    };
    const hookAt = async () =>
      (
        (await this.call(`list hooks of ${project}`, () =>
          this.api.ProjectHooks.all(project, { perPage: 100 }),
        )) as Raw[]
      ).find((h) => h.url === url);
    const existing = await hookAt();
    if (existing) {
      await this.call(`update hook ${existing.id} of ${project}`, () =>
        this.api.ProjectHooks.edit(project, Number(existing.id), url, options),
      );
      return { id: Number(existing.id), action: 'updated' };
    }
    const h = (await this.call(
      `add a hook to ${project}`,
      () => this.api.ProjectHooks.add(project, url, options),
      {
        check: hookAt,
      },
    )) as Raw;
    return { id: Number(h.id), action: 'created' };
  }
}

/**
 * The call's answer, or null when GitLab answers 404 (and `match`, when given, agrees: e.g.
 * only "File Not Found", not "Project Not Found"). The one place a 404 becomes "absent".
 */
async function orNull<T>(
  fn: () => Promise<T>,
  match: (e: GitLabError) => boolean = (e) => e.status === 404,
): Promise<T | null> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof GitLabError && match(e)) return null;
    throw e;
  }
}

function toNote(n: Raw): Note {
  return {
    id: Number(n.id),
    body: String(n.body ?? ''),
    author: String(n.author?.username ?? ''),
    authorId: Number(n.author?.id ?? 0),
    system: !!n.system,
    createdAt: String(n.created_at ?? ''),
  };
}

function toGitLabError(what: string, e: unknown, url: string): GitLabError {
  if (e instanceof GitLabError) return e;
  if (e instanceof GitbeakerTimeoutError)
    return new GitLabError(`${what}: GitLab at ${origin(url)} did not answer in time`, 0, 'timeout');
  if (e instanceof GitbeakerRequestError) {
    const cause = e.cause as { description?: string; response?: Response } | undefined;
    const status = cause?.response?.status ?? 0;
    // A proxy's error page is HTML: keep its title, not the markup.
    const raw = String(cause?.description ?? e.message);
    const message = /^\s*</.test(raw)
      ? (/<(?:title|h1)>([^<]*)</i.exec(raw)?.[1] ?? 'an HTML error page')
      : raw;
    return new GitLabError(`${what}: ${status} ${message}`, status, message);
  }
  const err = e as Error;
  // "fetch failed" says nothing: name the host and the cause (connection refused, host not found…)
  const why = networkErrorMessage('GitLab', url, e) ?? err.message;
  return new GitLabError(`${what}: ${why}`, 0, err.message);
}

const DEPLOYMENT_STATUSES = new Set([
  'created',
  'running',
  'success',
  'failed',
  'canceled',
  'blocked',
  'skipped',
]);

function toDeploymentInfo(d: Raw): DeploymentInfo {
  const status = String(d.status);
  return {
    id: Number(d.id),
    iid: Number(d.iid),
    sha: String(d.sha),
    ref: String(d.ref),
    status: (DEPLOYMENT_STATUSES.has(status) ? status : 'created') as DeploymentInfo['status'],
    environment: String(d.environment?.name ?? ''),
    createdAt: String(d.created_at ?? ''),
    updatedAt: String(d.updated_at ?? ''),
    finishedAt: typeof d.finished_at === 'string' ? d.finished_at : null,
    user: d.user ? { id: Number(d.user.id), username: String(d.user.username) } : null,
  };
}

function toEnvironmentInfo(e: Raw): EnvironmentInfo {
  return {
    id: Number(e.id),
    name: String(e.name),
    state: String(e.state ?? ''),
    ...('last_deployment' in e
      ? { lastDeployment: e.last_deployment ? toDeploymentInfo(e.last_deployment) : null }
      : {}),
  };
}
