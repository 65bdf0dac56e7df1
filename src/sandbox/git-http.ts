// Git over smart HTTP at `http_url_to_repo`, served by the real `git http-backend` (CGI).
// Tokens are accepted as HTTP basic-auth passwords, as on GitLab. The protected default
// branch is enforced by the repository's pre-receive hook, which reads the pusher's access
// level from the environment we hand to http-backend. Its post-receive hook writes down the
// refs a push moved, which the sandbox then processes as that token's user's push.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RefChange, SandboxCore } from './core.js';
import { AccessLevel, type User } from './state.js';

/** Appends `old new ref` of every ref the push moved to $SANDBOX_PUSH_LOG. */
export const POST_RECEIVE_HOOK = `#!/bin/sh
# gitops-bot sandbox: the refs this push moved, for the sandbox to process as GitLab's
# post-receive does (push events, merge request refresh, push hooks).
if [ -n "$SANDBOX_PUSH_LOG" ]; then cat >> "$SANDBOX_PUSH_LOG"; else cat > /dev/null; fi
exit 0
`;

/** Repositories made by older sandboxes lack the hook; written atomically, as a push may be running it. */
async function installPostReceive(repoDir: string): Promise<void> {
  const path = join(repoDir, 'hooks', 'post-receive');
  if ((await readFile(path, 'utf8').catch(() => null)) === POST_RECEIVE_HOOK) return;
  const tmp = `${path}.${randomUUID()}.tmp`;
  await writeFile(tmp, POST_RECEIVE_HOOK, { mode: 0o755 });
  await rename(tmp, path);
}

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
  const receiving = push && req.method === 'POST';
  const pushLog = receiving ? join(tmpdir(), `gitops-bot-sandbox-push-${randomUUID()}.log`) : null;
  if (receiving) await installPostReceive(core.repoDir(project));

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
  if (pushLog) env.SANDBOX_PUSH_LOG = pushLog;
  if (user) env.REMOTE_USER = user.username;
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding']);
  if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);

  let answered = false;
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
      } else answered = true;
      resolve(code);
    });
    child.stdin.on('error', () => {});
    req.pipe(child.stdin);
  });

  if (pushLog) {
    const log = await readFile(pushLog, 'utf8').catch(() => '');
    await rm(pushLog, { force: true });
    const changes: RefChange[] = [];
    for (const line of log.split('\n')) {
      const [before, after, ref] = line.split(' ');
      if (ref?.startsWith('refs/heads/')) changes.push({ branch: ref.slice(11), before, after });
    }
    // The pusher is the user the token belongs to, whatever the commits say.
    // Processed before the answer ends, so that a client sees its push's effects at once.
    try {
      if (changes.length && user) await core.refsUpdated(user, project, changes);
    } finally {
      if (answered) res.end();
    }
  } else if (answered) res.end();
  return { status, user };
}
