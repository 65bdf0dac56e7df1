// Git over smart HTTP at `http_url_to_repo`, served by the real `git http-backend` (CGI).
// Tokens are accepted as HTTP basic-auth passwords, as on GitLab. The protected default
// branch is enforced by the repository's pre-receive hook, which reads the pusher's access
// level from the environment we hand to http-backend.
import { spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { SandboxCore } from './core.js';
import { AccessLevel, type User } from './state.js';

const GIT_PATH = /^\/(.+?)\.git\/(info\/refs|git-upload-pack|git-receive-pack|HEAD|objects\/.+)$/;

export function isGitRequest(pathname: string): boolean {
  return GIT_PATH.test(pathname);
}

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'Content-Type': 'text/plain', ...headers });
  res.end(body);
}

/** The user of a basic-auth header whose password is a token (any username, as GitLab allows). */
export function basicAuthUser(core: SandboxCore, header: string | undefined): User | null {
  if (!header?.startsWith('Basic ')) return null;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const password = decoded.slice(decoded.indexOf(':') + 1);
  const user = core.store.userByToken(password);
  if (user) return user;
  const job = core.store.data.jobTokens.find((t) => t.token === password);
  return job ? (core.store.user(job.userId) ?? null) : null;
}

export async function handleGit(
  core: SandboxCore,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  /** told who is asking before the answer goes out (the request log is written on finish) */
  setUser: (username: string | null) => void = () => {},
): Promise<{ status: number; user: User | null }> {
  const m = GIT_PATH.exec(url.pathname)!;
  const [, projectPath, rest] = m;
  const user = basicAuthUser(core, req.headers.authorization);
  setUser(user?.username ?? null);
  const project = core.store.project(projectPath);
  const push = rest === 'git-receive-pack' || url.searchParams.get('service') === 'git-receive-pack';
  const challenge = { 'WWW-Authenticate': 'Basic realm="GitLab"' };
  if (!user && (push || !project || project.visibility !== 'public')) {
    text(res, 401, 'HTTP Basic: Access denied.\n', challenge);
    return { status: 401, user };
  }
  if (!project || !core.canRead(user, project)) {
    text(res, 404, 'The project you were looking for could not be found.\n');
    return { status: 404, user };
  }
  const level = core.accessLevel(user, project);
  if (push && level < AccessLevel.DEVELOPER) {
    text(res, 403, 'You are not allowed to push code to this project.\n');
    return { status: 403, user };
  }
  const repo = core.repo(project);
  const before = push && req.method === 'POST' ? await repo.branches() : null;

  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    GIT_PROJECT_ROOT: join(core.dataDir, 'repos'),
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: `/${project.namespace}/${project.path}.git/${rest}`,
    REQUEST_METHOD: req.method ?? 'GET',
    QUERY_STRING: url.search.slice(1),
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: '/nonexistent',
    SANDBOX_DENIED_BRANCHES: core.deniedBranches(user, project).join(' '),
    SANDBOX_PROTECTED_BRANCH: project.defaultBranch,
  };
  if (user) env.REMOTE_USER = user.username;
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding']);
  if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);

  const status = await new Promise<number>((resolve) => {
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let head: Buffer = Buffer.alloc(0);
    let headersDone = false;
    let code = 200;
    child.stderr.resume();
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      let end = head.indexOf('\r\n\r\n');
      let sepLen = 4;
      if (end < 0) {
        end = head.indexOf('\n\n');
        sepLen = 2;
      }
      if (end < 0) return;
      headersDone = true;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') code = Number.parseInt(v, 10) || 200;
        else headers[k] = v;
      }
      res.writeHead(code, headers);
      const body = head.subarray(end + sepLen);
      if (body.length) res.write(body);
    });
    child.on('close', () => {
      if (!headersDone) {
        code = 500;
        text(res, 500, 'git http-backend failed\n');
      } else res.end();
      resolve(code);
    });
    child.stdin.on('error', () => {});
    req.pipe(child.stdin);
  });

  if (before && user) {
    const after = await repo.branches();
    const old = new Map(before.map((b) => [b.name, b.sha]));
    const now = new Map(after.map((b) => [b.name, b.sha]));
    const names = new Set([...old.keys(), ...now.keys()]);
    for (const name of names) {
      const a = old.get(name) ?? '0'.repeat(40);
      const b = now.get(name) ?? '0'.repeat(40);
      if (a !== b) await core.refUpdated(user, project, name, a, b);
    }
  }
  return { status, user };
}
