// bench/scale (push): gitops-bot's requests after a README-only push to main, with `serve`
// running (jobs on its worker thread, as `gitops-bot serve` runs them) and 10, 100 and 500
// open gitops-bot MRs into main. Target (issue 16): the same small number for all three.
// The MRs are made through the sandbox's API (a branch and an MR each), with the hook off
// so that serve does not gate each one as it opens; the hook is added back to measure.
import { Gitlab } from '@gitbeaker/rest';
import { GitLabGate } from '../../src/gitlab/client.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import { createWebhookServer } from '../../src/server/webhook.js';

const OPS = 'root/helloworld-ops';
const SECRET = 'bench-scale-secret';
const SIZES = [10, 100, 500];

/** Opens MRs from gitops-bot/scale-<i> until `n` are open, 8 at a time. */
async function openMrsUpTo(bot: InstanceType<typeof Gitlab<false>>, from: number, n: number): Promise<void> {
  let next = from + 1;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next <= n) {
        const i = next++;
        await bot.Branches.create(OPS, `gitops-bot/scale-${i}`, 'gitops-bot/scale-base');
        await bot.MergeRequests.create(OPS, `gitops-bot/scale-${i}`, 'main', `Promote app${i}`);
      }
    }),
  );
}

/** gitops-bot's requests at the sandbox while `fn` runs and everything settles. */
async function botRequests(sb: Sandbox, settle: () => Promise<void>, fn: () => Promise<unknown>) {
  await settle();
  const from = sb.requests.length;
  await fn();
  await settle();
  return sb.requests.slice(from).filter((r) => r.user === 'gitops-bot').length;
}

export async function benchScalePush(): Promise<Record<string, number | string>> {
  const sb = await startSandbox({ port: 0, seed: 'story' });
  const operator = new Gitlab({ host: sb.url, token: 'operator-token' });
  const bot = new Gitlab({ host: sb.url, token: 'gitops-bot-token' });
  const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  const botUserId = (await gitlab.currentUser()).id;
  const srv = createWebhookServer({
    ctx: { gitlab, botUserId },
    secret: SECRET,
    projects: [OPS],
    worker: true,
  });
  const url = `${await srv.listen(0, '127.0.0.1')}/webhook`;
  const settle = () => sb.settle(srv);
  const out: Record<string, number | string> = {};
  try {
    await operator.ProtectedBranches.protect(OPS, 'main', { pushAccessLevel: 40, mergeAccessLevel: 30 });
    await bot.Commits.create(
      OPS,
      'gitops-bot/scale-base',
      'Promote',
      [
        {
          action: 'create',
          filePath: 'apps/scale.yml',
          content: 'image: registry.example.com/root/scale:ci-2\n',
        },
      ],
      { startBranch: 'main' },
    );
    let open = 0;
    let pushes = 0;
    for (const n of SIZES) {
      await openMrsUpTo(bot, open, n);
      open = n;
      const hook = await operator.ProjectHooks.add(OPS, url, {
        token: SECRET,
        pushEvents: true,
        mergeRequestsEvents: true,
        noteEvents: true,
      });
      const count = await botRequests(sb, settle, () =>
        operator.Commits.create(OPS, 'main', `Docs ${++pushes}`, [
          { action: pushes === 1 ? 'create' : 'update', filePath: 'README.md', content: `# ops ${pushes}\n` },
        ]),
      );
      await operator.ProjectHooks.remove(OPS, hook.id);
      out[`push_requests_${n}_mrs`] = count;
    }
    const counts = SIZES.map((n) => out[`push_requests_${n}_mrs`] as number);
    out.push_requests_ratio_500_to_10 = Number((counts[2] / Math.max(1, counts[0])).toFixed(2));
    return out;
  } finally {
    await srv.close();
    await sb.close();
  }
}

// Run directly: `node .build-x/bench/scale/push.js`.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [k, v] of Object.entries(await benchScalePush())) console.log(`scale: ${k} = ${v}`);
}
