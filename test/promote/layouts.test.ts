// Issue 18, ops repository layouts: the policy maps each environment to its files (globs)
// or its branch, and `promote --env E` needs no --file. One ops repository holds the four
// layouts the README shows, each environment named after its layout; the sandbox's Argo CD
// deploys the directory, the kustomize overlay (rendered by `kubectl kustomize`), the chart
// with its environment's values file and the staging branch, so what the bot merged is what
// runs. What changes is only the tag's bytes, in that environment's
// files, on that environment's branch.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type AgentWorld, agentWorld, argoAt, cli, settle } from '../agent-world.js';
import { OPS, protect } from '../helpers.js';
import { skipUnless } from '../tools.js';

const skip = skipUnless('docker-registry');
const skipKubectl = skip || skipUnless('kubectl');

const deployment = (name: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  selector:
    matchLabels: { app: ${name} }
  template:
    metadata:
      labels: { app: ${name} }
    spec:
      containers:
        - name: ${name}
          image: IMAGE:ci-33 # the tag the bot edits
`;
const SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: helloworld
spec:
  ports: [{ port: 80 }]
`;

const FILES: Record<string, string> = {
  // a directory per environment
  'envs/staging/deployment.yml': deployment('helloworld'),
  'envs/staging/service.yml': SERVICE,
  'envs/production/deployment.yml': deployment('helloworld'),
  // kustomize overlays over one base
  'base/deployment.yml': deployment('helloworld'),
  'base/kustomization.yaml': 'resources:\n  - deployment.yml\n',
  'overlays/staging/kustomization.yaml': `resources:
  - ../../base
images:
  - name: IMAGE
    newTag: ci-33
`,
  // Helm values per environment, for the chart in chart/
  'values-staging.yaml': 'replicaCount: 1\nimage:\n  repository: IMAGE\n  tag: "ci-33"\n',
  'chart/Chart.yaml': 'apiVersion: v2\nname: helloworld\nversion: 1.0.0\n',
  'chart/values.yaml':
    'replicaCount: 2\nimage:\n  repository: registry.example.com/root/helloworld\n  tag: latest\n',
  'chart/templates/deployment.yaml': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels: { app: {{ .Release.Name }} }
  template:
    metadata:
      labels: { app: {{ .Release.Name }} }
    spec:
      containers:
        - name: helloworld
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
`,
  'values-production.yaml': 'replicaCount: 3\nimage:\n  repository: IMAGE\n  tag: "ci-33"\n',
  // a branch per environment (the same file on main and on branch staging)
  'deployment.yml': deployment('helloworld'),
};

const POLICY = `version: 1
environments:
  - name: dir-staging
    match: { files: ['envs/staging/**'] }
    approvals: { required: 0 }
    merge: bot
  - name: kustomize-staging
    match: { files: [overlays/staging/kustomization.yaml] }
    approvals: { required: 0 }
    merge: bot
  - name: helm-staging
    match: { files: [values-staging.yaml] }
    approvals: { required: 0 }
    merge: bot
  - name: branch-staging
    match: { target_branches: [staging], files: [deployment.yml] }
    approvals: { required: 0 }
    merge: bot
  - name: production
    match: { target_branches: [main] }
    approvals: { required: 1, users: [operator] }
`;

let w: AgentWorld;
before(async () => {
  if (skip) return;
  w = await agentWorld({
    policy: POLICY,
    files: FILES,
    tags: ['ci-33', 'ci-34'],
    branches: ['staging'],
    apps: [
      {
        name: 'hw-dir',
        repo: OPS,
        path: 'envs/staging',
        targetRevision: 'main',
        destinationNamespace: 'staging',
      },
      {
        name: 'hw-kustomize',
        repo: OPS,
        path: 'overlays/staging',
        targetRevision: 'main',
        destinationNamespace: 'k',
      },
      {
        name: 'hw-helm',
        repo: OPS,
        path: 'chart',
        targetRevision: 'main',
        helm: { valueFiles: ['../values-staging.yaml'] },
        destinationNamespace: 'h',
      },
      {
        name: 'hw-branch',
        repo: OPS,
        path: '.',
        targetRevision: 'staging',
        directory: { include: 'deployment.yml' },
        destinationNamespace: 'b',
      },
    ],
  });
  // gitops-bot governs protected branches only: staging is one, as main
  await protect(w.sb, { name: 'staging', push_access_level: 40, merge_access_level: 30 });
});
after(() => w?.close());

/** `promote --env E` without --file, as the app pipeline runs it. */
async function promoteEnv(env: string, tag = 'ci-34') {
  const r = await cli(w, [
    'promote',
    '--project',
    OPS,
    '--env',
    env,
    '--image',
    w.image,
    '--tag',
    tag,
    '--no-verify-image',
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as {
    action: string;
    branch: string;
    mr: { iid: number };
    changes: Array<{ file: string; before: string; after: string }>;
  };
}

/** The MR's diff: path → its changed lines. */
async function changedLines(iid: number): Promise<Record<string, string[]>> {
  const diffs = (await w.op.MergeRequests.allDiffs(OPS, iid)) as Array<{ new_path: string; diff: string }>;
  return Object.fromEntries(
    diffs.map((d) => [d.new_path, d.diff.split('\n').filter((l) => /^[+-][^+-]/.test(l))]),
  );
}

test('a directory per environment: only the files under envs/staging/ that use the image', {
  skip,
}, async () => {
  const r = await promoteEnv('dir-staging');
  assert.equal(r.action, 'created');
  assert.equal(r.branch, 'gitops-bot/dir-staging/helloworld');
  assert.deepEqual(await changedLines(r.mr.iid), {
    'envs/staging/deployment.yml': [
      `-          image: ${w.image}:ci-33 # the tag the bot edits`,
      `+          image: ${w.image}:ci-34 # the tag the bot edits`,
    ],
  });
  await settle(w);
  const mr = await w.op.MergeRequests.show(OPS, r.mr.iid);
  assert.equal(mr.state, 'merged', 'approvals required 0, merge: bot');
  assert.equal(await argoAt(w, 'hw-dir', String(mr.merge_commit_sha)), 'Healthy');
  assert.deepEqual(w.sb.argocd!.get('hw-dir')!.status.summary.images, [`${w.image}:ci-34`]);
  const prod = String(await w.op.RepositoryFiles.showRaw(OPS, 'envs/production/deployment.yml', 'main'));
  assert.match(prod, /:ci-33 /, 'production untouched');
});

