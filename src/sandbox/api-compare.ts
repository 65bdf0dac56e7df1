// REST routes comparing refs: compare and merge_base.
import { type ApiDeps, projectOf, requiredParams } from './api-common.js';
import { ApiError, bool, notFound, type Router, stringList } from './http.js';

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
    const diffs = await repo.diff(base, toSha);
    const head = commits[0] ?? null;
    return {
      commit: head ? entities.commit(p, head) : null,
      commits: commits.reverse().map((c) => entities.commit(p, c)),
      diffs: diffs.map((d) => entities.diff(d)),
      compare_timeout: false,
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
