// bench/feedback: from the agent's notification to GitLab showing it. The story's ops repo
// with a watched production (Argo CD application helloworld); each round merges one
// promotion through serve, then posts the two notifications Argo CD sends for it (the
// README's template: sync running, then synced and Healthy) to serve's POST /argocd. Each
// is timed from the POST until serve's job is done, the Deployment, the commit status
// gitops-bot/deploy and the MR's comment then checked as GitLab shows them (the comment's
// Deployment section appears with the outcome, not while the sync runs); the bot's requests per notification are counted at the
// sandbox. Target (issue 17): 6 GitLab requests per notification or fewer, on average over
// a merge's two notifications; a third, a repeat of the Healthy one (Argo CD retries, a
// second replica), is counted apart: it must write nothing. The rules are not read by the
// notifications here because serve keeps what the last push's job read (the merge's push to
// deploy/prod); a notification that finds no rules kept (30 s after, or a restart) pays 2-4
// more (feedback_requests_rules counts any such read).
import { Gitlab } from '@gitbeaker/rest';
import { GitLab, GitLabGate } from '../src/gitlab/client.js';
import { promote } from '../src/promote/promote.js';
import {
  deployRefProtection,
  MAIN_PROTECTION,
  protectBranch,
  startSandbox,
  strictPolicy,
} from '../src/sandbox/index.js';
import { createWebhookServer } from '../src/server/webhook.js';

const OPS = 'root/helloworld-ops';
const SECRET = 'bench-feedback-secret';
const ROUNDS = Number(process.env.BENCH_FEEDBACK_ROUNDS ?? 15);
const POLICY = strictPolicy({ agent: '{ argocd: helloworld }', deploy_timeout: '10m' });

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

/** The body the README's Argo CD template renders: the partial Application. */
function notification(revision: string, repoURL: string, state: 'running' | 'healthy', tag: string) {
  const now = new Date().toISOString();
  const running = state === 'running';
  return {
    application: {
      metadata: { name: 'helloworld', namespace: 'argocd' },
      spec: { source: { repoURL, path: '.', targetRevision: 'deploy/prod' } },
      status: {
        sync: { status: running ? 'OutOfSync' : 'Synced', revision },
        health: { status: running ? 'Progressing' : 'Healthy', lastTransitionTime: now },
        operationState: {
          operation: { sync: { revision } },
          phase: running ? 'Running' : 'Succeeded',
          message: running
            ? 'waiting for healthy state of apps/Deployment/helloworld'
            : 'successfully synced (all tasks run)',
          ...(running ? {} : { syncResult: { revision }, finishedAt: now }),
          startedAt: now,
        },
        summary: { images: [`registry.example.com/root/helloworld:${tag}`] },
      },
    },
  };
}