test("kustomize overlays: the overlay's images: newTag, not the base", { skip: skipKubectl }, async () => {
  const r = await promoteEnv('kustomize-staging');
  assert.equal(r.action, 'created');
  assert.deepEqual(await changedLines(r.mr.iid), {
    'overlays/staging/kustomization.yaml': ['-    newTag: ci-33', '+    newTag: ci-34'],
  });
  await settle(w);
  const mr = await w.op.MergeRequests.show(OPS, r.mr.iid);
  assert.equal(mr.state, 'merged');
  assert.equal(await argoAt(w, 'hw-kustomize', String(mr.merge_commit_sha)), 'Healthy');
  assert.deepEqual(w.sb.argocd!.get('hw-kustomize')!.status.summary.images, [`${w.image}:ci-34`]);
  const base = String(await w.op.RepositoryFiles.showRaw(OPS, 'base/deployment.yml', 'main'));
  assert.match(base, /:ci-33 /, "the base is not the environment's");
});

test("Helm values per environment: values-staging.yaml's tag, quotes kept; Argo CD renders the chart with it", {
  skip,
}, async () => {
  const r = await promoteEnv('helm-staging');
  assert.equal(r.action, 'created');
  assert.deepEqual(await changedLines(r.mr.iid), {
    'values-staging.yaml': ['-  tag: "ci-33"', '+  tag: "ci-34"'],
  });
  await settle(w);
  const mr = await w.op.MergeRequests.show(OPS, r.mr.iid);
  assert.equal(mr.state, 'merged');
  assert.equal(await argoAt(w, 'hw-helm', String(mr.merge_commit_sha)), 'Healthy');
  const app = w.sb.argocd!.get('hw-helm')!;
  assert.equal(app.status.sourceType, 'Helm');
  assert.deepEqual(
    app.status.summary.images,
    [`${w.image}:ci-34`],
    'the values file wins over the chart default',
  );
});

test('a branch per environment: the MR targets branch staging, which Argo CD deploys; main keeps its tag', {
  skip,
}, async () => {
  const r = await promoteEnv('branch-staging');
  assert.equal(r.action, 'created');
  const mr = await w.op.MergeRequests.show(OPS, r.mr.iid);
  assert.equal(mr.target_branch, 'staging');
  assert.deepEqual(Object.keys(await changedLines(r.mr.iid)), ['deployment.yml']);
  await settle(w);
  const merged = await w.op.MergeRequests.show(OPS, r.mr.iid);
  assert.equal(merged.state, 'merged');
  assert.equal(await argoAt(w, 'hw-branch', String(merged.merge_commit_sha)), 'Healthy');
  assert.deepEqual(w.sb.argocd!.get('hw-branch')!.status.summary.images, [`${w.image}:ci-34`]);
  assert.match(String(await w.op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'staging')), /:ci-34 /);
  assert.match(String(await w.op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main')), /:ci-33 /);
});

test('the same command again: noop; an unknown --env says what the policy has', { skip }, async () => {
  const again = await promoteEnv('helm-staging');
  assert.equal(again.action, 'noop');
  const r = await cli(w, ['promote', '--project', OPS, '--env', 'qa', '--image', w.image, '--tag', 'ci-34']);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /--env qa: \.gitops-bot\.yml on main has no environment named qa \(it has dir-staging, kustomize-staging, helm-staging, branch-staging, production\); pass --file/,
  );
  const none = await cli(w, [
    'promote',
    '--project',
    OPS,
    '--env',
    'production',
    '--image',
    w.image,
    '--tag',
    'ci-34',
  ]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /environments\[4\]\.match\.files in \.gitops-bot\.yml names no files/);
});
