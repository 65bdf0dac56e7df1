// GitLab's JSON entities (snake_case keys, as the REST API returns them).
import { createHash } from 'node:crypto';
import type { SandboxCore } from './core.js';
import { isDraft } from './core.js';
import type { CommitInfo, FileDiff } from './git.js';
import { commitTitle, pushActionName } from './pushes.js';
import type {
  CommitComment,
  CommitStatus,
  Deployment,
  Environment,
  Hook,
  MergeRequest,
  Note,
  Project,
  ProjectEvent,
  User,
} from './state.js';

export class Entities {
  constructor(private readonly core: SandboxCore) {}

  private get base(): string {
    return this.core.baseUrl;
  }

  webUrl(p: Project): string {
    return `${this.base}/${p.namespace}/${p.path}`;
  }

  /** GitLab's default avatar for an account without an upload: its Gravatar (SHA-256 of the email). */
  private avatarUrl(u: User): string {
    const hash = createHash('sha256').update(u.email.trim().toLowerCase()).digest('hex');
    return `https://www.gravatar.com/avatar/${hash}?s=80&d=identicon`;
  }

  /** API::Entities::UserBasic: how a user appears inside other entities and in GET /users. */
  user(u: User): Record<string, unknown> {
    return {
      id: u.id,
      username: u.username,
      name: u.name,
      state: 'active',
      locked: false,
      avatar_url: this.avatarUrl(u),
      web_url: `${this.base}/${u.username}`,
      bot: u.bot,
      public_email: u.email,
    };
  }

  /**
   * API::Entities::UserPublic, GET /user: the profile fields with the defaults of an account that
   * never filled them in nor signed in through the web (the sandbox's users use tokens only).
   */
  currentUser(u: User): Record<string, unknown> {
    return {
      ...this.user(u),
      created_at: u.createdAt,
      bio: '',
      location: '',
      public_email: null,
      skype: '',
      linkedin: '',
      twitter: '',
      discord: '',
      website_url: '',
      organization: '',
      job_title: '',
      pronouns: null,
      work_information: null,
      followers: 0,
      following: 0,
      is_followed: false,
      local_time: null,
      last_sign_in_at: null,
      confirmed_at: u.createdAt,
      last_activity_on: null,
      email: u.email,
      theme_id: 3,
      color_scheme_id: 1,
      projects_limit: 100000,
      current_sign_in_at: null,
      identities: [],
      can_create_group: true,
      can_create_project: true,
      two_factor_enabled: false,
      external: false,
      private_profile: false,
      commit_email: u.email,
    };
  }

  /**
   * API::Entities::UserWithAdmin: what an administrator is shown of any user (GET /user,
   * /users, /users/:id). The namespace id is the user's id, as project entities name it.
   */
  adminUser(u: User): Record<string, unknown> {
    return {
      ...this.currentUser(u),
      // the profile's public email, as GET /users/:id shows it to anyone
      public_email: this.user(u).public_email,
      is_admin: u.isAdmin,
      note: null,
      namespace_id: u.id,
      created_by: null,
      email_reset_offered_at: null,
    };
  }

  userById(id: number | null): Record<string, unknown> | null {
    if (id === null) return null;
    const u = this.core.store.user(id);
    return u ? this.user(u) : null;
  }

  /** API::Entities::BasicProjectDetails: GET /projects?simple=true, and the start of every project view. */
  projectSimple(p: Project): Record<string, unknown> {
    const path = `${p.namespace}/${p.path}`;
    const owner = this.core.store.userByName(p.namespace);
    return {
      id: p.id,
      description: p.description,
      name: p.name,
      name_with_namespace: `${owner?.name ?? p.namespace} / ${p.name}`,
      path: p.path,
      path_with_namespace: path,
      created_at: p.createdAt,
      default_branch: p.defaultBranch,
      tag_list: [],
      topics: [],
      ssh_url_to_repo: `ssh://git@${new URL(this.base).host}/${path}.git`,
      http_url_to_repo: `${this.base}/${path}.git`,
      web_url: this.webUrl(p),
      readme_url: null,
      forks_count: 0,
      avatar_url: null,
      star_count: 0,
      last_activity_at: p.createdAt,
      namespace: {
        id: owner?.id ?? 0,
        name: owner?.name ?? p.namespace,
        path: p.namespace,
        kind: 'user',
        full_path: p.namespace,
        parent_id: null,
        avatar_url: null,
        web_url: `${this.base}/${p.namespace}`,
      },
    };
  }

