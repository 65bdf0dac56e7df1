// The sandbox's domain logic, shared by the REST API and git over HTTP: who may do what,
// how commits, merges and branch moves happen, and the events they raise. Beside it, the
// smaller domain modules: core-merge-requests (open, update, approve), core-statuses (the
// commit-status state machine), core-notes, core-projects (projects, groups, members,
// protected branches, hooks). Route handlers (api-*.ts, one file per GitLab resource)
// parse and check the request, then call one operation here; an operation checks all it
// can refuse before it changes anything.
import { join } from 'node:path';
import {
  ActionError,
  type CommitAction,
  type CommitInfo,
  type FileChange,
  type Identity,
  isValidBranchName,
  Repo,
  ZERO_SHA,
} from './git.js';
import { ApiError, badRequest, conflict, forbidden, notFound, unauthorized } from './http.js';
import { isBlank, noteCommits, pushedCommits, pushNoteBody, pushPayload } from './pushes.js';
import {
  AccessLevel,
  type MergeRequest,
  type Project,
  type Protection,
  type PushPayload,
  type Store,
  type User,
} from './state.js';
import type { Webhooks } from './webhooks.js';

// Refuses pushes to the protected default branch for anyone below Maintainer; the sandbox
// passes the pusher's access level in the environment of `git http-backend`.
export const PRE_RECEIVE_HOOK = `#!/bin/sh
# gitops-bot sandbox: GitLab-style protected branches. The sandbox lists the branches the
# pusher may not push to in SANDBOX_DENIED_BRANCHES (space-separated).
while read old new ref; do
  for b in $SANDBOX_DENIED_BRANCHES; do
    if [ "$ref" = "refs/heads/$b" ]; then
      echo "GitLab: You are not allowed to push code to protected branches on this project." >&2
      exit 1
    fi
  done
  if [ "$ref" = "refs/heads/$SANDBOX_PROTECTED_BRANCH" ] && [ "$new" = "0000000000000000000000000000000000000000" ]; then
    echo "GitLab: You can only delete protected branches using the web interface." >&2
    exit 1
  fi
done
exit 0
`;

/** A per-key async mutex: API writes to one repository are serialised (git stays the arbiter via CAS). */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const next = new Promise<void>((r) => {
      release = r;
    });
    const tail = prev.then(() => next);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** GitLab's push_event_hooks_limit and push_event_activities_limit (both 3 by default). */
const PUSH_EVENT_LIMIT = 3;

export interface RefChange {
  branch: string;
  before: string;
  after: string;
}

export interface CreateCommitInput {
  branch: string;
  message: string;
  actions: Array<CommitAction & { lastCommitId?: string }>;
  startBranch?: string;
  startSha?: string;
  force?: boolean;
  author?: Identity;
}

export class SandboxCore {
  private readonly repos = new Map<number, Repo>();
  /** set by close(): repositories handed out after it are closed too */
  private closed = false;
  private readonly mutex = new KeyedMutex();
  private readonly mergeabilityCache = new Map<string, boolean>();
  baseUrl = '';

  constructor(
    readonly store: Store,
    readonly dataDir: string,
    readonly hooks: Webhooks,
  ) {}

  // ---------- repositories ----------

  repoDir(project: Project): string {
    return join(this.dataDir, 'repos', project.namespace, `${project.path}.git`);
  }

  repo(project: Project): Repo {
    let r = this.repos.get(project.id);
    if (!r) {
      r = new Repo(this.repoDir(project));
      this.repos.set(project.id, r);
      // a request still running after close() gets a closed repo, never a live git process
      if (this.closed) r.close();
    }
    return r;
  }

  async initRepo(project: Project): Promise<Repo> {
    const r = await Repo.init(this.repoDir(project), project.defaultBranch, PRE_RECEIVE_HOOK);
    this.repos.set(project.id, r);
    if (this.closed) r.close();
    return r;
  }

  /** Ends every repository's git processes; the repositories stay closed (see git.ts). */
  close(): void {
    this.closed = true;
    for (const r of this.repos.values()) r.close();
  }

