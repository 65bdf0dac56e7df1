// npm run demo: the GitOps story on the embedded sandbox. The developer's change is merged
// in the app repo, its pipeline "builds" helloworld:ci-34, and gitops-bot opens the merge
// request an operator approves; the sandbox's Argo CD deploys it and gitops-bot reports
// back what it did. `--keep` leaves the sandbox running to explore; `--chain` plays the story
// with staging and production (src/demo-chain.ts).
import { Gitlab } from '@gitbeaker/rest';
import { readFacts } from './cli/status.js';
import { indent, out, serveOnSandbox, step } from './demo-kit.js';
import { renderStatusTable, statusRows } from './feedback/status.js';
import { GitLab, GitLabGate } from './gitlab/client.js';
import { promote } from './promote/promote.js';
import { RegistryClient } from './registry/client.js';
import { startDockerRegistry } from './sandbox/docker-registry.js';
import { pushImage } from './sandbox/images.js';
import {
  deployRefProtection,
  MAIN_PROTECTION,
  protectBranch,
  startSandbox,
  strictPolicy,
} from './sandbox/index.js';

const APP = 'root/helloworld';
const OPS = 'root/helloworld-ops';
const STORY_IMAGE = 'registry.example.com/root/helloworld';

const keep = process.argv.includes('--keep');
const POLICY = strictPolicy({ agent: '{ argocd: helloworld }' });

// --chain: the variant with staging feeding production (src/demo-chain.ts).
if (process.argv.includes('--chain')) {
  await (await import('./demo-chain.js')).chainDemo();
  process.exit(process.exitCode ?? 0);
}

// With Debian's docker-registry installed, the pipeline really pushes its image, and promote
// checks it and lists the app commits it carries. Without it, the story's image is a name.
const registry = await startDockerRegistry();
// The sandbox's Argo CD pulls from that registry: an image never pushed there is Degraded.
const argocd = {
  pollMs: 60_000,
  syncMs: 100,
  progressingMs: 400,
  registries: registry ? [registry.url] : [],
};
const sb = await startSandbox({ port: keep ? 8929 : 0, seed: 'story', argocd }).catch(() =>
  startSandbox({ port: 0, argocd }),
);
const IMAGE = registry ? `${registry.host}/root/helloworld` : STORY_IMAGE;
/** an image of root/helloworld built from `sha`, as the build template labels it */
const build = async (tag: string, sha: string) =>
  registry
    ? pushImage(registry.url, 'root/helloworld', tag, {
        labels: {
          'org.opencontainers.image.revision': sha,
          'org.opencontainers.image.source': `${sb.url}/${APP}`,
        },
      })
    : null;