  project(p: Project, viewer: User | null): Record<string, unknown> {
    const level = this.core.accessLevel(viewer, p);
    return {
      ...this.projectSimple(p),
      visibility: p.visibility,
      archived: false,
      empty_repo: false,
      merge_method: 'merge',
      squash_option: 'default_off',
      only_allow_merge_if_pipeline_succeeds: p.onlyAllowMergeIfPipelineSucceeds,
      only_allow_merge_if_all_discussions_are_resolved: false,
      remove_source_branch_after_merge: p.removeSourceBranchAfterMerge,
      merge_requests_enabled: true,
      jobs_enabled: true,
      permissions: {
        project_access: level > 0 && level < 60 ? { access_level: level, notification_level: 3 } : null,
        group_access: null,
      },
    };
  }

  hookProject(p: Project): Record<string, unknown> {
    const path = `${p.namespace}/${p.path}`;
    return {
      id: p.id,
      name: p.name,
      description: p.description,
      web_url: this.webUrl(p),
      avatar_url: null,
      git_ssh_url: `ssh://git@${new URL(this.base).host}/${path}.git`,
      git_http_url: `${this.base}/${path}.git`,
      namespace: p.namespace,
      visibility_level: p.visibility === 'public' ? 20 : p.visibility === 'internal' ? 10 : 0,
      path_with_namespace: path,
      default_branch: p.defaultBranch,
      homepage: this.webUrl(p),
      url: `${this.base}/${path}.git`,
      http_url: `${this.base}/${path}.git`,
    };
  }

  member(u: User, level: number): Record<string, unknown> {
    return {
      ...this.user(u),
      access_level: level,
      created_at: u.createdAt,
      expires_at: null,
      membership_state: 'active',
    };
  }

  commit(p: Project, c: CommitInfo): Record<string, unknown> {
    const title = c.message.split('\n')[0];
    return {
      id: c.id,
      short_id: c.id.slice(0, 8),
      created_at: c.committedDate,
      parent_ids: c.parentIds,
      title,
      message: c.message,
      author_name: c.authorName,
      author_email: c.authorEmail,
      authored_date: c.authoredDate,
      committer_name: c.committerName,
      committer_email: c.committerEmail,
      committed_date: c.committedDate,
      trailers: {},
      extended_trailers: {},
      web_url: `${this.webUrl(p)}/-/commit/${c.id}`,
    };
  }

  diff(d: FileDiff): Record<string, unknown> {
    return {
      diff: d.diff,
      new_path: d.newPath,
      old_path: d.oldPath,
      a_mode: d.newFile ? '0' : d.aMode,
      b_mode: d.deletedFile ? '0' : d.bMode,
      new_file: d.newFile,
      renamed_file: d.renamedFile,
      deleted_file: d.deletedFile,
      generated_file: false,
    };
  }

  status(p: Project, s: CommitStatus): Record<string, unknown> {
    return {
      id: s.id,
      sha: s.sha,
      ref: s.ref,
      status: s.state,
      name: s.name,
      target_url: s.targetUrl,
      description: s.description,
      created_at: s.createdAt,
      started_at: s.createdAt,
      finished_at: s.finishedAt,
      allow_failure: false,
      coverage: null,
      pipeline_id: s.pipelineId,
      author: this.userById(s.authorId),
      web_url: `${this.webUrl(p)}/-/pipelines/${s.pipelineId}`,
    };
  }

  /** API::Entities::EnvironmentBasic: how an environment appears inside a deployment. */
  environmentBasic(e: Environment): Record<string, unknown> {
    return {
      id: e.id,
      name: e.name,
      slug: e.slug,
      external_url: e.externalUrl,
      created_at: e.createdAt,
      updated_at: e.updatedAt,
    };
  }

  /**
   * API::Entities::Deployment (and DeploymentExtended, the same on Free). `deployable` is the CI
   * job, null for a deployment written through the API; the entity has no finished_at.
   */
  deployment(d: Deployment, env: Environment, opts: { environment?: boolean } = {}): Record<string, unknown> {
    return {
      id: d.id,
      iid: d.iid,
      ref: d.ref,
      sha: d.sha,
      created_at: d.createdAt,
      updated_at: d.updatedAt,
      user: this.userById(d.userId),
      ...(opts.environment === false ? {} : { environment: this.environmentBasic(env) }),
      deployable: null,
      status: d.status,
    };
  }

  /**
   * API::Entities::Environment. The single GET adds `last_deployment` (the newest successful
   * one, without its environment) and leaves `project` out; lists carry `project` and no
   * last deployment. cluster_agent, kubernetes_namespace, flux_resource_path appear only with a
   * cluster agent, which the sandbox has none of.
   */
  environment(
    p: Project,
    e: Environment,
    opts: { last?: { deployment: Deployment | null } } = {},
  ): Record<string, unknown> {
    return {
      ...this.environmentBasic(e),
      tier: e.tier,
      ...(opts.last ? {} : { project: this.projectSimple(p) }),
      ...(opts.last
        ? {
            last_deployment: opts.last.deployment
              ? this.deployment(opts.last.deployment, e, { environment: false })
              : null,
          }
        : {}),
      state: e.state,
      auto_stop_at: null,
      description: e.description,
      auto_stop_setting: 'always',
    };
  }