  // ---------- people and permissions ----------

  identity(user: User): Identity {
    return { name: user.name, email: user.email };
  }

  accessLevel(user: User | null, project: Project): number {
    if (!user) return AccessLevel.NONE;
    if (user.isAdmin) return AccessLevel.ADMIN;
    return project.members[String(user.id)] ?? AccessLevel.NONE;
  }

  canRead(user: User | null, project: Project): boolean {
    if (project.visibility === 'public') return true;
    if (!user) return false;
    if (project.visibility === 'internal') return true;
    return this.accessLevel(user, project) >= AccessLevel.GUEST;
  }

  /** The project, or GitLab's 404 when it does not exist or the user cannot see it. */
  project(user: User | null, idOrPath: string): Project {
    const p = this.store.project(idOrPath);
    if (!p || !this.canRead(user, p)) throw notFound('Project');
    return p;
  }

  require(user: User | null, project: Project, level: number): void {
    if (this.accessLevel(user, project) < level) throw forbidden();
  }

  protection(project: Project, branch: string): Protection | null {
    const explicit = project.protectedBranches?.[branch];
    if (explicit) return explicit;
    if (branch === project.defaultBranch) {
      return {
        pushAccessLevel: AccessLevel.MAINTAINER,
        mergeAccessLevel: AccessLevel.MAINTAINER,
        pushUserIds: [],
      };
    }
    return null;
  }

  isProtected(project: Project, branch: string): boolean {
    return this.protection(project, branch) !== null;
  }

  canPush(user: User | null, project: Project, branch: string): boolean {
    const level = this.accessLevel(user, project);
    const p = this.protection(project, branch);
    if (!p) return level >= AccessLevel.DEVELOPER;
    return (
      level >= p.pushAccessLevel ||
      (!!user && p.pushUserIds.includes(user.id) && level >= AccessLevel.DEVELOPER)
    );
  }

  canMerge(user: User | null, project: Project, branch: string): boolean {
    const level = this.accessLevel(user, project);
    const p = this.protection(project, branch);
    return level >= (p ? p.mergeAccessLevel : AccessLevel.DEVELOPER);
  }

  /** Protected branches this user may not push to, for the pre-receive hook. */
  deniedBranches(user: User | null, project: Project): string[] {
    const names = new Set([project.defaultBranch, ...Object.keys(project.protectedBranches ?? {})]);
    return [...names].filter((b) => !this.canPush(user, project, b));
  }

  // ---------- commits ----------

  async createCommit(
    user: User,
    project: Project,
    input: CreateCommitInput,
  ): Promise<{ sha: string; changes: FileChange[] }> {
    if (input.startBranch && input.startSha)
      throw badRequest("You can't pass both start_branch and start_sha");
    const repo = this.repo(project);
    if (!isValidBranchName(input.branch)) throw badRequest('Branch name is invalid');
    if (!this.canPush(user, project, input.branch))
      throw forbidden('You are not allowed to push into this branch');
    return this.mutex.run(`repo:${project.id}`, async () => {
      // git's compare-and-swap is the real guard: a push over HTTP may move the branch
      // between our read and our write, in which case we start again from the new head.
      for (let attempt = 0; attempt < 10; attempt++) {
        const branchSha = await repo.branchHead(input.branch);
        let base: string | null;
        if (input.startBranch || input.startSha) {
          const start = input.startSha
            ? await repo.resolve(input.startSha)
            : await repo.branchHead(input.startBranch ?? '');
          if (!start) {
            throw badRequest(
              input.startSha
                ? `Invalid start sha: ${input.startSha}`
                : `Invalid start branch: ${input.startBranch}`,
            );
          }
          if (branchSha && branchSha !== start && !input.force) {
            throw badRequest(
              `A branch called '${input.branch}' already exists. Switch to that branch in order to make changes`,
            );
          }
          base = input.force ? start : (branchSha ?? start);
        } else if (branchSha) {
          base = branchSha;
        } else if ((await repo.branches()).length === 0) {
          base = null; // empty repository: the first commit creates the branch
        } else {
          throw badRequest('You can only create or edit files when you are on a branch');
        }
        if (base) {
          for (const a of input.actions) {
            if (!a.lastCommitId || !['update', 'move', 'delete'].includes(a.action)) continue;
            const path = a.action === 'move' ? a.previousPath : a.filePath;
            const current = await repo.lastCommitFor(base, path);
            if (!current) continue; // GitLab does not check a file missing on the start branch
            const known = (await repo.resolve(a.lastCommitId))
              ? await repo.lastCommitFor(a.lastCommitId, path)
              : null;
            if (current !== known)
              throw badRequest(`The file has changed since you started editing it: ${path}`);
          }
        }
        let built: { sha: string; changes: FileChange[] };
        try {
          built = await repo.buildCommit(
            base,
            input.actions,
            input.message,
            input.author ?? this.identity(user),
          );
        } catch (e) {
          if (e instanceof ActionError) throw badRequest(e.message);
          throw e;
        }
        if (await repo.updateRef(`refs/heads/${input.branch}`, built.sha, branchSha ?? ZERO_SHA)) {
          await this.refUpdated(user, project, input.branch, branchSha ?? ZERO_SHA, built.sha);
          return built;
        }
      }
      throw new ApiError(409, { message: 'Could not update branch: too many concurrent updates' });
    });
  }

