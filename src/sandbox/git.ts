// Real git for the sandbox's repositories. Everything is done with the `git` CLI on bare
// repositories: reads go through one long-lived `git cat-file --batch` per repository
// (spawning a process per read would cap us far below 300 reads/s), writes build commits
// with plumbing (read-tree / update-index / write-tree / commit-tree) and publish them with
// a compare-and-swap `git update-ref`, so concurrent writers can never lose a commit.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const ZERO_SHA = '0000000000000000000000000000000000000000';

export class GitError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export interface RunOptions {
  cwd: string;
  input?: string | Buffer;
  env?: Record<string, string>;
  /** exit codes that are not errors (e.g. 1 for `merge-tree` conflicts) */
  okCodes?: number[];
}

/** Runs git and resolves with stdout; rejects with GitError on an unexpected exit code. */
export function git(args: string[], opts: RunOptions): Promise<{ stdout: Buffer; code: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd: opts.cwd,
      env: { ...process.env, ...gitEnv, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.stdin.on('error', () => {});
    child.on('close', (code) => {
      const stdout = Buffer.concat(out);
      const ok = code === 0 || (code !== null && (opts.okCodes ?? []).includes(code));
      if (ok) resolve({ stdout, code: code ?? 0 });
      else {
        const stderr = Buffer.concat(err).toString('utf8');
        reject(new GitError(`git ${args[0]} failed (${code}): ${stderr.trim()}`, code, stderr));
      }
    });
    child.stdin.end(opts.input ?? '');
  });
}

// Git must never read the user's config or prompt: the sandbox is a server.
const gitEnv: Record<string, string> = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_TERMINAL_PROMPT: '0',
  HOME: '/nonexistent',
  XDG_CONFIG_HOME: '/nonexistent',
  LC_ALL: 'C',
};

export interface GitObject {
  oid: string;
  type: string;
  content: Buffer;
}

/** Serialises requests to one `git cat-file --batch` process. */
class BatchReader {
  private child: ChildProcessWithoutNullStreams | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private queue: Array<{ resolve: (o: GitObject | null) => void; reject: (e: Error) => void }> = [];

  constructor(private readonly dir: string) {}

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn('git', ['cat-file', '--batch'], {
      cwd: this.dir,
      env: { ...process.env, ...gitEnv },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (b: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, b]) : b;
      this.drain();
    });
    child.stdin.on('error', () => {});
    child.on('close', () => {
      if (this.child === child) this.child = null;
      const pending = this.queue.splice(0);
      for (const p of pending) p.reject(new GitError('git cat-file exited', null, ''));
    });
    this.child = child;
    return child;
  }

  private drain(): void {
    while (this.queue.length) {
      const nl = this.buf.indexOf(10);
      if (nl < 0) return;
      const header = this.buf.subarray(0, nl).toString('utf8');
      if (header.endsWith(' missing') || header.endsWith(' ambiguous')) {
        this.buf = this.buf.subarray(nl + 1);
        this.queue.shift()!.resolve(null);
        continue;
      }
      const [oid, type, sizeStr] = header.split(' ');
      const size = Number(sizeStr);
      if (this.buf.length < nl + 1 + size + 1) return;
      const content = Buffer.from(this.buf.subarray(nl + 1, nl + 1 + size));
      this.buf = this.buf.subarray(nl + 1 + size + 1);
      this.queue.shift()!.resolve({ oid, type, content });
    }
  }

  read(spec: string): Promise<GitObject | null> {
    if (spec.includes('\n') || spec.includes('\r')) return Promise.resolve(null);
    const child = this.child ?? this.start();
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      child.stdin.write(`${spec}\n`);
    });
  }

  close(): void {
    this.child?.stdin.end();
    this.child = null;
  }
}

export interface CommitInfo {
  id: string;
  parentIds: string[];
  authorName: string;
  authorEmail: string;
  authoredDate: string;
  committerName: string;
  committerEmail: string;
  committedDate: string;
  message: string;
}

export interface TreeEntry {
  mode: string;
  type: 'blob' | 'tree' | 'commit';
  oid: string;
  path: string;
}

export interface FileDiff {
  oldPath: string;
  newPath: string;
  aMode: string;
  bMode: string;
  newFile: boolean;
  renamedFile: boolean;
  deletedFile: boolean;
  /** GitLab's `diff` field: the patch from the first hunk header on */
  diff: string;
}

export interface Identity {
  name: string;
  email: string;
}

