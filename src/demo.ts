// npm run demo: the GitOps story on the embedded sandbox. The developer's change is merged
// in the app repo, its pipeline "builds" helloworld:ci-34, and gitops-bot opens the merge
// request an operator approves. `--keep` leaves the sandbox running to explore.
import { Gitlab } from '@gitbeaker/rest';
import { GitLab } from './gitlab/client.js';
import { promote } from './promote/promote.js';
import { startSandbox } from './sandbox/index.js';

const APP = 'root/helloworld';
const OPS = 'root/helloworld-ops';
const IMAGE = 'registry.example.com/root/helloworld';

const keep = process.argv.includes('--keep');
const out = (s = '') => process.stdout.write(`${s}\n`);
const [bold, plain] = process.stdout.isTTY ? ['\x1b[1m', '\x1b[0m'] : ['', ''];
const step = (n: number, s: string) => out(`\n${bold}${n}. ${s}${plain}`);
const indent = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `   ${l}`)
    .join('\n');

const sb = await startSandbox({ port: keep ? 8929 : 0, seed: 'story' }).catch(() =>
  startSandbox({ port: 0 }),
);
try {
  out('gitops-bot demo: the GitOps story, played on an embedded GitLab sandbox');
  step(1, `sandbox ready: ${sb.url}`);
  out('   users: developer, reviewer, operator, argocd, gitops-bot (token: <username>-token)');
  out(`   projects: ${APP} (the app), ${OPS} (deployment.yml runs ${IMAGE}:ci-33)`);

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
  out(`   merged as ${String(merged.merge_commit_sha).slice(0, 8)}; pushed ${IMAGE}:ci-34`);

  step(4, 'the pipeline runs gitops-bot promote with the gitops-bot token');
  out(
    indent(
      `gitops-bot promote --project ${OPS} --file deployment.yml \\\n  --image ${IMAGE} --tag ci-34 --assignee operator --target-branch main`,
    ),
  );
  const result = await promote(
    {
      project: OPS,
      files: ['deployment.yml'],
      image: IMAGE,
      tag: 'ci-34',
      assignees: ['operator'],
      targetBranch: 'main',
      source: {
        project: APP,
        sha: String(merged.merge_commit_sha),
        pipelineIid: '34',
        pipelineUrl: `${sb.url}/${APP}/-/pipelines/34`,
      },
    },
    {
      gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }),
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
  const again = await promote(
    {
      project: OPS,
      files: ['deployment.yml'],
      image: IMAGE,
      tag: 'ci-34',
      assignees: ['operator'],
      targetBranch: 'main',
    },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  out(`   -> ${again.action} (${again.reason}), ${again.requests} requests`);

  out('\nNext in the story: the operator approves and merges; Argo CD deploys main.');
  if (keep) {
    const host = sb.url.replace('http://', '');
    out(`\nThe sandbox stays up (Ctrl-C to stop). Try:
   curl -s -H 'PRIVATE-TOKEN: operator-token' ${sb.apiUrl}/projects/${encodeURIComponent(OPS)}/merge_requests/${mr.iid} | head -c 600
   git clone http://oauth2:operator-token@${host}/${OPS}.git
   GITLAB_URL=${sb.url} GITOPS_BOT_TOKEN=gitops-bot-token npx gitops-bot promote --project ${OPS} \\
     --file deployment.yml --image ${IMAGE} --tag ci-35 --assignee operator --target-branch main`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } else {
    out('(npm run demo -- --keep leaves the sandbox running to explore it with git and curl)');
  }
} finally {
  await sb.close();
}
