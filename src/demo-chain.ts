// npm run demo -- --chain: the story with two environments. The ops repo has a directory per
// environment (envs/staging, envs/production) and the sandbox's Argo CD one Application for
// each. ci-34 lands in staging, becomes healthy, and after a short soak gitops-bot opens the
// production MR itself, assigned to the operator. Then a bad ci-35 (never pushed to the
// registry) degrades staging: gitops-bot opens the rollback MR and merges it by the rollback
// rules, ci-35 is rejected in staging, and production never sees it.
import { Gitlab } from '@gitbeaker/rest';
import { indent, out, serveOnSandbox, step } from './demo-kit.js';
import { GitLab, GitLabGate } from './gitlab/client.js';
import { type PromoteResult, promote } from './promote/promote.js';
import { startDockerRegistry } from './sandbox/docker-registry.js';
import { pushImage } from './sandbox/images.js';
import { MAIN_PROTECTION, protectBranch, startSandbox } from './sandbox/index.js';

const OPS = 'root/helloworld-ops';
const SOAK = '3s';
const CHAIN_POLICY = `version: 1
environments:
  - name: staging
    match: { files: ['envs/staging/**'] }
    approvals: { required: 0 }
    merge: bot
    agent: { argocd: helloworld-staging }
    on_degraded: rollback
    rollback: { approvals: { required: 0 }, merge: bot }
  - name: production
    match: { files: ['envs/production/**'] }
    approvals: { required: 1, users: [operator] }
    merge: bot
    agent: { argocd: helloworld-production }
promotion:
  - { from: staging, to: production, when: healthy, soak: ${SOAK}, assignees: [operator] }
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (every 50 ms, up to `ms`) until it returns a value; fails naming `what`. */
async function until<T>(
  what: string,
  check: () => Promise<T | null | undefined | false>,
  ms = 30_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`demo: timed out waiting for ${what}`);
    await sleep(50);
  }
}

export async function chainDemo(): Promise<void> {
  const registry = await startDockerRegistry();
  const app = (env: string) => ({
    name: `helloworld-${env}`,
    repo: OPS,
    path: `envs/${env}`,
    targetRevision: 'main',
    destinationNamespace: `helloworld-${env}`,
  });
  const argocd = {
    pollMs: 60_000,
    syncMs: 100,
    progressingMs: 300,
    registries: registry ? [registry.url] : [],
    apps: [app('staging'), app('production')],
  };
  const sb = await startSandbox({ port: 0, seed: 'story', argocd });
  const image = registry ? `${registry.host}/root/helloworld` : 'registry.example.com/root/helloworld';
  try {
    out('gitops-bot demo --chain: staging feeds production, on the embedded GitLab sandbox');
    step(
      1,
      `sandbox ready: ${sb.url}; Argo CD ${sb.argocdUrl} runs helloworld-staging and helloworld-production`,
    );
    const op = new Gitlab({ host: sb.url, token: 'operator-token' });
    if (registry) for (const tag of ['ci-33', 'ci-34']) await pushImage(registry.url, 'root/helloworld', tag);
    else out("   (without Debian's docker-registry nothing is Degraded: install it to see the rollback)");
    const base = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main')).replace(
      'registry.example.com/root/helloworld',
      image,
    );
    await op.Commits.create(OPS, 'main', 'Environments staging and production, and the chain', [
      { action: 'create', filePath: '.gitops-bot.yml', content: CHAIN_POLICY },
      { action: 'create', filePath: 'envs/staging/deployment.yml', content: base },
      { action: 'create', filePath: 'envs/production/deployment.yml', content: base },
    ]);
    await protectBranch(sb.apiUrl, MAIN_PROTECTION);
    out('   operator adds envs/staging/, envs/production/ (both at ci-33) and the policy to main:');
    out(indent(CHAIN_POLICY));

    const gate = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
    const bot = await gate.currentUser();
    const { server, url: serveUrl } = await serveOnSandbox(sb, OPS, { gitlab: gate, botUserId: bot.id });
    out(`   gitops-bot serve: ${serveUrl} (GitLab's webhooks and Argo CD's notifications)`);
    const settle = async () => {
      await sb.argocd!.idle();
      await sb.settle(server);
    };
    const health = (env: string) => {
      const a = sb.argocd!.get(`helloworld-${env}`)!;
      return `${a.status.health.status}${a.status.health.message ? `: ${a.status.health.message}` : ''}, images ${(a.status.summary.images ?? []).join(', ')}`;
    };
    const toStaging = async (tag: string): Promise<PromoteResult> => {
      out(indent(`gitops-bot promote --project ${OPS} --env staging --image ${image} --tag ${tag}`));
      return promote(
        { project: OPS, files: [], env: 'staging', image, tag, verifyImage: false },
        { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
      );
    };
    const mergedAndDeployed = async (iid: number, env: string) => {
      const mr = await until(`!${iid} merged`, async () => {
        await settle();
        const m = await op.MergeRequests.show(OPS, iid);
        return m.state === 'merged' ? m : null;
      });
      await until(`helloworld-${env} at ${String(mr.merge_commit_sha).slice(0, 8)}`, async () => {
        await settle();
        const a = sb.argocd!.get(`helloworld-${env}`)!;
        const h = a.status.health.status;
        return a.status.sync.revision === mr.merge_commit_sha && h !== 'Progressing' && h !== 'Missing';
      });
      await settle();
      return mr;
    };
    const productionMrs = () =>
      op.MergeRequests.all({
        projectId: OPS,
        sourceBranch: 'gitops-bot/production/helloworld',
        state: 'opened',
      });

    step(
      2,
      'the app pipeline #34 promotes ci-34 into staging (no --file: the policy maps staging to envs/staging/)',
    );
    const r34 = await toStaging('ci-34');
    out(`   -> ${r34.action} !${r34.mr?.iid} on ${r34.branch}`);
    const m34 = await mergedAndDeployed(r34.mr!.iid, 'staging');
    out(`   staging needs no approval: gitops-bot merged it (${String(m34.merge_commit_sha).slice(0, 8)})`);
    out(`   argocd helloworld-staging: ${health('staging')}`);
    const soakStarted = Date.now();
    out(`   production right after: ${(await productionMrs()).length} merge requests (the soak is ${SOAK})`);

    step(3, `after the soak, gitops-bot opens the production MR itself`);
    const [prod] = await until('the production MR', async () => {
      await settle();
      const l = await productionMrs();
      return l.length ? l : null;
    });
    out(
      `   !${prod.iid} ${prod.title} (${((Date.now() - soakStarted) / 1000).toFixed(1)} s after staging was healthy)`,
    );
    out(
      `   assigned to ${(prod.assignees as Array<{ username: string }>).map((a) => a.username).join(', ')}`,
    );
    const promoted = String(prod.description)
      .split('\n')
      .find((l) => l.includes('Promoted from'));
    out(`   ${promoted ?? ''}`);

    step(4, 'the app pipeline #35 promotes ci-35, whose image push had failed');
    const r35 = await toStaging('ci-35');
    const m35 = await until(`!${r35.mr!.iid} merged`, async () => {
      await settle();
      const m = await op.MergeRequests.show(OPS, r35.mr!.iid);
      return m.state === 'merged' ? m : null;
    });
    out(
      `   gitops-bot merged !${r35.mr!.iid} (${String(m35.merge_commit_sha).slice(0, 8)}); Argo CD syncs it and cannot pull the image`,
    );
    // what the feedback loop wrote on the deployed commit (the rollback may already be on its way)
    const failed = await until('the failure on ci-35', async () => {
      await settle();
      const statuses = await op.Commits.allStatuses(OPS, String(m35.merge_commit_sha));
      return statuses.find((x) => x.name === 'gitops-bot/deploy' && x.status === 'failed') ?? null;
    });
    out(
      `   gitops-bot/deploy on ${String(m35.merge_commit_sha).slice(0, 8)}: ${failed.status}, ${failed.description}`,
    );

    step(5, 'on_degraded: rollback: gitops-bot opens the rollback MR and merges it by the rollback rules');
    const rollbackMr = await until('the rollback MR merged', async () => {
      await settle();
      const l = await op.MergeRequests.all({ projectId: OPS, labels: 'rollback', state: 'merged' });
      return l[0] ?? null;
    });
    out(`   !${rollbackMr.iid} ${rollbackMr.title} (labels ${(rollbackMr.labels as string[]).join(', ')})`);
    const reason = String(rollbackMr.description)
      .split('\n')
      .find((l) => l.startsWith('Reason:'));
    out(`   ${reason ?? ''}`);
    await mergedAndDeployed(rollbackMr.iid, 'staging');
    out(`   argocd helloworld-staging: ${health('staging')}`);

    step(6, 'ci-35 is rejected in staging, and production never sees it');
    const again = await toStaging('ci-35');
    out(`   -> ${again.action}: ${again.reason}`);
    const [still] = await productionMrs();
    out(`   production: !${still.iid} ${still.title}; argocd helloworld-production: ${health('production')}`);

    step(7, `operator approves !${still.iid}: production gets ci-34`);
    await op.MergeRequestApprovals.approve(OPS, still.iid, { sha: still.sha });
    await mergedAndDeployed(still.iid, 'production');
    out(`   argocd helloworld-production: ${health('production')}`);
    // Both Applications track main: each MR's Deployment section names its own environment.
    for (const iid of [r34.mr!.iid, still.iid]) {
      const notes = await op.MergeRequestNotes.all(OPS, iid);
      const rows = notes
        .map((n) => String(n.body))
        .filter((b) => b.includes('### Deployment'))
        .flatMap((b) =>
          b
            .slice(b.indexOf('### Deployment'))
            .split('\n')
            .filter((l) => l.startsWith('- ')),
        );
      out(`   !${iid}'s Deployment section: ${rows.map((l) => l.slice(2)).join('; ') || '(none)'}`);
    }
    await server.close();
    out('\nEvery step was computed from GitLab: Deployments, merge requests and their records.');
  } finally {
    await Promise.all([sb.close(), registry?.close()]);
  }
}
