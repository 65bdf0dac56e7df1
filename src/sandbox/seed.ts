// Seeds: `story` replays ../shared/reference/STORY.md (users, roles, the app and the ops
// repository); `empty` has only the administrator. What strict mode adds to the story (its
// policy, its protected branches) is here too, for the demo, the benches and the tests alike.
import type { SandboxCore } from './core.js';
import { AccessLevel, type Project, type User } from './state.js';

export type SeedName = 'story' | 'empty';

export const STORY_FILES = {
  helloworld: {
    'index.html': `<!DOCTYPE html>
<html>
  <head><title>helloworld</title></head>
  <body><h1>Hello World!!!</h1></body>
</html>
`,
    'nginx.conf': `server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html;
    }
}
`,
    Dockerfile: `FROM nginx:1.27-alpine
COPY nginx.conf /etc/nginx/conf.d/default.conf
COPY index.html /usr/share/nginx/html/index.html
EXPOSE 80
`,
  },
  'helloworld-ops': {
    'deployment.yml': `apiVersion: apps/v1
kind: Deployment
metadata:
  name: helloworld
  labels:
    app: helloworld
spec:
  replicas: 1
  selector:
    matchLabels:
      app: helloworld
  template:
    metadata:
      labels:
        app: helloworld
    spec:
      containers:
        - name: helloworld
          image: registry.example.com/root/helloworld:ci-33
          ports:
            - containerPort: 80
`,
    'service.yml': `apiVersion: v1
kind: Service
metadata:
  name: helloworld
spec:
  selector:
    app: helloworld
  ports:
    - port: 80
      targetPort: 80
`,
    'ingress.yml': `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: helloworld
spec:
  rules:
    - host: helloworld.192.168.64.10.nip.io
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: helloworld
                port:
                  number: 80
`,
  },
} as const;

/** The story's ops repository. */
const STORY_OPS = 'root/helloworld-ops';

/**
 * The story's strict-mode policy (.gitops-bot.yml): the operator approves, the bot merges into
 * main and deploys through deploy/prod. `production` adds keys to that environment, in the
 * order given (`{ agent: '{ argocd: helloworld }', deploy_timeout: '10m' }`).
 */
export function strictPolicy(production: Record<string, string> = {}): string {
  const extra = Object.entries(production).map(([key, value]) => `    ${key}: ${value}\n`);
  return `version: 1
environments:
  - name: production
    match: { target_branches: [main] }
    approvals: { required: 1, users: [operator] }
    merge: bot
    deploy_ref: deploy/prod
${extra.join('')}`;
}

/** main in strict mode: Maintainers push, Developers (the bot) merge (GitLab's protected_branches body). */
export const MAIN_PROTECTION = { name: 'main', push_access_level: 40, merge_access_level: 30 };

/** deploy/prod in strict mode: only gitops-bot (user `botId`) may push to it. */
export function deployRefProtection(botId: number): Record<string, unknown> {
  return {
    name: 'deploy/prod',
    push_access_level: 60,
    merge_access_level: 60,
    allowed_to_push: [{ user_id: botId }],
  };
}

/** Protects a branch of the story's ops repo through the sandbox's API (`apiUrl`), as operator. */
export async function protectBranch(apiUrl: string, rule: Record<string, unknown>): Promise<void> {
  const r = await fetch(`${apiUrl}/projects/${encodeURIComponent(STORY_OPS)}/protected_branches`, {
    method: 'POST',
    headers: { 'PRIVATE-TOKEN': 'operator-token', 'Content-Type': 'application/json' },
    body: JSON.stringify(rule),
  });
  if (!r.ok) throw new Error(`protecting ${String(rule.name)}: ${r.status} ${await r.text()}`);
}

export function addUser(core: SandboxCore, username: string, name: string, extra: Partial<User> = {}): User {
  const user: User = {
    id: core.store.nextId('user'),
    username,
    name,
    email: `${username}@example.com`,
    isAdmin: false,
    bot: false,
    token: `${username}-token`,
    createdAt: new Date().toISOString(),
    ...extra,
  };
  core.store.data.users.push(user);
  core.store.changed();
  return user;
}

export async function addProject(
  core: SandboxCore,
  owner: User,
  path: string,
  files: Record<string, string>,
  members: Record<string, number>,
  message: string,
): Promise<Project> {
  const project: Project = {
    id: core.store.nextId('project'),
    name: path,
    path,
    namespace: owner.username,
    description: '',
    defaultBranch: 'main',
    visibility: 'private',
    onlyAllowMergeIfPipelineSucceeds: false,
    removeSourceBranchAfterMerge: true,
    members: { [String(owner.id)]: AccessLevel.OWNER },
    nextMrIid: 1,
    createdAt: new Date().toISOString(),
  };
  for (const [username, level] of Object.entries(members)) {
    const u = core.store.userByName(username);
    if (u) project.members[String(u.id)] = level;
  }
  core.store.data.projects.push(project);
  await core.initRepo(project);
  await core.createCommit(owner, project, {
    branch: 'main',
    message,
    actions: Object.entries(files).map(([filePath, content]) => ({
      action: 'create' as const,
      filePath,
      content: Buffer.from(content),
    })),
  });
  core.store.changed();
  return project;
}

export async function seed(core: SandboxCore, name: SeedName): Promise<void> {
  const root = addUser(core, 'root', 'Administrator', { isAdmin: true });
  if (name === 'empty') return;
  for (const [username, fullName] of [
    ['developer', 'Developer'],
    ['reviewer', 'Reviewer'],
    ['operator', 'Operator'],
    ['argocd', 'Argo CD'],
    ['gitops-bot', 'gitops-bot'],
  ] as const) {
    addUser(core, username, fullName, { bot: username === 'gitops-bot' });
  }
  const { DEVELOPER, MAINTAINER, REPORTER } = AccessLevel;
  await addProject(
    core,
    root,
    'helloworld',
    STORY_FILES.helloworld,
    // gitops-bot reads the app's history to list what an image bump deploys (issue 8).
    { developer: DEVELOPER, reviewer: MAINTAINER, 'gitops-bot': REPORTER },
    'Hello World!!! served by nginx',
  );
  await addProject(
    core,
    root,
    'helloworld-ops',
    STORY_FILES['helloworld-ops'],
    { reviewer: DEVELOPER, operator: MAINTAINER, argocd: REPORTER, 'gitops-bot': DEVELOPER },
    'helloworld deployment, service and ingress',
  );
  // Approval rules can name a group instead of listing users (`approvals.groups`).
  const operator = core.store.userByName('operator')!;
  core.store.data.groups = [
    {
      id: core.store.nextId('group'),
      name: 'Operators',
      path: 'operators',
      visibility: 'internal',
      members: { [String(root.id)]: AccessLevel.OWNER, [String(operator.id)]: MAINTAINER },
      createdAt: new Date().toISOString(),
    },
  ];
  core.store.changed();
}