  async createBranch(user: User, project: Project, branch: string, ref: string): Promise<string> {
    this.require(user, project, AccessLevel.DEVELOPER);
    const repo = this.repo(project);
    if (!isValidBranchName(branch)) throw badRequest('Branch name is invalid');
    const sha = await repo.resolve(ref);
    if (!sha) throw badRequest(`Invalid reference name: ${ref}`);
    if (await repo.branchHead(branch)) throw badRequest('Branch already exists');
    if (!(await repo.updateRef(`refs/heads/${branch}`, sha, ZERO_SHA)))
      throw badRequest('Branch already exists');
    await this.refUpdated(user, project, branch, ZERO_SHA, sha);
    return sha;
  }

  async deleteBranch(user: User, project: Project, branch: string): Promise<void> {
    const repo = this.repo(project);
    const sha = await repo.branchHead(branch);
    if (!sha) throw notFound('Branch');
    if (branch === project.defaultBranch)
      throw badRequest('The default branch of a project cannot be deleted.');
    if (!this.canPush(user, project, branch)) throw forbidden();
    if (!(await repo.deleteRef(`refs/heads/${branch}`, sha)))
      throw conflict('Branch was updated concurrently');
    await this.refUpdated(user, project, branch, sha, ZERO_SHA);
  }

  /**
   * Several branches moved by one `git push`, as Git::ProcessRefChangesService takes them:
   * grouped by kind (created, updated, removed); a group of more than three branches sends
   * no push hooks (push_event_hooks_limit) and records one bulk push event instead of one
   * per branch (push_event_activities_limit).
   */
  async refsUpdated(user: User, project: Project, changes: RefChange[]): Promise<void> {
    const kind = (c: RefChange) => (isBlank(c.before) ? 'created' : isBlank(c.after) ? 'removed' : 'pushed');
    const groups = new Map<PushPayload['action'], RefChange[]>();
    for (const c of changes) groups.set(kind(c), [...(groups.get(kind(c)) ?? []), c]);
    for (const [action, group] of groups) {
      const bulk = group.length > PUSH_EVENT_LIMIT;
      for (const c of group) {
        await this.refUpdated(user, project, c.branch, c.before, c.after, { hooks: !bulk, event: !bulk });
      }
      if (bulk) {
        this.recordPush(user, project, {
          commitCount: 0,
          action,
          refType: 'branch',
          commitFrom: null,
          commitTo: null,
          ref: null,
          commitTitle: null,
          refCount: group.length,
        });
      }
    }
  }

