// REST routes for what a merge request changes: changes, diffs, commits, versions.
import { type ApiDeps, mergeRequestOf } from './api-common.js';
import { type Ctx, Page, type Router } from './http.js';
import type { MergeRequest } from './state.js';

/** The diff a merge request shows: from its base to its head (the merged head once merged). */
function diffRefs(mr: MergeRequest): { base: string; head: string } | null {
  const v = mr.versions[0];
  if (!v) return null;
  return { base: v.baseCommitSha, head: mr.state === 'merged' ? v.headCommitSha : mr.sha };
}

export function register(router: Router, { core, entities }: ApiDeps): void {
  const diffs = async (ctx: Ctx) => {
    const { p, mr } = mergeRequestOf(core, ctx);
    const refs = diffRefs(mr);
    return { p, mr, diffs: refs ? await core.repo(p).diff(refs.base, refs.head) : [] };
  };

  router.on('GET', '/projects/:id/merge_requests/:iid/changes', async (ctx) => {
    const { p, mr, diffs: list } = await diffs(ctx);
    return {
      ...(await entities.mergeRequest(p, mr)),
      changes: list.map((d) => entities.diff(d)),
      changes_count: String(list.length),
      overflow: false,
    };
  });

  router.on('GET', '/projects/:id/merge_requests/:iid/diffs', async (ctx) => {
    const { diffs: list } = await diffs(ctx);
    return new Page(list.map((d) => entities.diff(d)));
  });

  router.on('GET', '/projects/:id/merge_requests/:iid/commits', async (ctx) => {
    const { p, mr } = mergeRequestOf(core, ctx);
    const v = mr.versions[0];
    const commits = v ? await core.repo(p).logRange(v.baseCommitSha, mr.sha) : [];
    return new Page(commits.map((c) => entities.commit(p, c)));
  });

  router.on('GET', '/projects/:id/merge_requests/:iid/versions', (ctx) => {
    const { mr } = mergeRequestOf(core, ctx);
    return new Page(
      mr.versions.map((v) => ({
        id: v.id,
        head_commit_sha: v.headCommitSha,
        base_commit_sha: v.baseCommitSha,
        start_commit_sha: v.startCommitSha,
        created_at: v.createdAt,
        merge_request_id: mr.id,
        state: 'collected',
        real_size: '1',
        patch_id_sha: v.headCommitSha,
      })),
    );
  });
}
