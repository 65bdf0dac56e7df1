// REST routes comparing refs: compare and merge_base.
import { type ApiDeps, projectOf, requiredParams } from './api-common.js';
import type { FileDiff } from './git.js';
import { ApiError, bool, notFound, type Router, stringList } from './http.js';

/**
 * GitLab's default limits on a compare's diffs (Gitlab::Git::DiffCollection.default_limits:
 * Commit.diff_safe_max_files / _lines, the instance's diff_max_files 1,000 and
 * diff_max_lines 50,000 over DIFF_SAFE_LIMIT_FACTOR 10; max_bytes is 5 KB a file).
 */
export const COMPARE_DIFF_LIMITS = { maxFiles: 100, maxLines: 5000, maxBytes: 100 * 5 * 1024 };

/**
 * The diffs a compare lists and whether they overflowed (the API's `compare_timeout`), as
 * DiffCollection#each_serialized_patch: it stops at the file past max_files, and at the
 * file that brings the lines or bytes to their maximum (that file is not listed either).
 */
export function capDiffs(
  diffs: FileDiff[],
  limits = COMPARE_DIFF_LIMITS,
): { diffs: FileDiff[]; overflow: boolean } {
  let lines = 0;
  let bytes = 0;
  for (let i = 0; i < diffs.length; i++) {
    if (i >= limits.maxFiles) return { diffs: diffs.slice(0, i), overflow: true };
    const d = diffs[i]!.diff;
    lines += countLines(d);
    bytes += Buffer.byteLength(d);
    if (lines >= limits.maxLines || bytes >= limits.maxBytes)
      return { diffs: diffs.slice(0, i), overflow: true };
  }
  return { diffs, overflow: false };
}

/** Gitlab::Git::Util.count_lines: newlines, plus one for a last line without one. */
function countLines(s: string): number {
  if (!s) return 0;
  const n = s.split('\n').length - 1;
  return s.endsWith('\n') ? n : n + 1;
}

export function register(router: Router, { core, entities }: ApiDeps): void {
  router.on('GET', '/projects/:id/repository/compare', async (ctx) => {
    const p = projectOf(core, ctx);
    const { from, to } = requiredParams(ctx, 'from', 'to');
    const repo = core.repo(p);
    const fromSha = await repo.resolve(from);
    const toSha = await repo.resolve(to);
    if (!fromSha || !toSha) throw notFound('Ref');
    const straight = bool(ctx, 'straight') ?? false;
    const base = straight ? fromSha : ((await repo.mergeBase(fromSha, toSha)) ?? fromSha);
    const commits = await repo.logRange(base, toSha);
    const diffs = capDiffs(await repo.diff(base, toSha));
    const head = commits[0] ?? null;
    return {
      commit: head ? entities.commit(p, head) : null,
      commits: commits.reverse().map((c) => entities.commit(p, c)),
      diffs: diffs.diffs.map((d) => entities.diff(d)),
      compare_timeout: diffs.overflow,
      compare_same_ref: fromSha === toSha,
      web_url: `${entities.webUrl(p)}/-/compare/${fromSha}...${toSha}`,
    };
  });

  router.on('GET', '/projects/:id/repository/merge_base', async (ctx) => {
    const p = projectOf(core, ctx);
    const refs = stringList(ctx, 'refs');
    if (!refs || refs.length < 2) throw new ApiError(400, { message: 'Provide at least 2 refs' });
    const repo = core.repo(p);
    const shas = await Promise.all(refs.map((r) => repo.resolve(r)));
    if (shas.some((x) => !x)) throw notFound('Commit');
    let base: string | null = shas[0]!;
    for (const x of shas.slice(1)) base = base && (await repo.mergeBase(base, x!));
    if (!base) throw notFound('Merge Base');
    return entities.commit(p, (await repo.commit(base))!);
  });
}
