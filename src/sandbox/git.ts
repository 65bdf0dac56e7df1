// Real git for the sandbox's repositories. Everything is done with the `git` CLI on bare
// repositories: reads go through one long-lived `git cat-file --batch` per repository
// (spawning a process per read would cap us far below 300 reads/s), writes build commits
// with plumbing (read-tree / update-index / write-tree / commit-tree) and publish them with
// a compare-and-swap `git update-ref`, so concurrent writers can never lose a commit.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { diffLines } from 'diff';

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
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** bytes still missing from the object at the head of the queue */
  private needed = 0;
  private queue: Array<{ resolve: (o: GitObject | null) => void; reject: (e: Error) => void }> = [];

  /** set by close(): a read after it must not start a process nobody would end */
  private closed = false;

  constructor(private readonly dir: string) {}

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn('git', ['cat-file', '--batch'], {
      cwd: this.dir,
      env: { ...process.env, ...gitEnv },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (b: Buffer) => {
      // A large object arrives in many chunks: gather them and join once it is complete
      // (joining on every chunk made a 50 MB read take minutes).
      this.pending.push(b);
      this.pendingBytes += b.length;
      if (this.pendingBytes < this.needed) return;
      this.buf = Buffer.concat(this.buf.length ? [this.buf, ...this.pending] : this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      this.needed = 0;
      this.drain();
    });
    child.stdin.on('error', () => {});
    const fail = (why: string) => {
      if (this.child === child) this.child = null;
      const pending = this.queue.splice(0);
      for (const p of pending) p.reject(new GitError(why, null, ''));
    };
    // a spawn that fails (the folder is gone) is an error for the waiting reads, not a crash
    child.on('error', (e) => fail(`git cat-file did not start: ${e.message}`));
    child.on('close', () => fail('git cat-file exited'));
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
      if (this.buf.length < nl + 1 + size + 1) {
        this.needed = nl + 1 + size + 1 - this.buf.length;
        return;
      }
      const content = Buffer.from(this.buf.subarray(nl + 1, nl + 1 + size));
      this.buf = this.buf.subarray(nl + 1 + size + 1);
      this.queue.shift()!.resolve({ oid, type, content });
    }
  }

  read(spec: string): Promise<GitObject | null> {
    if (spec.includes('\n') || spec.includes('\r')) return Promise.resolve(null);
    if (this.closed) return Promise.reject(closedError());
    const child = this.child ?? this.start();
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      child.stdin.write(`${spec}\n`);
    });
  }

  close(): void {
    this.closed = true;
    this.child?.stdin.end();
    this.child = null;
  }
}

/**
 * What a read or write gets once the sandbox closed its repositories. A request still in
 * flight when the sandbox closes would otherwise start a new long-lived git process whose
 * stdin nobody ends: it kept the test process alive forever (a CI run hung 90 minutes).
 */
const closedError = () => new GitError('the repository is closed (the sandbox is shutting down)', null, '');

/**
 * A long-lived git command that answers each request with a known number of lines
 * (`hash-object --stdin-paths`, `mktree --batch`, `update-ref --stdin`). Spawning git
 * costs ~9 ms on our machines; these keep a commit under a few milliseconds.
 */
class LineProcess {
  private child: ChildProcessWithoutNullStreams | null = null;
  private buf = '';
  private lines: string[] = [];
  private queue: Array<{ n: number; resolve: (lines: string[]) => void; reject: (e: Error) => void }> = [];
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly args: string[],
  ) {}

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn('git', this.args, {
      cwd: this.dir,
      env: { ...process.env, ...gitEnv },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      this.buf += chunk;
      let nl = this.buf.indexOf('\n');
      while (nl >= 0) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
        nl = this.buf.indexOf('\n');
      }
      while (this.queue.length && this.lines.length >= this.queue[0].n) {
        const req = this.queue.shift()!;
        req.resolve(this.lines.splice(0, req.n));
      }
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.stdin.on('error', () => {});
    const fail = (e: GitError) => {
      if (this.child === child) this.child = null;
      this.buf = '';
      this.lines = [];
      for (const p of this.queue.splice(0)) p.reject(e);
    };
    child.on('error', (e) => fail(new GitError(`git ${this.args[0]} did not start: ${e.message}`, null, '')));
    child.on('close', (code) =>
      fail(new GitError(`git ${this.args[0]} exited: ${stderr.trim()}`, code, stderr)),
    );
    this.child = child;
    return child;
  }

  request(input: string, n: number): Promise<string[]> {
    if (this.closed) return Promise.reject(closedError());
    const child = this.child ?? this.start();
    return new Promise((resolve, reject) => {
      this.queue.push({ n, resolve, reject });
      child.stdin.write(input);
    });
  }

  close(): void {
    this.closed = true;
    this.child?.stdin.end();
    this.child = null;
  }
}