export type CommitAction =
  | { action: 'create' | 'update'; filePath: string; content: Buffer; executable?: boolean }
  | { action: 'delete'; filePath: string }
  | { action: 'move'; filePath: string; previousPath: string; content?: Buffer }
  | { action: 'chmod'; filePath: string; executable: boolean };

export class ActionError extends Error {}

const COMMIT_FORMAT = ['%H', '%P', '%an', '%ae', '%aI', '%cn', '%ce', '%cI', '%B'].join('%x1f');

function parseCommitRecords(out: string): CommitInfo[] {
  return out
    .split('\0')
    .filter((r) => r.trim().length > 0)
    .map((rec) => {
      const [id, parents, an, ae, ad, cn, ce, cd, message] = rec.replace(/^\n/, '').split('\x1f');
      return {
        id,
        parentIds: parents ? parents.split(' ') : [],
        authorName: an,
        authorEmail: ae,
        authoredDate: ad,
        committerName: cn,
        committerEmail: ce,
        committedDate: cd,
        message: message ?? '',
      };
    });
}

/** One bare repository. */
export class Repo {
  private readonly reader: BatchReader;
  // `git log -1 -- path` is the expensive part of a file read; commits are immutable, so
  // the answer for (commit, path) never changes.
  private readonly lastCommitCache = new Map<string, string | null>();

  constructor(readonly dir: string) {
    this.reader = new BatchReader(dir);
  }

  static async init(dir: string, defaultBranch: string, hookScript: string): Promise<Repo> {
    await mkdir(dir, { recursive: true });
    await git(['init', '--bare', '--quiet', `--initial-branch=${defaultBranch}`], { cwd: dir });
    await git(['config', 'gc.auto', '0'], { cwd: dir });
    await git(['config', 'receive.advertisePushOptions', 'true'], { cwd: dir });
    await writeFile(join(dir, 'hooks', 'pre-receive'), hookScript, { mode: 0o755 });
    return new Repo(dir);
  }

  close(): void {
    this.reader.close();
  }

  run(args: string[], opts: Omit<RunOptions, 'cwd'> = {}) {
    return git(args, { ...opts, cwd: this.dir });
  }