  /**
   * API::Entities::ProjectHook. The events the sandbox never sends are GitLab's defaults (off);
   * the branch filter is unset ('' with the wildcard strategy, as a hook created without one).
   */
  hook(h: Hook): Record<string, unknown> {
    return {
      id: h.id,
      url: h.url,
      name: null,
      description: null,
      created_at: h.createdAt,
      push_events: h.pushEvents,
      tag_push_events: false,
      merge_requests_events: h.mergeRequestsEvents,
      repository_update_events: false,
      enable_ssl_verification: h.enableSslVerification,
      alert_status: 'executable',
      disabled_until: null,
      url_variables: [],
      push_events_branch_filter: '',
      branch_filter_strategy: 'wildcard',
      custom_webhook_template: null,
      custom_headers: [],
      project_id: h.projectId,
      issues_events: false,
      confidential_issues_events: false,
      note_events: h.noteEvents,
      confidential_note_events: false,
      pipeline_events: h.pipelineEvents,
      wiki_page_events: false,
      deployment_events: false,
      feature_flag_events: false,
      job_events: false,
      releases_events: false,
      emoji_events: false,
      resource_access_token_events: false,
      vulnerability_events: false,
      token_present: !!h.token,
      signing_token_present: !!h.signingToken,
    };
  }

  note(n: Note, mr: MergeRequest): Record<string, unknown> {
    return {
      id: n.id,
      type: null,
      body: n.body,
      attachment: null,
      author: this.userById(n.authorId),
      created_at: n.createdAt,
      updated_at: n.updatedAt,
      system: n.system,
      noteable_id: mr.id,
      noteable_type: 'MergeRequest',
      project_id: n.projectId,
      noteable_iid: mr.iid,
      resolvable: false,
      confidential: n.internal,
      internal: n.internal,
      commands_changes: {},
    };
  }

  /** API::Entities::CommitNote: a comment on a commit (no line: path, line and line_type are null). */
  commitNote(c: CommitComment): Record<string, unknown> {
    return {
      note: c.note,
      path: null,
      line: null,
      line_type: null,
      author: this.userById(c.authorId),
      created_at: c.createdAt,
    };
  }

  /** Commit#hook_attrs, as Push and Note Hooks carry commits. */
  hookCommit(p: Project, c: CommitInfo): Record<string, unknown> {
    return {
      id: c.id,
      message: c.message,
      title: commitTitle(c.message),
      timestamp: c.committedDate,
      url: `${this.webUrl(p)}/-/commit/${c.id}`,
      author: { name: c.authorName, email: c.authorEmail },
    };
  }

  /** API::Entities::Event of a push event, with its push_data (API::Entities::PushEventPayload). */
  event(e: ProjectEvent): Record<string, unknown> {
    const author = this.core.store.user(e.authorId);
    return {
      id: e.id,
      project_id: e.projectId,
      action_name: pushActionName(e.push),
      target_id: null,
      target_iid: null,
      target_type: null,
      author_id: e.authorId,
      target_title: null,
      created_at: e.createdAt,
      ...(author ? { author: this.user(author) } : {}),
      imported: false,
      imported_from: 'none',
      push_data: {
        commit_count: e.push.commitCount,
        action: e.push.action,
        ref_type: e.push.refType,
        commit_from: e.push.commitFrom,
        commit_to: e.push.commitTo,
        ref: e.push.ref,
        commit_title: e.push.commitTitle,
        ref_count: e.push.refCount,
      },
      author_username: author?.username ?? null,
    };
  }

  /** The fields every merge-request-shaped entity starts with (MR, approvals). */
  mergeRequestBasics(p: Project, mr: MergeRequest): Record<string, unknown> {
    return {
      id: mr.id,
      iid: mr.iid,
      project_id: p.id,
      title: mr.title,
      description: mr.description,
      state: mr.state,
      created_at: mr.createdAt,
      updated_at: mr.updatedAt,
    };
  }