interface TreeItem {
  mode: string;
  oid: string;
}

/** Entries of a raw tree object: `<mode> <name>\0<20-byte id>` repeated. */
function parseTree(content: Buffer): Map<string, TreeItem> {
  const out = new Map<string, TreeItem>();
  let i = 0;
  while (i < content.length) {
    const sp = content.indexOf(32, i);
    const nul = content.indexOf(0, sp);
    const mode = content.subarray(i, sp).toString('latin1');
    const name = content.subarray(sp + 1, nul).toString('utf8');
    out.set(name, { mode: mode.padStart(6, '0'), oid: content.subarray(nul + 1, nul + 21).toString('hex') });
    i = nul + 21;
  }
  return out;
}

const typeOfMode = (mode: string) => (mode === '040000' ? 'tree' : mode === '160000' ? 'commit' : 'blob');

/** git check-ref-format --branch, without a process. */
export function isValidBranchName(name: string): boolean {
  if (!name || name === 'HEAD' || name === '@' || name.startsWith('-') || name.length > 255) return false;
  if (name.startsWith('/') || name.endsWith('/') || name.endsWith('.') || name.includes('//')) return false;
  if (name.includes('..') || name.includes('@{') || /[\x00-\x20\x7f~^:?*[\\]/.test(name)) return false;
  return name.split('/').every((c) => !c.startsWith('.') && !c.endsWith('.lock'));
}

/** One file a commit changed, with both contents, so callers can count lines without git. */
export interface FileChange {
  path: string;
  before: Buffer | null;
  after: Buffer | null;
}

/** Added and removed lines over a commit's changes, as GitLab's `stats`. */
export function lineStats(changes: FileChange[]): { additions: number; deletions: number; total: number } {
  let additions = 0;
  let deletions = 0;
  const lines = (b: Buffer | null | undefined) => {
    if (!b?.length) return 0;
    let n = 0;
    for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
    return b[b.length - 1] === 10 ? n : n + 1;
  };
  for (const c of changes) {
    // A line diff of megabytes takes seconds; past 1 MB (and for whole-file adds and
    // deletes) count lines instead: exact for adds and deletes, an upper bound otherwise.
    if (!c.before?.length || !c.after?.length || c.before.length + c.after.length > 1024 * 1024) {
      additions += lines(c.after);
      deletions += lines(c.before);
      continue;
    }
    for (const part of diffLines(c.before.toString('utf8'), c.after.toString('utf8'))) {
      if (part.added) additions += part.count ?? 0;
      if (part.removed) deletions += part.count ?? 0;
    }
  }
  return { additions, deletions, total: additions + deletions };
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
  private readonly blobWriter: LineProcess;
  private readonly commitWriter: LineProcess;
  private readonly treeWriter: LineProcess;
  private readonly refUpdater: LineProcess;
  // `git log -1 -- path` is the expensive part of a file read; commits are immutable, so
  // the answer for (commit, path) never changes.
  private readonly lastCommitCache = new Map<string, string | null>();
  private readonly diffCache = new Map<string, FileDiff[]>();
  // Commits this process built: their parent and changed paths answer `lastCommitFor`
  // without running `git log`.
  private readonly built = new Map<string, { parent: string | null; changed: Set<string> }>();

  constructor(readonly dir: string) {
    this.reader = new BatchReader(dir);
    this.blobWriter = new LineProcess(dir, ['hash-object', '-w', '--no-filters', '--stdin-paths']);
    this.commitWriter = new LineProcess(dir, ['hash-object', '-w', '-t', 'commit', '--stdin-paths']);
    // --missing: mktree looks objects up with OBJECT_INFO_QUICK, which never rescans the pack
    // directory, so a long-lived mktree does not see a pack a push brought after it started
    // ("entry 'x' object … is unavailable" on the next commit). Entries still get their type
    // checked when the object is visible; every entry we write names an object that exists
    // (read from a tree, or just written by hash-object).
    this.treeWriter = new LineProcess(dir, ['mktree', '--batch', '--missing']);
    this.refUpdater = new LineProcess(dir, ['update-ref', '--stdin']);
  }

  static async init(dir: string, defaultBranch: string, hookScript: string): Promise<Repo> {
    await mkdir(dir, { recursive: true });
    await git(['init', '--bare', '--quiet', `--initial-branch=${defaultBranch}`], { cwd: dir });
    await git(['config', 'gc.auto', '0'], { cwd: dir });
    await git(['config', 'receive.advertisePushOptions', 'true'], { cwd: dir });
    // As Gitaly does: clients may fetch any commit by id, and partial clones.
    await git(['config', 'uploadpack.allowAnySHA1InWant', 'true'], { cwd: dir });
    await git(['config', 'uploadpack.allowFilter', 'true'], { cwd: dir });
    await writeFile(join(dir, 'hooks', 'pre-receive'), hookScript, { mode: 0o755 });
    return new Repo(dir);
  }

  close(): void {
    for (const p of [this.reader, this.blobWriter, this.commitWriter, this.treeWriter, this.refUpdater])
      p.close();
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

  async lastCommitFor(commit: string, path: string): Promise<string | null> {
    const key = `${commit}\0${path}`;
    const cached = this.lastCommitCache.get(key);
    if (cached !== undefined) return cached;
    let sha: string | null;
    const own = this.built.get(commit);
    if (own) {
      sha = own.changed.has(path) ? commit : own.parent ? await this.lastCommitFor(own.parent, path) : null;
    } else {
      const { stdout } = await this.run(['log', '-1', '--format=%H', commit, '--', path]);
      sha = stdout.toString('utf8').trim() || null;
    }
    if (this.lastCommitCache.size > 50_000) this.lastCommitCache.clear();
    this.lastCommitCache.set(key, sha);
    return sha;
  }

  async commit(sha: string): Promise<CommitInfo | null> {
    const id = await this.resolve(sha);
    const obj = id ? await this.reader.read(id) : null;
    return obj?.type === 'commit' ? parseCommitObject(obj.oid, obj.content.toString('utf8')) : null;
  }

  /**
   * `git log A..B` without a process for the common case: B descends from A through
   * single-parent commits (a bot's branch, most MRs). Anything else asks git.
   */
  async logRange(base: string, head: string): Promise<CommitInfo[]> {
    const out: CommitInfo[] = [];
    let at = head;
    while (at !== base && out.length < 200) {
      const c = await this.commit(at);
      if (c?.parentIds.length !== 1) return this.log([`${base}..${head}`]);
      out.push(c);
      at = c.parentIds[0];
    }
    return at === base ? out : this.log([`${base}..${head}`]);
  }

  async log(
    range: string[],
    opts: { path?: string; skip?: number; max?: number; since?: string; until?: string } = {},
  ): Promise<CommitInfo[]> {
    // --date-order: never a parent before its children, even when commits share a timestamp
    // (the sandbox makes several a second; GitLab's lists are in that order too)
    const args = ['log', '-z', '--date-order', `--format=${COMMIT_FORMAT}`];
    if (opts.skip) args.push(`--skip=${opts.skip}`);
    if (opts.max !== undefined) args.push(`--max-count=${opts.max}`);
    if (opts.since) args.push(`--since=${opts.since}`);
    if (opts.until) args.push(`--until=${opts.until}`);
    args.push(...range, '--');
    if (opts.path) args.push(opts.path);
    const { stdout } = await this.run(args);
    return parseCommitRecords(stdout.toString('utf8'));
  }

  /** `git rev-list --count` of a range such as `[a..b]` or `[b, ^a]`. */
  async countCommits(range: string[]): Promise<number> {
    const { stdout } = await this.run(['rev-list', '--count', ...range, '--']);
    return Number(stdout.toString('utf8').trim()) || 0;
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
    return this.transaction(`update ${ref} ${newSha} ${old}`);
  }

  async deleteRef(ref: string, old: string): Promise<boolean> {
    return this.transaction(`delete ${ref} ${old}`);
  }

  /**
   * One ref transaction through the long-lived `update-ref --stdin`. A failed
   * compare-and-swap ends that process (git exits on a failed prepare), which also fails
   * whatever was queued behind it, so a failure's definitive answer comes from a one-shot
   * `git update-ref`.
   */
  private async transaction(command: string): Promise<boolean> {
    if (/[\n\0]/.test(command)) return false;
    try {
      const out = await this.refUpdater.request(`start\n${command}\nprepare\ncommit\n`, 3);
      if (out[2] === 'commit: ok') return true;
    } catch {
      // fall through to the one-shot answer
    }
    const [verb, ref, ...rest] = command.split(' ');
    try {
      await this.run(['update-ref', ...(verb === 'delete' ? ['-d', ref, ...rest] : [ref, ...rest])]);
      return true;
    } catch (e) {
      if (e instanceof GitError) return false;
      throw e;
    }
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
  ): Promise<{ sha: string; changes: FileChange[] }> {
    const tree = new TreeEditor(
      this,
      base ? ((await this.reader.read(`${base}^{tree}`))?.oid ?? null) : null,
    );
    const changes: FileChange[] = [];
    const blobOf = async (path: string) => {
      const e = await tree.get(path);
      if (!e || typeOfMode(e.mode) !== 'blob') return null;
      return { ...e, content: (await this.reader.read(e.oid))!.content };
    };
    for (const a of actions) {
      const existing = await blobOf(a.filePath);
      switch (a.action) {
        case 'create':
          if (existing) throw new ActionError('A file with this name already exists');
          await tree.set(a.filePath, {
            mode: a.executable ? '100755' : '100644',
            oid: await this.hashObject(a.content),
          });
          changes.push({ path: a.filePath, before: null, after: a.content });
          break;
        case 'update':
          if (!existing) throw new ActionError("A file with this name doesn't exist");
          await tree.set(a.filePath, { mode: existing.mode, oid: await this.hashObject(a.content) });
          changes.push({ path: a.filePath, before: existing.content, after: a.content });
          break;
        case 'delete':
          if (!existing) throw new ActionError("A file with this name doesn't exist");
          await tree.set(a.filePath, null);
          changes.push({ path: a.filePath, before: existing.content, after: null });
          break;
        case 'chmod':
          if (!existing) throw new ActionError("A file with this name doesn't exist");
          await tree.set(a.filePath, { mode: a.executable ? '100755' : '100644', oid: existing.oid });
          changes.push({ path: a.filePath, before: existing.content, after: existing.content });
          break;
        case 'move': {
          const prev = await blobOf(a.previousPath);
          if (!prev) throw new ActionError("A file with this name doesn't exist");
          if (existing) throw new ActionError('A file with this name already exists');
          await tree.set(a.previousPath, null);
          await tree.set(a.filePath, {
            mode: prev.mode,
            oid: a.content ? await this.hashObject(a.content) : prev.oid,
          });
          changes.push({ path: a.previousPath, before: prev.content, after: null });
          changes.push({ path: a.filePath, before: null, after: a.content ?? prev.content });
          break;
        }
      }
    }
    const sha = await this.commitTree(await tree.write(), base ? [base] : [], message, author, committer);
    this.built.set(sha, { parent: base, changed: new Set(changes.map((c) => c.path)) });
    return { sha, changes };
  }

  /** Entries of a tree object, for TreeEditor. */
  async readTree(oid: string): Promise<Map<string, TreeItem>> {
    const obj = await this.reader.read(oid);
    return obj?.type === 'tree' ? parseTree(obj.content) : new Map();
  }

  async writeTree(entries: Map<string, TreeItem>): Promise<string> {
    const lines = [...entries]
      .map(([name, e]) => `${e.mode} ${typeOfMode(e.mode)} ${e.oid}\t${name}\n`)
      .join('');
    return (await this.treeWriter.request(`${lines}\n`, 1))[0];
  }

  async commitTree(
    tree: string,
    parents: string[],
    message: string,
    author: Identity,
    committer: Identity = author,
  ): Promise<string> {
    // The commit object as git itself formats it; hash-object checks it before writing.
    const when = `${Math.floor(Date.now() / 1000)} +0000`;
    const person = (p: Identity) => `${clean(p.name)} <${clean(p.email)}> ${when}`;
    const body = [
      `tree ${tree}`,
      ...parents.map((p) => `parent ${p}`),
      `author ${person(author)}`,
      `committer ${person(committer)}`,
      '',
      message.endsWith('\n') ? message : `${message}\n`,
    ].join('\n');
    return this.writeObject(this.commitWriter, body);
  }

  async hashObject(content: Buffer): Promise<string> {
    return this.writeObject(this.blobWriter, content);
  }

  /** Writes `content` to a temporary file for a long-lived hash-object to read. */
  private async writeObject(writer: LineProcess, content: Buffer | string): Promise<string> {
    const tmp = join(this.dir, `sandbox-obj-${randomBytes(8).toString('hex')}`);
    await writeFile(tmp, content);
    try {
      const [oid] = await writer.request(`${tmp}\n`, 1);
      if (!/^[0-9a-f]{40}$/.test(oid)) throw new GitError(`hash-object answered ${oid}`, null, '');
      return oid;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Three-way merge without a work tree; the tree id, or null on conflicts. */
  async mergeTree(ours: string, theirs: string): Promise<string | null> {
    const r = await this.run(['merge-tree', '--write-tree', '--no-messages', ours, theirs], { okCodes: [1] });
    return r.code === 0 ? r.stdout.toString('utf8').split('\n')[0].trim() : null;
  }

  /**
   * The changes between two commits, as GitLab's diffs: one `git diff --patch-with-raw`
   * (the raw records name the files, the patch gives each one's hunks). Answers for two
   * commit ids are cached: they can never change.
   */
  async diff(from: string, to: string): Promise<FileDiff[]> {
    const key = `${from}..${to}`;
    const immutable = /^[0-9a-f]{40}$/.test(from) && /^[0-9a-f]{40}$/.test(to);
    const cached = immutable ? this.diffCache.get(key) : undefined;
    if (cached) return cached;
    const out = (
      await this.run([
        '-c',
        'core.quotePath=false',
        'diff',
        '--patch-with-raw',
        '-z',
        '-M',
        '--no-abbrev',
        '--no-color',
        '--no-ext-diff',
        from,
        to,
      ])
    ).stdout.toString('utf8');
    const entries: Array<Omit<FileDiff, 'diff'>> = [];
    let pos = 0;
    const field = () => {
      const end = out.indexOf('\0', pos);
      const f = out.slice(pos, end < 0 ? out.length : end);
      pos = end < 0 ? out.length : end + 1;
      return f;
    };
    while (out[pos] === ':') {
      const [aMode, bMode, , , status] = field().slice(1).split(' ');
      const renamed = status.startsWith('R') || status.startsWith('C');
      const oldPath = field();
      const newPath = renamed ? field() : oldPath;
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
    // A NUL separates the raw records from the patch.
    const sections = out
      .slice(pos + 1)
      .split(/^diff --git .*$\n?/m)
      .slice(1);
    const diffs = entries.map((e, i) => {
      const section = sections[i] ?? '';
      const hunk = section.search(/^(@@|Binary files)/m);
      return { ...e, diff: hunk >= 0 ? section.slice(hunk) : '' };
    });
    if (immutable) {
      if (this.diffCache.size >= 500) this.diffCache.delete(this.diffCache.keys().next().value as string);
      this.diffCache.set(key, diffs);
    }
    return diffs;
  }
}

/** A raw commit object (`tree`, `parent`, `author`, `committer` headers, blank line, message). */
function parseCommitObject(id: string, raw: string): CommitInfo {
  const split = raw.indexOf('\n\n');
  const headers = (split < 0 ? raw : raw.slice(0, split)).split('\n');
  const parentIds: string[] = [];
  const people: Record<string, { name: string; email: string; date: string }> = {};
  for (const h of headers) {
    if (h.startsWith('parent ')) parentIds.push(h.slice(7));
    const m = /^(author|committer) (.*) <(.*)> (\d+) ([+-])(\d\d)(\d\d)$/.exec(h);
    if (m) {
      const offsetMin = (m[5] === '-' ? -1 : 1) * (Number(m[6]) * 60 + Number(m[7]));
      const local = new Date(Number(m[4]) * 1000 + offsetMin * 60_000).toISOString().slice(0, 19);
      people[m[1]] = { name: m[2], email: m[3], date: `${local}${m[5]}${m[6]}:${m[7]}` };
    }
  }
  const a = people.author ?? { name: '', email: '', date: '' };
  const c = people.committer ?? a;
  return {
    id,
    parentIds,
    authorName: a.name,
    authorEmail: a.email,
    authoredDate: a.date,
    committerName: c.name,
    committerEmail: c.email,
    committedDate: c.date,
    message: split < 0 ? '' : raw.slice(split + 2),
  };
}

const clean = (s: string) => s.replace(/[<>\n\0]/g, '').trim() || 'unknown';

/** Edits a tree in memory, loading subtrees on demand, then writes the changed ones bottom-up. */
class TreeEditor {
  private readonly dirs = new Map<string, Map<string, TreeItem>>();
  private readonly dirty = new Set<string>();

  constructor(
    private readonly repo: Repo,
    private readonly root: string | null,
  ) {}

  private async dir(path: string): Promise<Map<string, TreeItem>> {
    let d = this.dirs.get(path);
    if (d) return d;
    if (path === '') d = this.root ? await this.repo.readTree(this.root) : new Map<string, TreeItem>();
    else {
      const slash = path.lastIndexOf('/');
      const parent = await this.dir(slash < 0 ? '' : path.slice(0, slash));
      const e = parent.get(path.slice(slash + 1));
      d = e && e.mode === '040000' ? await this.repo.readTree(e.oid) : new Map<string, TreeItem>();
    }
    this.dirs.set(path, d);
    return d;
  }

  async get(path: string): Promise<TreeItem | null> {
    const slash = path.lastIndexOf('/');
    return (await this.dir(slash < 0 ? '' : path.slice(0, slash))).get(path.slice(slash + 1)) ?? null;
  }

  async set(path: string, item: TreeItem | null): Promise<void> {
    const slash = path.lastIndexOf('/');
    const dirPath = slash < 0 ? '' : path.slice(0, slash);
    const d = await this.dir(dirPath);
    if (item) d.set(path.slice(slash + 1), item);
    else d.delete(path.slice(slash + 1));
    for (let p = dirPath; ; p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') {
      this.dirty.add(p);
      if (p === '') break;
    }
  }

  /** Writes changed trees deepest first; an emptied directory disappears, as in git. */
  async write(): Promise<string> {
    const depth = (p: string) => (p === '' ? 0 : p.split('/').length);
    const order = [...this.dirty].sort((a, b) => depth(b) - depth(a));
    let rootOid = this.root;
    for (const path of order) {
      const entries = this.dirs.get(path)!;
      const oid = entries.size || path === '' ? await this.repo.writeTree(entries) : null;
      if (path === '') {
        rootOid = oid;
        continue;
      }
      const slash = path.lastIndexOf('/');
      const parent = await this.dir(slash < 0 ? '' : path.slice(0, slash));
      if (oid) parent.set(path.slice(slash + 1), { mode: '040000', oid });
      else parent.delete(path.slice(slash + 1));
    }
    return rootOid ?? (await this.repo.writeTree(new Map()));
  }
}
