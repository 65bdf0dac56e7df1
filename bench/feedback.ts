// bench/feedback: from the agent's notification to GitLab showing it. The story's ops repo
// with a watched production (Argo CD application helloworld); each round merges one
// promotion through serve, then posts the two notifications Argo CD sends for it (the
// README's template: sync running, then synced and Healthy) to serve's POST /argocd. Each
// is timed from the POST until serve's job is done, the Deployment and the MR's comment
// then checked as GitLab shows them; the bot's requests per notification are counted at the
// sandbox. Target (issue 17): 6 GitLab requests per notification or fewer.
import { Gitlab } from '@gitbeaker/rest';
import { GitLab, GitLabGate } from '../src/gitlab/client.js';
import { promote } from '../src/promote/promote.js';
import { startSandbox } from '../src/sandbox/index.js';
import { createWebhookServer } from '../src/server/webhook.js';

const OPS = 'root/helloworld-ops';
const SECRET = 'bench-feedback-secret';
const ROUNDS = Number(process.env.BENCH_FEEDBACK_ROUNDS ?? 15);
const POLICY = `version: 1
environments:
  - name: production
    match: { target_branches: [main] }
    approvals: { required: 1, users: [operator] }
    merge: bot
    deploy_ref: deploy/prod
    agent: { argocd: helloworld }
    deploy_timeout: 10m
`;

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
  for (const body of [
    { name: 'main', push_access_level: 40, merge_access_level: 30 },
    {
      name: 'deploy/prod',
      push_access_level: 60,
      merge_access_level: 60,
      allowed_to_push: [{ user_id: bot.id }],
    },
  ]) {
    await fetch(`${sb.apiUrl}/projects/${encodeURIComponent(OPS)}/protected_branches`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': 'operator-token', 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }
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
      for (const state of ['running', 'healthy'] as const) {
        const from = sb.requests.length;
        const t = performance.now();
        const res = await fetch(`${serveUrl}/argocd`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'X-Gitops-Bot-Token': SECRET },
          body: JSON.stringify(notification(revision, repoURL, state, tag)),
        });
        if (res.status !== 202) throw new Error(`POST /argocd: ${res.status} ${await res.text()}`);
        await sb.settle(server);
        ms.push(performance.now() - t);
        const mine = sb.requests.slice(from).filter((x) => x.user === 'gitops-bot');
        requests.push(mine.length);
        if (process.env.BENCH_FEEDBACK_TRACE)
          console.error(`${state}:\n${mine.map((x) => `  ${x.method} ${x.path}`).join('\n')}`);
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
        const shown = state === 'running' ? /Syncing/ : /Synced and Healthy/;
        if (d?.sha !== revision || d.status !== want || !shown.test(String(sticky?.body ?? '')))
          throw new Error(
            `round ${i} ${state}: GitLab shows deployment ${d?.status} at ${String(d?.sha).slice(0, 8)}`,
          );
        checked++;
      }
    }
  } finally {
    await server.close();
    await sb.close();
  }
  const sorted = [...requests].sort((a, b) => a - b);
  return {
    feedback_notifications: ms.length,
    feedback_checked: checked,
    feedback_median_ms: Math.round(pct(ms, 0.5) * 10) / 10,
    feedback_p99_ms: Math.round(pct(ms, 0.99) * 10) / 10,
    feedback_requests_per_notification:
      Math.round((requests.reduce((a, b) => a + b, 0) / requests.length) * 10) / 10,
    feedback_requests_max: sorted[sorted.length - 1],
    feedback_requests_target: 6,
  };
}

// `node .build-x/bench/feedback.js` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [k, v] of Object.entries(await benchFeedback())) console.log(`feedback: ${k} = ${v}`);
}