  /**
   * API::Entities::MergeRequestBasic: a merge request as lists show it (GET /merge_requests,
   * /repository/commits/:sha/merge_requests). The single view adds diff_refs, the pipelines,
   * merge_error and the rest (lib/api/entities/merge_request.rb).
   */
  async mergeRequestListItem(p: Project, mr: MergeRequest): Promise<Record<string, unknown>> {
    const detailed = await this.core.detailedMergeStatus(p, mr);
    const conflicts = mr.state === 'opened' && (await this.core.hasConflicts(p, mr));
    const users = (ids: number[]) => ids.map((id) => this.userById(id)).filter(Boolean);
    const full = `${p.namespace}/${p.path}!${mr.iid}`;
    return {
      ...this.mergeRequestBasics(p, mr),
      merged_by: this.userById(mr.mergedById),
      merge_user: this.userById(mr.mergedById),
      merged_at: mr.mergedAt,
      closed_by: this.userById(mr.closedById),
      closed_at: mr.closedAt,
      target_branch: mr.targetBranch,
      source_branch: mr.sourceBranch,
      // GitLab counts comments only (Note.user): system notes are not in user_notes_count
      user_notes_count: this.core.store.data.notes.filter(
        (n) => n.projectId === p.id && n.mrIid === mr.iid && !n.system,
      ).length,
      upvotes: 0,
      downvotes: 0,
      author: this.userById(mr.authorId),
      assignees: users(mr.assigneeIds),
      assignee: this.userById(mr.assigneeIds[0] ?? null),
      reviewers: users(mr.reviewerIds),
      source_project_id: p.id,
      target_project_id: p.id,
      labels: mr.labels,
      draft: isDraft(mr.title),
      work_in_progress: isDraft(mr.title),
      milestone: null,
      merge_when_pipeline_succeeds: false,
      merge_status: mr.state !== 'opened' ? 'unchecked' : conflicts ? 'cannot_be_merged' : 'can_be_merged',
      detailed_merge_status: detailed,
      sha: mr.sha,
      merge_commit_sha: mr.mergeCommitSha,
      squash_commit_sha: null,
      discussion_locked: mr.discussionLocked,
      should_remove_source_branch: null,
      force_remove_source_branch: mr.removeSourceBranch,
      reference: `!${mr.iid}`,
      references: { short: `!${mr.iid}`, relative: `!${mr.iid}`, full },
      web_url: `${this.webUrl(p)}/-/merge_requests/${mr.iid}`,
      time_stats: {
        time_estimate: 0,
        total_time_spent: 0,
        human_time_estimate: null,
        human_total_time_spent: null,
      },
      squash: mr.squash,
      squash_on_merge: mr.squash,
      task_completion_status: { count: 0, completed_count: 0 },
      has_conflicts: conflicts,
      blocking_discussions_resolved: true,
    };
  }

  /** API::Entities::MergeRequest: GET /merge_requests/:iid and the answers of create, update, merge. */
  async mergeRequest(p: Project, mr: MergeRequest): Promise<Record<string, unknown>> {
    const version = mr.versions[0];
    const pipelineStatus = this.core.pipelineStatus(p.id, mr.sha);
    const pipelineId = this.core.store.data.statuses.find(
      (s) => s.projectId === p.id && s.sha === mr.sha,
    )?.pipelineId;
    const pipeline = pipelineStatus
      ? {
          id: pipelineId,
          iid: pipelineId,
          project_id: p.id,
          sha: mr.sha,
          ref: mr.sourceBranch,
          status: pipelineStatus,
          source: 'external',
          web_url: `${this.webUrl(p)}/-/pipelines/${pipelineId}`,
        }
      : null;
    return {
      ...(await this.mergeRequestListItem(p, mr)),
      diff_refs: version
        ? {
            base_sha: version.baseCommitSha,
            head_sha: version.headCommitSha,
            start_sha: version.startCommitSha,
          }
        : null,
      head_pipeline: pipeline,
      pipeline,
      first_contribution: false,
      merge_error: null,
      latest_build_started_at: null,
      latest_build_finished_at: null,
    };
  }

  async hookMergeRequest(p: Project, mr: MergeRequest): Promise<Record<string, unknown>> {
    const full = await this.mergeRequest(p, mr);
    const repo = this.core.repo(p);
    const last = await repo.commit(mr.sha).catch(() => null);
    return {
      id: mr.id,
      iid: mr.iid,
      title: mr.title,
      description: mr.description,
      state: mr.state,
      draft: full.draft,
      work_in_progress: full.draft,
      source_branch: mr.sourceBranch,
      target_branch: mr.targetBranch,
      source_project_id: p.id,
      target_project_id: p.id,
      author_id: mr.authorId,
      assignee_id: mr.assigneeIds[0] ?? null,
      assignee_ids: mr.assigneeIds,
      reviewer_ids: mr.reviewerIds,
      merge_status: full.merge_status,
      detailed_merge_status: full.detailed_merge_status,
      merge_commit_sha: mr.mergeCommitSha,
      created_at: mr.createdAt,
      updated_at: mr.updatedAt,
      url: full.web_url,
      labels: mr.labels.map((title, i) => ({ id: i + 1, title })),
      last_commit: last
        ? {
            id: last.id,
            message: last.message,
            title: last.message.split('\n')[0],
            timestamp: last.committedDate,
            url: `${this.webUrl(p)}/-/commit/${last.id}`,
            author: { name: last.authorName, email: last.authorEmail },
          }
        : null,
      source: this.hookProject(p),
      target: this.hookProject(p),
    };
  }
}
