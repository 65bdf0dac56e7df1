// Observe: what GitLab holds about one MR, read into the plain Facts that evaluate() judges.
// Everything here is a GitLab fact a Developer cannot forge: approvals and system notes
// carry their real authors, file contents come from the commits themselves.

import {
  type Approval,
  FileTooLargeError,
  type GitLabGate,
  type MergeRequestDetail,
} from '../gitlab/client.js';
import { noteCommits, pushesAfter } from '../gitlab/push-notes.js';
import { deploymentsOf, refAt } from '../history/healthy.js';
import { findImages } from '../manifests/index.js';
import { gitlabEnvironment } from '../model/markers.js';
import { type PromotionRecord, readRecordTrailer } from '../model/record.js';
import { type ChangeKind, changeKind } from '../model/version-order.js';
import type { Facts, Foreign, RollbackFact, Trust } from '../policy/evaluate.js';
import { foreignFiles } from './integrity.js';
import type { ParsedPolicy } from './trust.js';

const SEVERITY: Record<string, number> = { major: 3, minor: 2, patch: 1, prerelease: 1, 'build number': 1 };
/** Files read to judge one MR; beyond these, a bot MR's extra files are listed without hunks. */
const MAX_FILES = 20;

/**
 * What the gate needs of GitLab, and nothing else: reads of the MR, its approvals and push
 * records, files, members; the status, comments, the merge and the deploy_ref move.
 */
export type GateForge = Pick<
  GitLabGate,
  | 'requests'
  | 'projectDefaultBranch'
  | 'branch'
  | 'branchHead'
  | 'rawFile'
  | 'mergeRequest'
  | 'mergeRequestCommits'
  | 'approvals'
  | 'lastPushAt'
  | 'pushNotes'
  | 'pushEvents'
  | 'changedPaths'
  | 'accessLevels'
  | 'user'
  | 'groupMembers'
  | 'commitInfo'
  | 'commitDiff'
  | 'commitMergeRequests'
  | 'commitNotes'
  | 'commitComments'
  | 'commitComment'
  | 'compare'
  | 'notes'
  | 'createNote'
  | 'updateNote'
  | 'deleteNote'
  | 'setStatus'
  | 'commitStatus'
  | 'merge'
  | 'fastForward'
  | 'listDeployments'
  | 'readFile'
>;

export interface GateContext {
  gitlab: GitLabGate;
  botUserId: number;
  /** the bot's username, to recognise its own pushes (read once at startup) */
  botUsername?: string;
  /** rules given to gitops-bot outside the repository (`--policy FILE`) */
  policy?: { policy: import('../policy/schema.js').Policy | null; source: string };
  now?: () => Date;
  /** called for alerts about bypasses (metrics) */
  onAlert?: (kind: 'merge' | 'push', project: string, detail: string) => void;
  onDeployRefMove?: (project: string, ref: string, sha: string) => void;
}

/** A file over the size limit: the gate refuses to judge what it will not read. */
export function isTooLarge(e: unknown): e is FileTooLargeError {
  return e instanceof FileTooLargeError;
}

/** Reads files once per evaluation: bumpKind and the integrity check look at the same ones. */
function fileReader(gl: GateForge, project: string) {
  const cache = new Map<string, Promise<string | null>>();
  return (path: string, ref: string): Promise<string | null> => {
    const key = `${ref}\0${path}`;
    let p = cache.get(key);
    if (!p) {
      // rawFile refuses a file over 16 MiB without reading it (FileTooLargeError)
      p = gl.rawFile(project, path, ref);
      cache.set(key, p);
    }
    return p;
  };
}

type Read = ReturnType<typeof fileReader>;

/**
 * The files of an MR that the gate reads at the MR's target branch (its YAML manifests, for
 * the tag bump): a push to the target that changes one of them can change the verdict of an
 * MR that changes it too. Nothing else of the target's tree is read (the policy apart).
 */
export function readAtTarget(path: string): boolean {
  return /\.ya?ml$/.test(path);
}