  /**
   * Everything that follows a branch move, whoever made it (API, merge or git push): the
   * push event, the merge requests of that source branch (new version, "added N commits"
   * system note by the pusher, Merge Request Hook `update`), the Push Hook.
   */
  async refUpdated(
    user: User,
    project: Project,
    branch: string,
    before: string,
    after: string,
    opts: { hooks?: boolean; event?: boolean } = {},
  ): Promise<void> {
    const repo = this.repo(project);
    const now = new Date().toISOString();
    const pushed = await pushedCommits(repo, project, branch, before, after);
    if (opts.event !== false) {
      this.recordPush(user, project, pushPayload(branch, before, after, pushed.commits, pushed.count));
    }
    for (const mr of this.store.data.mergeRequests) {
      if (mr.projectId !== project.id || mr.state !== 'opened' || mr.sourceBranch !== branch) continue;
      if (after === ZERO_SHA) continue;
      const previousHead = mr.sha;
      mr.sha = after;
      mr.updatedAt = now;
      await this.addVersion(project, mr);
      await this.notifyAboutPush(user, project, mr, previousHead, before, after, pushed);
      this.hooks.mergeRequest(project, mr, user, 'update', { oldrev: before });
    }
    this.store.changed();
    if (opts.hooks === false || !this.hooks.has(project, 'push')) return;
    this.hooks.push(project, user, {
      branch,
      before,
      after,
      // GitLab's Push Hook: the newest 20 commits, oldest first, and the whole count
      commits: pushed.commits.slice(-20),
      total: pushed.count,
      refProtected: this.isProtected(project, branch),
    });
  }

  private recordPush(user: User, project: Project, push: PushPayload): void {
    this.store.data.events ??= [];
    this.store.data.events.push({
      id: this.store.nextId('event'),
      projectId: project.id,
      authorId: user.id,
      action: 'pushed',
      createdAt: new Date().toISOString(),
      push,
    });
  }

  /**
   * MergeRequests::RefreshService#notify_about_push: a system note by the pusher listing the
   * pushed commits (those the MR now has, and those it does not, which came from the target
   * branch). None when the push added no commits (e.g. a reset to an ancestor).
   */
  private async notifyAboutPush(
    user: User,
    project: Project,
    mr: MergeRequest,
    previousHead: string,
    before: string,
    after: string,
    pushed: { commits: CommitInfo[]; count: number },
  ): Promise<void> {
    const repo = this.repo(project);
    const commits = await noteCommits(repo, previousHead, before, after, pushed);
    if (!commits.length) return;
    const version = mr.versions[0];
    const inMr = new Set((await repo.logRange(version.baseCommitSha, after)).map((c) => c.id));
    const added = commits.filter((c) => inMr.has(c.id));
    const existing = commits.filter((c) => !inMr.has(c.id));
    const now = new Date().toISOString();
    this.store.data.notes.push({
      id: this.store.nextId('note'),
      projectId: project.id,
      mrIid: mr.iid,
      body: pushNoteBody(project, mr, version.id, before, added, existing),
      authorId: user.id,
      system: true,
      internal: false,
      createdAt: now,
      updatedAt: now,
    });
  }

  // ---------- merge requests ----------

  async addVersion(project: Project, mr: MergeRequest): Promise<void> {
    const repo = this.repo(project);
    const target = (await repo.branchHead(mr.targetBranch)) ?? mr.sha;
    const base = (await repo.mergeBase(target, mr.sha)) ?? target;
    mr.versions.unshift({
      id: this.store.nextId('mr_version'),
      headCommitSha: mr.sha,
      baseCommitSha: base,
      startCommitSha: target,
      createdAt: new Date().toISOString(),
    });
  }

  /** GitLab's `detailed_merge_status`, computed on read. */
  async detailedMergeStatus(project: Project, mr: MergeRequest): Promise<string> {
    if (mr.state !== 'opened') return 'not_open';
    if (isDraft(mr.title)) return 'draft_status';
    if (await this.hasConflicts(project, mr)) return 'conflict';
    if (project.onlyAllowMergeIfPipelineSucceeds) {
      const status = this.pipelineStatus(project.id, mr.sha);
      if (status === 'running' || status === 'pending') return 'ci_still_running';
      if (status !== 'success') return 'ci_must_pass';
    }
    return 'mergeable';
  }