  /** Resolves a branch name, tag or (abbreviated) SHA to a commit id. */
  async resolve(ref: string): Promise<string | null> {
    if (!ref || ref.startsWith('-') || ref.includes('..') || /[\s~^:?*[\\]/.test(ref)) return null;
    if (ref === 'HEAD') return (await this.reader.read('HEAD^{commit}'))?.oid ?? null;
    // Branches win over tags and SHAs, as in GitLab.
    const branch = await this.reader.read(`refs/heads/${ref}^{commit}`);
    if (branch) return branch.oid;
    const tag = await this.reader.read(`refs/tags/${ref}^{commit}`);
    if (tag) return tag.oid;
    if (/^[0-9a-f]{7,40}$/.test(ref)) return (await this.reader.read(`${ref}^{commit}`))?.oid ?? null;
    return null;
  }

  async branchHead(branch: string): Promise<string | null> {
    if (!branch || branch.includes('\n')) return null;
    return (await this.reader.read(`refs/heads/${branch}^{commit}`))?.oid ?? null;
  }

  /** The blob at `path` in `commit`, or null when there is none. */
  async blob(commit: string, path: string): Promise<{ oid: string; content: Buffer } | null> {
    const obj = await this.reader.read(`${commit}:${path}`);
    if (obj?.type !== 'blob') return null;
    return { oid: obj.oid, content: obj.content };
  }

  async entryMode(commit: string, path: string): Promise<string | null> {
    const { stdout } = await this.run(['ls-tree', '-z', commit, '--', path]);
    const line = stdout.toString('utf8').split('\0')[0];
    return line ? line.split(' ')[0] : null;
  }

  async lastCommitFor(commit: string, path: string): Promise<string | null> {
    const key = `${commit}\0${path}`;
    const cached = this.lastCommitCache.get(key);
    if (cached !== undefined) return cached;
    const { stdout } = await this.run(['log', '-1', '--format=%H', commit, '--', path]);
    const sha = stdout.toString('utf8').trim() || null;
    if (this.lastCommitCache.size > 50_000) this.lastCommitCache.clear();
    this.lastCommitCache.set(key, sha);
    return sha;
  }

  async commit(sha: string): Promise<CommitInfo | null> {
    const id = await this.resolve(sha);
    if (!id) return null;
    const { stdout } = await this.run(['show', '-s', '-z', `--format=${COMMIT_FORMAT}`, id]);
    return parseCommitRecords(stdout.toString('utf8'))[0] ?? null;
  }

  async log(
    range: string[],
    opts: { path?: string; skip?: number; max?: number; since?: string; until?: string } = {},
  ): Promise<CommitInfo[]> {
    const args = ['log', '-z', `--format=${COMMIT_FORMAT}`];
    if (opts.skip) args.push(`--skip=${opts.skip}`);
    if (opts.max !== undefined) args.push(`--max-count=${opts.max}`);
    if (opts.since) args.push(`--since=${opts.since}`);
    if (opts.until) args.push(`--until=${opts.until}`);
    args.push(...range, '--');
    if (opts.path) args.push(opts.path);
    const { stdout } = await this.run(args);
    return parseCommitRecords(stdout.toString('utf8'));
  }

  async tree(commit: string, path: string, recursive: boolean): Promise<TreeEntry[] | null> {
    const spec = path ? `${commit}:${path.replace(/\/+$/, '')}` : `${commit}^{tree}`;
    const obj = await this.reader.read(spec);
    if (obj?.type !== 'tree') return null;
    const args = ['ls-tree', '-z', ...(recursive ? ['-r', '-t'] : []), obj.oid];
    const { stdout } = await this.run(args);
    const prefix = path ? `${path.replace(/\/+$/, '')}/` : '';
    return stdout
      .toString('utf8')
      .split('\0')
      .filter(Boolean)
      .map((line) => {
        const tab = line.indexOf('\t');
        const [mode, type, oid] = line.slice(0, tab).split(' ');
        return { mode, type: type as TreeEntry['type'], oid, path: prefix + line.slice(tab + 1) };
      });
  }

  async branches(): Promise<Array<{ name: string; sha: string }>> {
    const { stdout } = await this.run([
      'for-each-ref',
      '--format=%(objectname) %(refname:strip=2)',
      'refs/heads',
    ]);
    return stdout
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const sp = l.indexOf(' ');
        return { sha: l.slice(0, sp), name: l.slice(sp + 1) };
      });
  }

  /** Compare-and-swap: succeeds only if the ref still points at `old` (ZERO_SHA: must not exist). */
  async updateRef(ref: string, newSha: string, old: string): Promise<boolean> {
    try {
      await this.run(['update-ref', ref, newSha, old]);
      return true;
    } catch (e) {
      if (e instanceof GitError) return false;
      throw e;
    }
  }

  async deleteRef(ref: string, old: string): Promise<boolean> {
    try {
      await this.run(['update-ref', '-d', ref, old]);
      return true;
    } catch (e) {
      if (e instanceof GitError) return false;
      throw e;
    }
  }

  async isValidBranchName(name: string): Promise<boolean> {
    if (!name || name === 'HEAD' || name.startsWith('-')) return false;
    const r = await this.run(['check-ref-format', '--branch', name], { okCodes: [1, 128] });
    return r.code === 0;
  }

  async isAncestor(a: string, b: string): Promise<boolean> {
    const r = await this.run(['merge-base', '--is-ancestor', a, b], { okCodes: [1] });
    return r.code === 0;
  }

  async mergeBase(a: string, b: string): Promise<string | null> {
    const r = await this.run(['merge-base', a, b], { okCodes: [1] });
    return r.code === 0 ? r.stdout.toString('utf8').trim() : null;
  }

  /** Builds a commit on `base` (null: a root commit) from GitLab-style actions. Does not move any ref. */
  async buildCommit(
    base: string | null,
    actions: CommitAction[],
    message: string,
    author: Identity,
    committer: Identity = author,
  ): Promise<string> {
    const index = join(this.dir, `index-${randomBytes(6).toString('hex')}`);
    const env = { GIT_INDEX_FILE: index };
    try {
      await this.run(base ? ['read-tree', base] : ['read-tree', '--empty'], { env });
      const lines: string[] = [];
      for (const a of actions) {
        const existing = base ? await this.reader.read(`${base}:${a.filePath}`) : null;
        const exists = existing?.type === 'blob';
        const currentMode = exists && base ? await this.entryMode(base, a.filePath) : null;
        switch (a.action) {
          case 'create': {
            if (exists) throw new ActionError('A file with this name already exists');
            const oid = await this.hashObject(a.content);
            lines.push(`${a.executable ? '100755' : '100644'} ${oid}\t${a.filePath}`);
            break;
          }
          case 'update': {
            if (!exists) throw new ActionError("A file with this name doesn't exist");
            const oid = await this.hashObject(a.content);
            lines.push(`${currentMode ?? '100644'} ${oid}\t${a.filePath}`);
            break;
          }
          case 'delete':
            if (!exists) throw new ActionError("A file with this name doesn't exist");
            lines.push(`0 ${ZERO_SHA}\t${a.filePath}`);
            break;
          case 'chmod':
            if (!exists) throw new ActionError("A file with this name doesn't exist");
            lines.push(`${a.executable ? '100755' : '100644'} ${existing!.oid}\t${a.filePath}`);
            break;
          case 'move': {
            const prev = base ? await this.reader.read(`${base}:${a.previousPath}`) : null;
            if (prev?.type !== 'blob') throw new ActionError("A file with this name doesn't exist");
            if (exists) throw new ActionError('A file with this name already exists');
            const mode = (await this.entryMode(base!, a.previousPath)) ?? '100644';
            const oid = a.content ? await this.hashObject(a.content) : prev.oid;
            lines.push(`0 ${ZERO_SHA}\t${a.previousPath}`, `${mode} ${oid}\t${a.filePath}`);
            break;
          }
        }
      }
      await this.run(['update-index', '--index-info'], { env, input: `${lines.join('\n')}\n` });
      const tree = (await this.run(['write-tree'], { env })).stdout.toString('utf8').trim();
      return await this.commitTree(tree, base ? [base] : [], message, author, committer);
    } finally {
      await rm(index, { force: true });
    }
  }

  async commitTree(
    tree: string,
    parents: string[],
    message: string,
    author: Identity,
    committer: Identity = author,
  ): Promise<string> {
    const now = new Date().toISOString();
    const args = ['commit-tree', tree, ...parents.flatMap((p) => ['-p', p]), '-F', '-'];
    const { stdout } = await this.run(args, {
      input: message,
      env: {
        GIT_AUTHOR_NAME: author.name,
        GIT_AUTHOR_EMAIL: author.email,
        GIT_AUTHOR_DATE: now,
        GIT_COMMITTER_NAME: committer.name,
        GIT_COMMITTER_EMAIL: committer.email,
        GIT_COMMITTER_DATE: now,
      },
    });
    return stdout.toString('utf8').trim();
  }

  async hashObject(content: Buffer): Promise<string> {
    const { stdout } = await this.run(['hash-object', '-w', '--stdin'], { input: content });
    return stdout.toString('utf8').trim();
  }

  /** Three-way merge without a work tree; the tree id, or null on conflicts. */
  async mergeTree(ours: string, theirs: string): Promise<string | null> {
    const r = await this.run(['merge-tree', '--write-tree', '--no-messages', ours, theirs], { okCodes: [1] });
    return r.code === 0 ? r.stdout.toString('utf8').split('\n')[0].trim() : null;
  }

  async diff(from: string, to: string): Promise<FileDiff[]> {
    const raw = (await this.run(['diff', '--raw', '-z', '-M', '--no-abbrev', from, to])).stdout.toString(
      'utf8',
    );
    const fields = raw.split('\0');
    const entries: Array<Omit<FileDiff, 'diff'>> = [];
    for (let i = 0; i < fields.length - 1; ) {
      const meta = fields[i++];
      if (!meta.startsWith(':')) continue;
      const [aMode, bMode, , , status] = meta.slice(1).split(' ');
      const renamed = status.startsWith('R') || status.startsWith('C');
      const oldPath = fields[i++];
      const newPath = renamed ? fields[i++] : oldPath;
      entries.push({
        oldPath,
        newPath,
        aMode,
        bMode,
        newFile: status === 'A',
        deletedFile: status === 'D',
        renamedFile: status.startsWith('R'),
      });
    }
    if (!entries.length) return [];
    const patch = (
      await this.run(['-c', 'core.quotePath=false', 'diff', '--no-color', '--no-ext-diff', '-M', from, to])
    ).stdout.toString('utf8');
    const sections = patch.split(/^diff --git .*$\n?/m).slice(1);
    return entries.map((e, i) => {
      const section = sections[i] ?? '';
      const hunk = section.search(/^(@@|Binary files)/m);
      return { ...e, diff: hunk >= 0 ? section.slice(hunk) : '' };
    });
  }
}