/** The largest tag change between `base` and `head`, read from the YAML files. */
async function bumpKind(read: Read, base: string, head: string, paths: string[]): Promise<ChangeKind | null> {
  let worst: ChangeKind | null = null;
  for (const path of paths.filter(readAtTarget).slice(0, MAX_FILES)) {
    const [before, after] = await Promise.all([read(path, base), read(path, head)]);
    if (before === null || after === null) continue;
    try {
      const old = new Map(
        findImages(before, path).map((r) => [`${r.document}${r.path.join('/')}${r.normalized}`, r.tag]),
      );
      for (const r of findImages(after, path)) {
        const prev = old.get(`${r.document}${r.path.join('/')}${r.normalized}`);
        if (prev === undefined || prev === r.tag) continue;
        const kind = changeKind(prev, r.tag);
        if (!worst || (SEVERITY[kind] ?? 0) > (SEVERITY[worst] ?? 0)) worst = kind;
      }
    } catch {
      // not YAML we can read: no bump known
    }
  }
  return worst;
}

/** Members of the groups the policy's approval rules name, by lowercase group path. */
export async function groupMembersOf(
  gl: GateForge,
  policy: ParsedPolicy,
): Promise<Map<string, Set<number> | null>> {
  const paths = [
    ...new Set(
      policy && !('error' in policy)
        ? policy.environments.flatMap((e) => e.approvals.groups ?? []).map((g) => g.toLowerCase())
        : [],
    ),
  ];
  const members = await Promise.all(paths.map((g) => gl.groupMembers(g)));
  return new Map(paths.map((g, i) => [g, members[i]]));
}

/** gitops-bot's own MR: opened by the bot from its branch namespace. */
export function isBotMergeRequest(mr: MergeRequestDetail, botUserId: number): boolean {
  return mr.author.id === botUserId && mr.sourceBranch.startsWith('gitops-bot/');
}

/**
 * For gitops-bot's own MR: what it changes beyond its promotion record. The record is read
 * from the head commit, and trusted only when GitLab shows that gitops-bot pushed last; the
 * edit is recomputed from the MR's base and compared with every changed file.
 */
async function foreignChanges(
  ctx: GateContext,
  project: string,
  mr: MergeRequestDetail,
  changedPaths: string[],
  pushNotes: Awaited<ReturnType<GateForge['pushNotes']>>,
  read: Read,
): Promise<{ foreign: Foreign | null; record: PromotionRecord | null }> {
  const bot = ctx.botUsername ?? (await ctx.gitlab.user(ctx.botUserId)).username;
  const pushedBy = pushesAfter(pushNotes, bot);
  // The record of the commit gitops-bot itself pushed last: the one its latest push note
  // lists, or (never updated) the MR's first commit, which gitops-bot made with the branch.
  // A trailer in anyone else's commit is free text.
  let record = pushedBy.length
    ? null
    : readRecordTrailer((await ctx.gitlab.commitInfo(project, mr.sha))?.message);
  if (!record) {
    const commits = await ctx.gitlab.mergeRequestCommits(project, mr.iid);
    const ours = pushNotes.find((n) => n.username === bot);
    const listed = ours ? noteCommits(ours.body) : [];
    const mine = listed.length
      ? commits.find((c) => listed.some((id) => c.id.startsWith(id)))
      : commits.at(-1);
    record = readRecordTrailer(mine?.message);
  }
  const base = mr.baseSha;
  if (!record || !base) {
    return {
      foreign: {
        pushedBy,
        reason: `the head commit ${mr.sha.slice(0, 8)} is not a gitops-bot promotion`,
        files: [],
      },
      record,
    };
  }
  const paths = [...new Set(changedPaths)];
  const versions = await Promise.all(
    paths.slice(0, MAX_FILES).map(async (path) => ({
      path,
      base: await read(path, base),
      head: await read(path, mr.sha),
    })),
  );
  const files = [
    ...foreignFiles(record, versions),
    ...paths.slice(MAX_FILES).map((path) => ({ path, hunks: [`changed ${path} (not shown)`] })),
  ];
  if (!files.length && !pushedBy.length) return { foreign: null, record };
  return {
    foreign: {
      pushedBy,
      ...(files.length ? {} : { reason: 'commits pushed after gitops-bot’s own' }),
      files,
    },
    record,
  };
}

/** Deployments looked at, newest first, to find the one that ran the rollback's tag. */
const MAX_HEALTHY = 20;

/**
 * Whether a rollback record is what it says: the tag it goes back to ran healthy in the
 * environment it names. The facts are GitLab's: a deployment with status success in
 * `<env>/<app>` that gitops-bot created (a Developer may create deployments through the API,
 * never as the bot), and the tag the record's files hold at that deployment's commit (read
 * from the files, not from any description). `record` must be one the gate trusts already
 * (gitops-bot's own commit, no foreign change).
 */