/** Waits until Argo CD has synced `revision` and its health settled, and serve has written it back. */
async function argoSettled(revision: string, settle: () => Promise<void>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    await sb.argocd!.idle();
    const a = sb.argocd!.get('helloworld');
    const health = a?.status.health.status;
    if (a?.status.sync.revision === revision && health !== 'Progressing' && health !== 'Missing') break;
    await new Promise((r) => setTimeout(r, 25));
  }
  await sb.argocd!.idle();
  await settle();
}
/** The Deployment section gitops-bot keeps in the MR's sticky comment. */
async function deploymentSection(api: InstanceType<typeof Gitlab<false>>, iid: number): Promise<string> {
  const notes = await api.MergeRequestNotes.all(OPS, iid);
  const body = notes.find((n) => n.body.startsWith('<!-- gitops-bot:diff'))?.body ?? '';
  const at = body.indexOf('<!-- gitops-bot:deployment ');
  return at < 0 ? '(no Deployment section)' : body.slice(body.indexOf('\n', at) + 1);
}
/** A GitLab environment and its last deployment, as its page shows them. */
async function environmentText(api: InstanceType<typeof Gitlab<false>>, name: string): Promise<string> {
  const [env] = (await api.Environments.all(OPS, { name })) as Array<{ id: number }>;
  if (!env) return `(no environment ${name})`;
  const e = (await api.Environments.show(OPS, env.id)) as unknown as {
    name: string;
    state: string;
    tier: string;
    last_deployment?: {
      iid: number;
      status: string;
      sha: string;
      ref: string;
      user?: { username: string };
    } | null;
  };
  const d = e.last_deployment;
  return [
    `${e.name} (${e.state}, tier ${e.tier}; GitLab's Environments page folds it under "production")`,
    d
      ? `deployment #${d.iid}: ${d.status}, ${d.sha.slice(0, 8)} on ${d.ref}, by ${d.user?.username ?? '?'}`
      : 'no deployment',
  ].join('\n');
}
/** `gitops-bot status`, in-process. */
async function statusTable(): Promise<string> {
  const { facts } = await readFacts({ url: sb.url, token: 'gitops-bot-token' }, OPS);
  return renderStatusTable(statusRows(facts), facts.now);
}
try {
  out('gitops-bot demo: the GitOps story, played on an embedded GitLab sandbox');
  step(1, `sandbox ready: ${sb.url}`);
  out(
    `   argocd ready: ${sb.argocdUrl} (admin / argocd-admin; application helloworld tracks ${OPS} at deploy/prod)`,
  );
  out('   users: developer, reviewer, operator, argocd, gitops-bot (token: <username>-token)');
  out(`   projects: ${APP} (the app), ${OPS} (deployment.yml runs ${IMAGE}:ci-33)`);

  out('   operator adds the approval policy to main (protected: the only place rules are read)');
  out('   and starts gitops-bot serve:');
  const operatorApi = new Gitlab({ host: sb.url, token: 'operator-token' });
  await operatorApi.Commits.create(OPS, 'main', 'Approval policy', [
    { action: 'create', filePath: '.gitops-bot.yml', content: POLICY },
  ]);
  if (registry) {
    // ci-33, what runs today, was built from the app's first commit
    const appApi = new Gitlab({ host: sb.url, token: 'developer-token' });
    await build('ci-33', (await appApi.Commits.show(APP, 'main')).id);
    const dep = String(await operatorApi.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
    await operatorApi.Commits.create(OPS, 'main', 'Images come from the local registry', [
      { action: 'update', filePath: 'deployment.yml', content: dep.replace(STORY_IMAGE, IMAGE) },
    ]);
  }
  // deploy/prod starts at what runs today: history up to it is trusted as it stands, and
  // every later commit on main must come through an approved merge request.
  await operatorApi.Branches.create(OPS, 'deploy/prod', 'main');
  const gate = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  const botUser = await gate.currentUser();
  for (const rule of [MAIN_PROTECTION, deployRefProtection(botUser.id)]) await protectBranch(sb.apiUrl, rule);
  // Argo CD learns of pushes by GitLab's push webhook and notifies serve's POST /argocd, as
  // the README configures a real one (argocd-notifications-cm).
  const { server, url: serveUrl } = await serveOnSandbox(sb, OPS, { gitlab: gate, botUserId: botUser.id });
  out(indent(POLICY));
  out(`   serve: ${serveUrl}/webhook (hook registered on ${OPS}); Argo CD tracks deploy/prod`);
  out(`   and notifies ${serveUrl}/argocd`);
  const settle = () => sb.settle(server);

  step(2, `developer pushes feature/HW-001 to ${APP} and opens a merge request for reviewer`);
  const developer = new Gitlab({ host: sb.url, token: 'developer-token' });
  const reviewer = new Gitlab({ host: sb.url, token: 'reviewer-token' });
  const index = String(await developer.RepositoryFiles.showRaw(APP, 'index.html', 'main'));
  await developer.Commits.create(
    APP,
    'feature/HW-001',
    'HW-001: greet louder',
    [
      {
        action: 'update',
        filePath: 'index.html',
        content: index.replace('Hello World!!!', 'Hello World!!! (HW-001)'),
      },
    ],
    { startBranch: 'main' },
  );
  const reviewerId = (await developer.Users.all({ username: 'reviewer' }))[0].id;
  const appMr = await developer.MergeRequests.create(APP, 'feature/HW-001', 'main', 'HW-001: greet louder', {
    assigneeIds: [reviewerId],
  });
  out(`   ${appMr.web_url}`);

  step(3, 'reviewer merges it; the app pipeline #34 builds and pushes the image');
  const merged = await reviewer.MergeRequests.merge(APP, appMr.iid);
  const digest = await build('ci-34', String(merged.merge_commit_sha));
  out(
    `   merged as ${String(merged.merge_commit_sha).slice(0, 8)}; pushed ${IMAGE}:ci-34${digest ? ` (${digest.slice(0, 19)}…)` : ''}`,
  );
  if (!registry)
    out("   (install Debian's docker-registry to see promote check the image and list its commits)");

  step(4, 'the pipeline runs gitops-bot promote with the gitops-bot token');
  out(
    indent(
      `gitops-bot promote --project ${OPS} --env production --file deployment.yml \\\n  --image ${IMAGE} --tag ci-34 --assignee operator --target-branch main`,
    ),
  );
  // What the app pipeline asks for; step 6 asks again.
  const request = {
    project: OPS,
    env: 'production',
    files: ['deployment.yml'],
    image: IMAGE,
    tag: 'ci-34',
    assignees: ['operator'],
    targetBranch: 'main',
  };
  const result = await promote(
    {
      ...request,
      source: {
        project: APP,
        sha: String(merged.merge_commit_sha),
        pipelineIid: '34',
        pipelineUrl: `${sb.url}/${APP}/-/pipelines/34`,
      },
    },
    {
      gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }),
      ...(registry ? { registry: new RegistryClient() } : {}),
      progress: (l) => out(`   gitops-bot: ${l}`),
    },
  );
  out(`   -> ${result.action}: ${result.mr?.url} (${result.requests} requests to GitLab)`);

  step(5, `what the operator sees in ${OPS}`);
  const operator = new Gitlab({ host: sb.url, token: 'operator-token' });
  const mr = await operator.MergeRequests.show(OPS, result.mr!.iid);
  const assignees = (mr.assignees as Array<{ username: string }>).map((a) => a.username).join(', ');
  out(`   !${mr.iid} ${mr.title}`);
  out(
    `   assigned to ${assignees}; labels ${(mr.labels as string[]).join(', ')}; branch ${mr.source_branch}`,
  );
  out('\n   --- description ---');
  out(
    indent(
      String(mr.description).replace(/<!-- gitops-bot:record .* -->/, '<!-- gitops-bot:record {...} -->'),
    ),
  );
  const [note] = await operator.MergeRequestNotes.all(OPS, mr.iid);
  out('\n   --- comment ---');
  out(indent(note.body.replace(/<!-- gitops-bot:record .* -->\n/, '')));

  step(6, 'running the same promotion again changes nothing');
  const again = await promote(request, { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) });
  out(`   -> ${again.action} (${again.reason}), ${again.requests} requests`);

  await settle();
  const verdict = async () =>
    (await operator.MergeRequestNotes.all(OPS, mr.iid)).find((n) =>
      n.body.startsWith('<!-- gitops-bot:verdict'),
    )?.body ?? '';

  step(7, 'reviewer approves: a Developer on the ops repo, not an operator, so it does not count');
  await new Gitlab({ host: sb.url, token: 'reviewer-token' }).MergeRequestApprovals.approve(OPS, mr.iid);
  await settle();
  out(indent((await verdict()).replace(/<!-- gitops-bot:verdict -->\n/, '')));

  step(8, 'operator approves: the rules pass, gitops-bot merges and moves deploy/prod');
  await operator.MergeRequestApprovals.approve(OPS, mr.iid);
  await settle();
  const done = await operator.MergeRequests.show(OPS, mr.iid);
  const deployed = (await operator.Branches.show(OPS, 'deploy/prod')).commit.id;
  out(
    `   !${mr.iid} ${done.state} by ${(done.merged_by as { username: string } | null)?.username} as ${String(done.merge_commit_sha).slice(0, 8)}`,
  );
  out(
    `   deploy/prod -> ${deployed.slice(0, 8)}${deployed === done.merge_commit_sha ? ' (the merge commit: Argo CD deploys ci-34)' : ''}`,
  );

  step(9, 'Argo CD syncs deploy/prod; gitops-bot writes back what it reported');
  await argoSettled(deployed, settle);
  const app = sb.argocd!.get('helloworld')!;
  out(
    `   argocd: helloworld ${app.status.sync.status} at ${String(app.status.sync.revision).slice(0, 8)}, ${app.status.health.status}; images ${(app.status.summary.images ?? []).join(', ')}`,
  );
  out(`\n   --- the Deployment section of !${mr.iid}'s comment ---`);
  out(indent(await deploymentSection(operator, mr.iid)));
  out('\n   --- GitLab environment production/helloworld ---');
  out(indent(await environmentText(operator, 'production/helloworld')));
  out(`\n   --- note on ${APP}!${appMr.iid} ---`);
  const appNote = (await developer.MergeRequestNotes.all(APP, appMr.iid)).find((n) =>
    n.body.startsWith('<!-- gitops-bot:deployed'),
  );
  out(
    indent(`@${appNote?.author.username ?? '?'}: ${(appNote?.body ?? '(none)').replace(/^<!--.*-->\n/, '')}`),
  );

  step(10, `the pipeline #35 builds ci-35 but its push fails; promote runs anyway (--no-verify-image)`);
  const ci35 = await promote(
    {
      ...request,
      tag: 'ci-35',
      source: { project: APP, sha: String(merged.merge_commit_sha), pipelineIid: '35' },
    },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  await settle();
  out(`   -> ${ci35.action}: ${ci35.mr?.url}`);
  out(`\n   $ gitops-bot status --project ${OPS}`);
  out(indent(await statusTable()));

  step(11, `operator approves !${ci35.mr!.iid}; Argo CD syncs ci-35 and cannot pull it`);
  await operator.MergeRequestApprovals.approve(OPS, ci35.mr!.iid);
  await settle();
  const deployed35 = (await operator.Branches.show(OPS, 'deploy/prod')).commit.id;
  await argoSettled(deployed35, settle);
  const app35 = sb.argocd!.get('helloworld')!;
  if (!registry)
    out("   (without Debian's docker-registry the sandbox's Argo CD cannot tell the image is missing)");
  out(
    `   argocd: helloworld ${app35.status.sync.status} at ${deployed35.slice(0, 8)}, ${app35.status.health.status}: ${app35.status.health.message ?? ''}`,
  );
  const alert = (await operator.MergeRequestNotes.all(OPS, ci35.mr!.iid)).find((n) =>
    n.body.startsWith('<!-- gitops-bot:deploy-alert'),
  );
  out(`\n   --- the alert on !${ci35.mr!.iid} ---`);
  out(indent(`@${alert?.author.username ?? '?'}: ${(alert?.body ?? '(none)').replace(/^<!--.*-->\n/, '')}`));
  out(`\n   --- the Deployment section of !${ci35.mr!.iid}'s comment ---`);
  out(indent(await deploymentSection(operator, ci35.mr!.iid)));
  out(`\n   $ gitops-bot status --project ${OPS}`);
  out(indent(await statusTable()));

  step(12, 'reviewer tries his own rules: a branch he creates, with a policy needing 0 approvals');
  const evilPolicy = POLICY.replace('[main]', '[evil-base]').replace('required: 1', 'required: 0');
  await reviewer.Branches.create(OPS, 'evil-base', 'main');
  await reviewer.Commits.create(OPS, 'evil-base', 'My rules', [
    { action: 'update', filePath: '.gitops-bot.yml', content: evilPolicy },
  ]);
  const dep = String(await reviewer.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'evil-base'));
  await reviewer.Commits.create(
    OPS,
    'evil-head',
    'Five replicas',
    [{ action: 'update', filePath: 'deployment.yml', content: dep.replace(/replicas: \d+/, 'replicas: 5') }],
    { startBranch: 'evil-base' },
  );
  const evil = await reviewer.MergeRequests.create(OPS, 'evil-head', 'evil-base', 'Five replicas');
  await settle();
  const evilVerdict = (await operator.MergeRequestNotes.all(OPS, evil.iid)).find((n) =>
    n.body.startsWith('<!-- gitops-bot:verdict'),
  )?.body;
  out(
    indent(
      String(evilVerdict ?? '')
        .split('\n')
        .filter((l) => /Not ready|ignored/.test(l))
        .join('\n'),
    ),
  );
  out(`   !${evil.iid} stays open; deploy/prod stays at ${deployed35.slice(0, 8)}`);
  await server.close();

  out('\nEvery change records who made it, who approved it and when it was deployed.');
  if (keep) {
    const host = sb.url.replace('http://', '');
    out(`\nThe sandbox stays up (Ctrl-C to stop). Try:
   curl -s -H 'PRIVATE-TOKEN: operator-token' ${sb.apiUrl}/projects/${encodeURIComponent(OPS)}/merge_requests/${mr.iid} | head -c 600
   git clone http://oauth2:operator-token@${host}/${OPS}.git
   GITLAB_URL=${sb.url} GITOPS_BOT_TOKEN=gitops-bot-token npx gitops-bot promote --project ${OPS} \\
     --file deployment.yml --image ${IMAGE} --tag ci-36 --assignee operator --target-branch main${
       registry
         ? ` \\
     --no-verify-image   # ci-36 is not in the registry at ${registry.url}`
         : ''
     }`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } else {
    out('(npm run demo -- --keep leaves the sandbox running to explore it with git and curl)');
  }
} finally {
  await Promise.all([sb.close(), registry?.close()]);
}
