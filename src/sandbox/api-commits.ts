// REST routes for commits: list, show, diff, create with actions, and the merge requests
// a commit belongs to.
import { type ApiDeps, authed, commitPath, projectOf, required, resolveRef, shaOf } from './api-common.js';
import type { SandboxCore } from './core.js';
import { type CommitAction, lineStats } from './git.js';
import {
  ApiError,
  bool,
  forbidden,
  notFound,
  Page,
  pageParams,
  param,
  type Router,
  setPageHeaders,
  str,
} from './http.js';
import { AccessLevel, type Project } from './state.js';

export function register(router: Router, { core, entities }: ApiDeps): void {
  router.on('GET', '/projects/:id/repository/commits', async (ctx) => {
    const p = projectOf(core, ctx);
    const refName = str(ctx, 'ref_name');
    const commit = await resolveRef(core, p, refName);
    if (!commit) {
      if (refName) throw notFound('Commit');
      return [];
    }
    const { page, perPage } = pageParams(ctx);
    const commits = await core.repo(p).log([commit], {
      path: str(ctx, 'path'),
      since: str(ctx, 'since'),
      until: str(ctx, 'until'),
      skip: (page - 1) * perPage,
      max: perPage + 1,
    });
    // The Commits API does not count (no x-total), so look one ahead for x-next-page.
    setPageHeaders(ctx, core.baseUrl, page, perPage, commits.length > perPage);
    return commits.slice(0, perPage).map((c) => entities.commit(p, c));
  });

  router.on(
    'GET',
    '/projects/:id/repository/commits/:sha',
    async (ctx) => {
      const p = projectOf(core, ctx);
      const c = await core.repo(p).commit(ctx.params.sha);
      if (!c) throw notFound('Commit');
      const stats = await commitStats(core, p, c.parentIds[0] ?? null, c.id);
      return { ...entities.commit(p, c), stats, status: null, project_id: p.id, last_pipeline: null };
    },
    { jobToken: true },
  );

  router.on('GET', '/projects/:id/repository/commits/:sha/diff', async (ctx) => {
    const p = projectOf(core, ctx);
    const repo = core.repo(p);
    const c = await repo.commit(ctx.params.sha);
    if (!c) throw notFound('Commit');
    const from = c.parentIds[0] ?? (await emptyTree(core, p));
    return new Page((await repo.diff(from, c.id)).map((d) => entities.diff(d)));
  });

  router.on('POST', '/projects/:id/repository/commits', async (ctx) => {
    const user = authed(ctx);
    const p = projectOf(core, ctx);
    const branch = str(ctx, 'branch');
    const message = str(ctx, 'commit_message');
    const rawActions = param(ctx, 'actions');
    required({ branch, commit_message: message, actions: rawActions });
    if (!Array.isArray(rawActions) || rawActions.length === 0)
      throw new ApiError(400, { error: 'actions is invalid' });
    const actions = rawActions.map((a, i) => parseAction(a, i));
    if (core.accessLevel(user, p) < AccessLevel.DEVELOPER) throw forbidden();
    const authorName = str(ctx, 'author_name');
    const authorEmail = str(ctx, 'author_email');
    const force = bool(ctx, 'force') ?? false;
    const withStats = bool(ctx, 'stats') !== false;
    const { sha, changes } = await core.createCommit(user, p, {
      branch: branch!,
      message: message!,
      actions,
      startBranch: str(ctx, 'start_branch'),
      startSha: str(ctx, 'start_sha'),
      force,
      author:
        authorName || authorEmail
          ? { name: authorName ?? user.name, email: authorEmail ?? user.email }
          : undefined,
    });
    const c = (await core.repo(p).commit(sha))!;
    ctx.res.statusCode = 201;
    return {
      ...entities.commit(p, c),
      ...(withStats ? { stats: lineStats(changes) } : {}),
      status: null,
      project_id: p.id,
      last_pipeline: null,
    };
  });

  router.on(
    'GET',
    '/projects/:id/repository/commits/:sha/merge_requests',
    async (ctx) => {
      const p = projectOf(core, ctx);
      const sha = await shaOf(core, p, ctx.params.sha);
      const mrs = core.store.data.mergeRequests.filter(
        (m) =>
          m.projectId === p.id &&
          (m.mergeCommitSha === sha || m.sha === sha || m.versions.some((v) => v.headCommitSha === sha)),
      );
      const out = [];
      for (const m of mrs) out.push(await entities.mergeRequestListItem(p, m));
      return new Page(out);
    },
    { jobToken: true },
  );
}

function parseAction(raw: unknown, i: number): CommitAction & { lastCommitId?: string } {
  const a = (raw ?? {}) as Record<string, unknown>;
  const field = (k: string) => (a[k] === undefined || a[k] === null ? undefined : String(a[k]));
  const action = field('action');
  if (!action || !['create', 'update', 'delete', 'move', 'chmod'].includes(action)) {
    throw new ApiError(400, { error: `actions[${i}][action] does not have a valid value` });
  }
  const rawPath = field('file_path');
  if (!rawPath) throw new ApiError(400, { error: `actions[${i}][file_path] is missing` });
  // GitLab commits the cleaned path (`a/./b` as `a/b`) and refuses `..`, `//` and `.git`.
  const path = commitPath(rawPath, `actions[${i}][file_path]`);
  const encoding = field('encoding') ?? 'text';
  if (encoding !== 'text' && encoding !== 'base64') {
    throw new ApiError(400, { error: `actions[${i}][encoding] does not have a valid value` });
  }
  const raw64 = field('content');
  const content =
    raw64 === undefined ? undefined : Buffer.from(raw64, encoding === 'base64' ? 'base64' : 'utf8');
  const lastCommitId = field('last_commit_id');
  const executable = a.execute_filemode === true || a.execute_filemode === 'true';
  switch (action) {
    case 'create':
    case 'update':
      return { action, filePath: path, content: content ?? Buffer.alloc(0), executable, lastCommitId };
    case 'delete':
      return { action, filePath: path, lastCommitId };
    case 'chmod':
      return { action, filePath: path, executable };
    default: {
      const previousPath = field('previous_path');
      if (!previousPath) throw new ApiError(400, { error: `actions[${i}][previous_path] is missing` });
      const previous = commitPath(previousPath, `actions[${i}][previous_path]`);
      return { action: 'move', filePath: path, previousPath: previous, content, lastCommitId };
    }
  }
}

async function emptyTree(core: SandboxCore, p: Project): Promise<string> {
  return (await core.repo(p).run(['hash-object', '-t', 'tree', '/dev/null'])).stdout.toString().trim();
}

async function commitStats(core: SandboxCore, p: Project, parent: string | null, sha: string) {
  const from = parent ?? (await emptyTree(core, p));
  const out = (await core.repo(p).run(['diff', '--numstat', from, sha])).stdout.toString();
  let additions = 0;
  let deletions = 0;
  for (const line of out.split('\n')) {
    const [a, d] = line.split('\t');
    additions += Number(a) || 0;
    deletions += Number(d) || 0;
  }
  return { additions, deletions, total: additions + deletions };
}