export async function rollbackFact(
  ctx: Pick<GateContext, 'gitlab' | 'botUserId'>,
  project: string,
  record: PromotionRecord,
): Promise<RollbackFact> {
  const tag = record.tag;
  if (!tag) return { verified: false, reason: 'the rollback record names no tag' };
  const environment = gitlabEnvironment(record.env, record.app);
  const healthy = (await deploymentsOf(ctx.gitlab, project, environment, ctx.botUserId)).filter(
    (d) => d.status === 'success',
  );
  const paths = record.files.map((f) => f.path);
  const seen = new Set<string>();
  for (const d of healthy.slice(0, MAX_HEALTHY)) {
    if (seen.has(d.sha)) continue;
    seen.add(d.sha);
    const ran = await refAt(ctx.gitlab, project, d.sha, paths, record.image);
    // the tag, and the digest when the rollback pins one: a tag can be pushed again
    if (ran?.tag === tag && (!record.digest || ran.digest === record.digest))
      return {
        verified: true,
        env: record.env,
        app: record.app,
        tag,
        ...(record.rollback?.fromTag ? { fromTag: record.rollback.fromTag } : {}),
        deployment: d.id,
        environment,
      };
  }
  return {
    verified: false,
    reason: healthy.length
      ? `GitLab's Deployments do not show ${tag} healthy in ${environment} (gitops-bot's last ${Math.min(healthy.length, MAX_HEALTHY)} successful deployments there ran other tags)`
      : `GitLab has no successful deployment by gitops-bot in ${environment}`,
  };
}

/**
 * The facts of one MR for evaluate(). `policy` and `trust` are the rules in force;
 * `diffBase` is where tag bumps are measured from (the target, or a merge's first parent).
 */
export async function gatherFacts(
  ctx: GateContext,
  project: string,
  mr: MergeRequestDetail,
  policy: ParsedPolicy,
  trust: Trust,
  diffBase: string,
): Promise<Facts> {
  const gl = ctx.gitlab;
  const read = fileReader(gl, project);
  const [approvals, lastPushAt, pushNotes, events, changedPaths, accessLevels] = await Promise.all([
    gl.approvals(project, mr.iid),
    gl.lastPushAt(project, mr.iid),
    gl.pushNotes(project, mr.iid),
    gl.pushEvents(project),
    gl.changedPaths(project, mr.iid),
    gl.accessLevels(project),
  ]);
  const [people, groups] = await Promise.all([
    Promise.all(approvals.map((a: Approval) => gl.user(a.user.id))),
    groupMembersOf(gl, policy),
  ]);
  // Who pushed: GitLab's push notes on the MR, and its push events for the source branch
  // (the pushes before the MR was opened).
  const pushers = new Set<number>([
    ...pushNotes.map((n) => n.userId),
    ...events.filter((e) => e.ref === mr.sourceBranch).map((e) => e.userId),
  ]);
  let unreadable: string | null = null;
  let kind: ChangeKind | null = null;
  let foreign: Foreign | null = null;
  let rollback: RollbackFact | null = null;
  try {
    kind = await bumpKind(read, diffBase, mr.sha, changedPaths);
    if (isBotMergeRequest(mr, ctx.botUserId)) {
      const own = await foreignChanges(ctx, project, mr, changedPaths, pushNotes, read);
      foreign = own.foreign;
      // Only the record of gitops-bot's own, untouched commit says "rollback" (a Developer
      // who edits the description or pushes a commit changes nothing here, or makes the MR
      // foreign, which blocks it).
      if (!foreign && own.record?.rollback) rollback = await rollbackFact(ctx, project, own.record);
    }
  } catch (e) {
    if (!isTooLarge(e)) throw e;
    unreadable = `${e.message}: gitops-bot does not judge what it will not read`;
  }
  return {
    mr: {
      iid: mr.iid,
      state: mr.state,
      draft: mr.draft,
      author: mr.author,
      sha: mr.sha,
      targetBranch: mr.targetBranch,
      changedPaths,
    },
    policy,
    approvals: approvals.map((a, i) => ({
      user: { id: a.user.id, username: a.user.username, bot: people[i].bot },
      approvedAt: a.approvedAt,
    })),
    groups,
    accessLevels,
    pushers,
    trust,
    foreign,
    unreadable,
    lastPushAt,
    bumpKind: kind,
    rollback,
    botUserId: ctx.botUserId,
    now: ctx.now?.() ?? new Date(),
  };
}