  async hasConflicts(project: Project, mr: MergeRequest): Promise<boolean> {
    const repo = this.repo(project);
    const target = await repo.branchHead(mr.targetBranch);
    const source = (await repo.branchHead(mr.sourceBranch)) ?? null;
    if (!target || !source) return true;
    const key = `${project.id}:${target}:${source}`;
    let ok = this.mergeabilityCache.get(key);
    if (ok === undefined) {
      ok = (await repo.mergeTree(target, source)) !== null;
      this.mergeabilityCache.set(key, ok);
    }
    return !ok;
  }

  /** The status of the external pipeline GitLab builds from commit statuses of one SHA. */
  pipelineStatus(projectId: number, sha: string): string | null {
    const latest = new Map<string, string>();
    for (const s of this.store.data.statuses) {
      if (s.projectId === projectId && s.sha === sha) latest.set(s.name, s.state);
    }
    if (!latest.size) return null;
    const states = [...latest.values()];
    if (states.some((s) => s === 'failed')) return 'failed';
    if (states.some((s) => s === 'canceled')) return 'canceled';
    if (states.some((s) => s === 'running')) return 'running';
    if (states.some((s) => s === 'pending')) return 'pending';
    return 'success';
  }

  async merge(
    user: User,
    project: Project,
    mr: MergeRequest,
    opts: { sha?: string; removeSourceBranch?: boolean; message?: string },
  ): Promise<void> {
    if (!this.canMerge(user, project, mr.targetBranch)) throw unauthorized();
    await this.mutex.run(`repo:${project.id}`, async () => {
      if (mr.state !== 'opened') throw new ApiError(405, { message: '405 Method Not Allowed' });
      const repo = this.repo(project);
      const source = await repo.branchHead(mr.sourceBranch);
      if (opts.sha && opts.sha !== (source ?? mr.sha)) {
        throw conflict(`SHA does not match HEAD of source branch: ${source ?? mr.sha}`);
      }
      const status = await this.detailedMergeStatus(project, mr);
      if (status !== 'mergeable') throw new ApiError(405, { message: '405 Method Not Allowed' });
      for (let attempt = 0; attempt < 5; attempt++) {
        const target = await repo.branchHead(mr.targetBranch);
        if (!target || !source) throw new ApiError(422, { message: 'Branch cannot be merged' });
        const tree = await repo.mergeTree(target, source);
        if (!tree) throw new ApiError(422, { message: 'Branch cannot be merged' });
        const message =
          opts.message ??
          `Merge branch '${mr.sourceBranch}' into '${mr.targetBranch}'\n\n${mr.title}\n\nSee merge request ${project.namespace}/${project.path}!${mr.iid}`;
        const commit = await repo.commitTree(tree, [target, source], message, this.identity(user));
        if (!(await repo.updateRef(`refs/heads/${mr.targetBranch}`, commit, target))) continue;
        const now = new Date().toISOString();
        mr.state = 'merged';
        mr.mergeCommitSha = commit;
        mr.mergedById = user.id;
        mr.mergedAt = now;
        mr.updatedAt = now;
        this.store.changed();
        await this.refUpdated(user, project, mr.targetBranch, target, commit);
        this.hooks.mergeRequest(project, mr, user, 'merge');
        if (opts.removeSourceBranch ?? mr.removeSourceBranch) {
          if (await repo.deleteRef(`refs/heads/${mr.sourceBranch}`, source)) {
            await this.refUpdated(user, project, mr.sourceBranch, source, ZERO_SHA);
          }
        }
        return;
      }
      throw new ApiError(422, { message: 'Branch cannot be merged' });
    });
  }
}

export function isDraft(title: string): boolean {
  return /^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s|draft\s|wip:|\[wip\])/i.test(title);
}