export async function benchFeedback(): Promise<Record<string, number | string>> {
  const sb = await startSandbox({ port: 0, seed: 'story' });
  const operator = new Gitlab({ host: sb.url, token: 'operator-token' });
  const gate = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  const bot = await gate.currentUser();
  await operator.Commits.create(OPS, 'main', 'Approval policy', [
    { action: 'create', filePath: '.gitops-bot.yml', content: POLICY },
  ]);
  await operator.Branches.create(OPS, 'deploy/prod', 'main');
  for (const rule of [MAIN_PROTECTION, deployRefProtection(bot.id)]) await protectBranch(sb.apiUrl, rule);
  const server = createWebhookServer({
    ctx: { gitlab: gate, botUserId: bot.id, botUsername: bot.username },
    secret: SECRET,
    projects: [OPS],
  });
  const serveUrl = await server.listen(0, '127.0.0.1');
  await operator.ProjectHooks.add(OPS, `${serveUrl}/webhook`, {
    token: SECRET,
    pushEvents: true,
    mergeRequestsEvents: true,
    noteEvents: true,
  });
  const repoURL = `${sb.url}/${OPS}.git`;
  const ms: number[] = [];
  const requests: number[] = [];
  const byState = { running: [] as number[], healthy: [] as number[], duplicate: [] as number[] };
  let rulesReads = 0;
  let duplicateWrites = 0;
  let checked = 0;
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const tag = `ci-${100 + i}`;
      const r = await promote(
        {
          project: OPS,
          files: ['deployment.yml'],
          image: 'registry.example.com/root/helloworld',
          tag,
          assignees: ['operator'],
          targetBranch: 'main',
        },
        { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
      );
      const iid = r.mr!.iid;
      await sb.settle(server);
      await operator.MergeRequestApprovals.approve(OPS, iid);
      await sb.settle(server);
      const revision = (await operator.Branches.show(OPS, 'deploy/prod')).commit.id as string;
      let last = '';
      for (const step of ['running', 'healthy', 'duplicate'] as const) {
        const state = step === 'duplicate' ? 'healthy' : step;
        // a duplicate is the same body again (notifications-engine's retry, a second replica)
        if (step !== 'duplicate') last = JSON.stringify(notification(revision, repoURL, state, tag));
        const from = sb.requests.length;
        const t = performance.now();
        const res = await fetch(`${serveUrl}/argocd`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'X-Gitops-Bot-Token': SECRET },
          body: last,
        });
        if (res.status !== 202) throw new Error(`POST /argocd: ${res.status} ${await res.text()}`);
        await sb.settle(server);
        const took = performance.now() - t;
        const mine = sb.requests.slice(from).filter((x) => x.user === 'gitops-bot');
        byState[step].push(mine.length);
        rulesReads += mine.filter((x) =>
          /\/repository\/(files|branches)\/|\/projects\/[^/]+$/.test(x.path),
        ).length;
        if (step === 'duplicate') duplicateWrites += mine.filter((x) => x.method !== 'GET').length;
        else {
          ms.push(took);
          requests.push(mine.length);
        }
        if (process.env.BENCH_FEEDBACK_TRACE)
          console.error(`${step}:\n${mine.map((x) => `  ${x.method} ${x.path}`).join('\n')}`);
        // What GitLab shows now (read as operator, outside the timing and the count).
        const [d] = await operator.Deployments.all(OPS, {
          environment: 'production/helloworld',
          orderBy: 'id',
          sort: 'desc',
          perPage: 1,
          maxPages: 1,
        } as never);
        const want = state === 'running' ? 'running' : 'success';
        const notes = await operator.MergeRequestNotes.all(OPS, iid);
        // the Deployment section lives in the bot's sticky diff comment
        const sticky = notes.find(
          (n) => String(n.body).startsWith('<!-- gitops-bot:diff -->') && n.author.username === bot.username,
        );
        // running: the Deployment and the commit status say it, the comment waits for the outcome
        const body = String(sticky?.body ?? '');
        const shown =
          state === 'running' ? !body.includes('### Deployment') : /Synced and Healthy/.test(body);
        const [status] = (await operator.Commits.allStatuses(OPS, revision, {
          name: 'gitops-bot/deploy',
        } as never)) as Array<{ status: string }>;
        if (d?.sha !== revision || d.status !== want || status?.status !== want || !sticky || !shown)
          throw new Error(
            `round ${i} ${state}: GitLab shows deployment ${d?.status} at ${String(d?.sha).slice(0, 8)}, status ${status?.status}, section ${shown ? 'as expected' : 'not as expected'}`,
          );
        if (step !== 'duplicate') checked++;
      }
    }
  } finally {
    await server.close();
    await sb.close();
  }
  const sorted = [...requests].sort((a, b) => a - b);
  const mean = (xs: number[]) => Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10;
  return {
    feedback_notifications: ms.length,
    feedback_checked: checked,
    feedback_median_ms: Math.round(pct(ms, 0.5) * 10) / 10,
    feedback_p99_ms: Math.round(pct(ms, 0.99) * 10) / 10,
    feedback_requests_per_notification: mean(requests),
    feedback_requests_max: sorted[sorted.length - 1],
    // the merge's first report (running: creates the Deployment and the status, reads the
    // merged MR once, not its notes: no comment edit while running)
    feedback_requests_first_report: mean(byState.running),
    feedback_requests_deployed: mean(byState.healthy),
    feedback_requests_duplicate: mean(byState.duplicate),
    feedback_duplicate_writes: duplicateWrites,
    feedback_requests_rules: rulesReads,
    feedback_requests_target: 6,
  };
}

// `node .build-x/bench/feedback.js` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [k, v] of Object.entries(await benchFeedback())) console.log(`feedback: ${k} = ${v}`);
}
