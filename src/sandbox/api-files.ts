// REST routes for repository files (GET, HEAD, raw) and the tree.
import { createHash } from 'node:crypto';
import { type ApiDeps, filePath, projectOf, RawBody, resolveRef, treePath } from './api-common.js';
import { bool, type Ctx, missing, notFound, Page, type Router, str } from './http.js';

export function register(router: Router, { core }: ApiDeps): void {
  const fileResponse = async (ctx: Ctx, raw: boolean) => {
    const p = projectOf(core, ctx);
    const path = filePath(ctx.params.file_path);
    const refName = str(ctx, 'ref');
    if (!raw && !refName) throw missing('ref');
    const repo = core.repo(p);
    const commit = await resolveRef(core, p, refName ?? 'HEAD');
    if (!commit) throw notFound('Commit');
    const blob = await repo.blob(commit, path);
    if (!blob) throw notFound('File');
    // The last commit touching the file costs a `git log`; raw readers do not need it.
    const last = raw ? null : await repo.lastCommitFor(commit, path);
    const sha256 = createHash('sha256').update(blob.content).digest('hex');
    const headers = {
      'X-Gitlab-Blob-Id': blob.oid,
      'X-Gitlab-Commit-Id': commit,
      'X-Gitlab-Content-Sha256': sha256,
      'X-Gitlab-Encoding': 'base64',
      'X-Gitlab-File-Name': path.split('/').pop()!,
      'X-Gitlab-File-Path': path,
      ...(raw ? {} : { 'X-Gitlab-Last-Commit-Id': last ?? commit }),
      'X-Gitlab-Ref': refName ?? p.defaultBranch,
      'X-Gitlab-Size': String(blob.content.length),
      'X-Gitlab-Execute-Filemode': 'false',
    };
    for (const [k, v] of Object.entries(headers)) ctx.res.setHeader(k, v);
    if (raw) return new RawBody(blob.content, 'text/plain; charset=utf-8');
    return {
      file_name: headers['X-Gitlab-File-Name'],
      file_path: path,
      size: blob.content.length,
      encoding: 'base64',
      content_sha256: sha256,
      ref: refName,
      blob_id: blob.oid,
      commit_id: commit,
      last_commit_id: last ?? commit,
      execute_filemode: false,
      content: blob.content.toString('base64'),
    };
  };
  router.on('GET', '/projects/:id/repository/files/:file_path', (ctx) => fileResponse(ctx, false));
  router.on('GET', '/projects/:id/repository/files/:file_path/raw', (ctx) => fileResponse(ctx, true), {
    jobToken: true,
  });

  router.on('GET', '/projects/:id/repository/tree', async (ctx) => {
    const p = projectOf(core, ctx);
    const commit = await resolveRef(core, p, str(ctx, 'ref'));
    if (!commit) throw notFound('Tree');
    const path = treePath(str(ctx, 'path'));
    const entries = await core.repo(p).tree(commit, path, bool(ctx, 'recursive') ?? false);
    if (!entries) throw notFound('Tree');
    return new Page(
      entries.map((e) => ({
        id: e.oid,
        name: e.path.split('/').pop(),
        type: e.type,
        path: e.path,
        mode: e.mode,
      })),
    );
  });
}
