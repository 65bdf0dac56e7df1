// bench/scale (apps): 500 apps in one ops repository, 500 promotions (one per app, each its
// own MR), 8 at a time in one process, against a sandbox with GitLab.com's rate limit
// (2,000 API requests a minute per user). Prints the wall time, the requests per promotion
// of the first 50 and the last 50 (flat: nothing a promotion does grows with the MRs already
// open), the 429s GitLab answered (target 0: the pacer slows down first) and how many MRs,
// read back, change exactly their app's tag.
//
// SCALE_APPS=50 runs a smaller count (for a quick look); SCALE_CONCURRENCY changes the 8.
import { GitLab } from '../../src/gitlab/client.js';
import { pacerFor } from '../../src/gitlab/pacer.js';
import { type PromoteRequest, type PromoteResult, promote } from '../../src/promote/promote.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';

const OPS = 'root/helloworld-ops';
/** GitLab.com's authenticated API limit, per minute per user */
const GITLAB_COM_LIMIT = 2000;
const BOT_TOKEN = 'gitops-bot-token';

const name = (i: number) => `app-${String(i).padStart(3, '0')}`;
const file = (i: number) => `apps/${name(i)}/deployment.yml`;
const image = (i: number) => `registry.example.com/root/${name(i)}`;

function deployment(i: number): string {
  const app = name(i);
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${app}
  labels:
    app: ${app}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: ${app}
  template:
    metadata:
      labels:
        app: ${app}
    spec:
      containers:
        - name: ${app}
          image: ${image(i)}:ci-1
          ports:
            - containerPort: 80
`;
}

async function gitlabApi(sb: Sandbox, token: string, path: string, init: RequestInit = {}): Promise<unknown> {
  const r = await fetch(`${sb.apiUrl}${path}`, {
    ...init,
    headers: { 'PRIVATE-TOKEN': token, 'Content-Type': 'application/json' },
  });
  if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Runs `job(i)` for i in [0, n), `concurrency` at a time, in order of i. */
async function pool<T>(n: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return out;
}

/** Whether MR `iid` is app i's: its branch, and one file changed, the tag ci-1 → ci-2 only. */
async function correctMr(sb: Sandbox, i: number, iid: number): Promise<boolean> {
  const project = encodeURIComponent(OPS);
  const mr = (await gitlabApi(sb, 'reviewer-token', `/projects/${project}/merge_requests/${iid}`)) as {
    source_branch: string;
    target_branch: string;
    state: string;
  };
  if (
    mr.source_branch !== `gitops-bot/prod/${name(i)}` ||
    mr.target_branch !== 'main' ||
    mr.state !== 'opened'
  )
    return false;
  const diffs = (await gitlabApi(
    sb,
    'reviewer-token',
    `/projects/${project}/merge_requests/${iid}/diffs`,
  )) as Array<{
    new_path: string;
    old_path: string;
    diff: string;
  }>;
  if (diffs.length !== 1 || diffs[0].new_path !== file(i) || diffs[0].old_path !== file(i)) return false;
  const changed = diffs[0].diff
    .split('\n')
    .filter((l) => /^[-+]/.test(l) && !/^(---|\+\+\+) /.test(l))
    .map((l) => l[0] + l.slice(1).trim());
  return (
    changed.length === 2 &&
    changed[0] === `-image: ${image(i)}:ci-1` &&
    changed[1] === `+image: ${image(i)}:ci-2`
  );
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

export async function benchScaleApps(): Promise<Record<string, number | string>> {
  const apps = Number(process.env.SCALE_APPS ?? 500);
  const concurrency = Number(process.env.SCALE_CONCURRENCY ?? 8);
  const sb = await startSandbox({ port: 0, seed: 'story', rateLimit: GITLAB_COM_LIMIT });
  try {
    // the ops repo's 500 apps, in one commit (as operator: a budget of their own)
    await gitlabApi(sb, 'operator-token', `/projects/${encodeURIComponent(OPS)}/repository/commits`, {
      method: 'POST',
      body: JSON.stringify({
        branch: 'main',
        commit_message: `${apps} apps`,
        actions: Array.from({ length: apps }, (_, i) => ({
          action: 'create',
          file_path: file(i),
          content: deployment(i),
        })),
      }),
    });
    const request = (i: number): PromoteRequest => ({
      project: OPS,
      files: [file(i)],
      image: image(i),
      tag: 'ci-2',
      env: 'prod',
      assignees: ['operator'],
      targetBranch: 'main',
    });
    const started = performance.now();
    const results: PromoteResult[] = await pool(apps, concurrency, (i) =>
      promote(request(i), { gitlab: new GitLab({ url: sb.url, token: BOT_TOKEN }) }),
    );
    const wallS = (performance.now() - started) / 1000;
    const throttled = sb.throttled();
    const waitedS = pacerFor(new URL(sb.url).origin, BOT_TOKEN).waitedMs / 1000;

    const iids = results.map((r) => r.mr?.iid ?? 0);
    const verdicts = await pool(apps, concurrency, (i) =>
      results[i].action === 'created' && iids[i] ? correctMr(sb, i, iids[i]) : Promise.resolve(false),
    );
    // each its own MR: an iid shared by two promotions is correct for neither
    const shared = new Set(iids.filter((iid, i) => iids.indexOf(iid) !== i));
    const correct = verdicts.filter((ok, i) => ok && !shared.has(iids[i])).length;

    const requests = results.map((r) => r.requests);
    const edge = Math.min(50, Math.floor(apps / 2));
    const first = mean(requests.slice(0, edge));
    const last = mean(requests.slice(apps - edge));
    const botApi = sb.requests.filter((r) => r.user === 'gitops-bot' && r.path.startsWith('/api/v4/')).length;
    return {
      apps_promotions: apps,
      apps_concurrency: concurrency,
      apps_wall_s: wallS.toFixed(1),
      apps_requests_first_50: first.toFixed(2),
      apps_requests_last_50: last.toFixed(2),
      apps_flat_ratio: (last / first).toFixed(2),
      apps_429s: throttled,
      apps_correct_mrs: correct,
      apps_api_requests_per_min: ((botApi / wallS) * 60).toFixed(0),
      apps_pacer_wait_s: waitedS.toFixed(1),
    };
  } finally {
    await sb.close();
  }
}
