// Every GitLab call gitops-bot makes goes through here, over @gitbeaker/rest. Each method
// is one HTTP request (lists are capped at one page), so `requests` is an exact count and
// the request budget of a promotion can be read off the code.
import { GitbeakerRequestError, GitbeakerTimeoutError, Gitlab } from '@gitbeaker/rest';

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
}

export interface Note {
  id: number;
  body: string;
  author: string;
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
  /** per-request timeout, ms */
  timeoutMs?: number;
}

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
  };
}

export class GitLab {
  /** HTTP requests made so far */
  requests = 0;
  private readonly api: InstanceType<typeof Gitlab<false>>;

  constructor(readonly opts: GitLabOptions) {
    this.api = new Gitlab({ host: opts.url, token: opts.token, queryTimeout: opts.timeoutMs ?? 30_000 });
  }

  /** Counts the request and turns gitbeaker's errors into GitLabError with a message for people. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.requests++;
    try {
      return await fn();
    } catch (e) {
      throw toGitLabError(what, e);
    }
  }

  async projectDefaultBranch(project: string): Promise<string> {
    const p = (await this.call(`read project ${project}`, () => this.api.Projects.show(project))) as Raw;
    return String(p.default_branch);
  }

  /** The file at `ref`, or null when the project has no such file there. */
  async readFile(project: string, path: string, ref: string): Promise<FileAtRef | null> {
    try {
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
    } catch (e) {
      if (
        e instanceof GitLabError &&
        e.status === 404 &&
        /File Not Found|Commit Not Found/i.test(e.gitlabMessage)
      ) {
        return null;
      }
      throw e;
    }
  }

  async openMergeRequest(project: string, sourceBranch: string): Promise<MergeRequest | null> {
    const list = (await this.call(`list merge requests of ${project}`, () =>
      this.api.MergeRequests.all({
        projectId: project,
        sourceBranch,
        state: 'opened',
        perPage: 100,
        maxPages: 1,
      }),
    )) as Raw[];
    return list.length ? toMergeRequest(list[0]) : null;
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

  async commitMessage(project: string, sha: string): Promise<string> {
    const c = (await this.call(`read commit ${sha.slice(0, 8)} of ${project}`, () =>
      this.api.Commits.show(project, sha),
    )) as Raw;
    return String(c.message ?? '');
  }

  async createCommit(
    project: string,
    branch: string,
    message: string,
    actions: CommitAction[],
    opts: { startBranch?: string; force?: boolean },
  ): Promise<string> {
    const c = (await this.call(`commit to ${branch} of ${project}`, () =>
      this.api.Commits.create(project, branch, message, actions, { ...opts, stats: false } as never),
    )) as Raw;
    return String(c.id);
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
    const m = (await this.call(`open a merge request in ${project}`, () =>
      this.api.MergeRequests.create(project, mr.sourceBranch, mr.targetBranch, mr.title, {
        description: mr.description,
        assigneeIds: mr.assigneeIds,
        reviewerIds: mr.reviewerIds,
        labels: mr.labels.join(','),
        removeSourceBranch: true,
      }),
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
      assigneeIds?: number[];
      reviewerIds?: number[];
    },
  ): Promise<MergeRequest> {
    const m = (await this.call(`update !${iid} of ${project}`, () =>
      this.api.MergeRequests.edit(project, iid, {
        ...(changes.title !== undefined ? { title: changes.title } : {}),
        ...(changes.description !== undefined ? { description: changes.description } : {}),
        ...(changes.addLabels?.length ? { addLabels: changes.addLabels.join(',') } : {}),
        ...(changes.assigneeIds ? { assigneeIds: changes.assigneeIds } : {}),
        ...(changes.reviewerIds ? { reviewerIds: changes.reviewerIds } : {}),
      }),
    )) as Raw;
    return toMergeRequest(m);
  }

  /** The first 100 notes, oldest first: the bot's sticky comment is among the first. */
  async notes(project: string, iid: number): Promise<Note[]> {
    const list = (await this.call(`list comments of !${iid}`, () =>
      this.api.MergeRequestNotes.all(project, iid, {
        sort: 'asc',
        orderBy: 'created_at',
        perPage: 100,
        maxPages: 1,
      }),
    )) as Raw[];
    return list.map((n) => ({
      id: Number(n.id),
      body: String(n.body ?? ''),
      author: String(n.author?.username ?? ''),
    }));
  }

  async createNote(project: string, iid: number, body: string): Promise<number> {
    const n = (await this.call(`comment on !${iid}`, () =>
      this.api.MergeRequestNotes.create(project, iid, body),
    )) as Raw;
    return Number(n.id);
  }

  async updateNote(project: string, iid: number, noteId: number, body: string): Promise<void> {
    await this.call(`edit the comment on !${iid}`, () =>
      this.api.MergeRequestNotes.edit(project, iid, noteId, { body }),
    );
  }
}

function toGitLabError(what: string, e: unknown): GitLabError {
  if (e instanceof GitLabError) return e;
  if (e instanceof GitbeakerTimeoutError)
    return new GitLabError(`${what}: GitLab did not answer in time`, 0, 'timeout');
  if (e instanceof GitbeakerRequestError) {
    const cause = e.cause as { description?: string; response?: Response } | undefined;
    const status = cause?.response?.status ?? 0;
    const message = String(cause?.description ?? e.message);
    return new GitLabError(`${what}: ${status} ${message}`, status, message);
  }
  const err = e as Error & { cause?: { code?: string } };
  return new GitLabError(`${what}: ${err.cause?.code ?? err.message}`, 0, err.message);
}
