// promote: propose an image bump as a merge request in the ops repository, idempotently.
//
// Request budget (one file): a new promotion reads the file, lists open MRs, resolves the
// assignees, commits, opens the MR, comments and checks the comment is the only one (7); a
// run with nothing to do reads the file and lists MRs (2); an update reads, lists, commits,
// finds the comment, edits it and edits the MR (6 API requests), and moves the branch with a
// git fetch and push (4 git HTTP requests). Races: GitLab's Commits API cannot compare-and-
// swap a forced branch reset, so an update commits to a scratch branch and moves the MR
// branch with `git push --force-with-lease` (see GitLab.writeBranch): a run that read an
// older head loses the swap, reads again and decides again. The bot's commit message carries
// the promotion record and the branch head is the truth; the MR description and the comment
// are projections that any run checks (the `sha` in GitLab's answers) and rebuilds when out
// of step.

import { type GitLab, GitLabError, type MergeRequest } from '../gitlab/client.js';
import { pushesAfter } from '../gitlab/push-notes.js';
import {
  type Change,
  type ImageRef,
  InvalidReferenceError,
  NotReferencedError,
  SharedAnchorError,
  setImage,
  YamlSyntaxError,
} from '../manifests/index.js';
import { digestProblem, repositoryProblem, tagProblem } from '../manifests/reference.js';
import { type RegistryClient, RegistryError } from '../registry/client.js';
import { mrDescription, mrTitle } from '../render/description.js';
import { diffComment, type FileDiff, isDiffComment } from '../render/diff-comment.js';
import { describeChanges, inspectNew, type VerifyMode } from './image-facts.js';
import {
  type ImageFacts,
  type PromotionRecord,
  readRecordComment,
  readRecordTrailer,
  recordTrailer,
  type SourceFacts,
  sameProposal,
} from './record.js';
import { compareTags } from './version-order.js';

export const PromoteExit = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NOT_REFERENCED: 3,
  INVALID_YAML: 4,
  REFUSED: 5,
  IMAGE: 7,
  AUTH: 8,
} as const;

export class PromoteError extends Error {
  override name = 'PromoteError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export interface PromoteRequest {
  project: string;
  files: string[];
  image: string;
  tag?: string;
  digest?: string;
  env?: string;
  app?: string;
  container?: string;
  assignees?: string[];
  reviewers?: string[];
  labels?: string[];
  targetBranch?: string;
  source?: SourceFacts;
  allowDowngrade?: boolean;
  dryRun?: boolean;
  /**
   * Ask the registry whether the tag exists (needs `deps.registry`). 'auto' (the default):
   * refuse a missing tag, go on with a note when the registry cannot be reached or asked;
   * true: refuse unless verified; false: do not ask.
   */
  verifyImage?: VerifyMode;
  /** write the digest the tag resolves to: repo:tag@sha256:… */
  pinDigest?: boolean;
}

export type PromoteAction = 'created' | 'updated' | 'noop' | 'refused';

export interface PromoteResult {
  action: PromoteAction;
  reason: string;
  mr: { iid: number; url: string } | null;
  branch: string;
  commit: string | null;
  changes: Array<Change & { file: string }>;
  requests: number;
  /** what the registry said: the digest that will run, or why it was not verified */
  image?: { digest?: string; verified: boolean; note?: string };
  dryRun?: boolean;
}

const MAX_ATTEMPTS = 6;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Checks everything that can be checked before talking to GitLab; throws PromoteError(USAGE). */
export function validateRequest(req: PromoteRequest): void {
  const fail = (m: string) => {
    throw new PromoteError(m, PromoteExit.USAGE);
  };
  if (!req.project) fail('--project is required: the ops project, e.g. root/helloworld-ops');
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$|^\d+$/.test(req.project)) {
    fail(`--project '${req.project}' is not a project path (group/name) or id`);
  }
  if (!req.files.length) fail('--file is required: the manifest(s) to edit in the ops project');
  for (const f of req.files) {
    if (
      f.startsWith('/') ||
      f.includes('\\') ||
      f.split('/').some((s) => s === '..' || s === '' || s === '.')
    ) {
      fail(`--file '${f}' must be a relative path inside the ops repository (no '..', no leading '/')`);
    }
  }
  if (!req.image) fail('--image is required: the repository, without tag');
  const rp = repositoryProblem(req.image);
  if (rp) fail(`--image: ${rp}`);
  if (req.tag === undefined && req.digest === undefined) fail('--tag is required (or --digest)');
  if (req.tag !== undefined) {
    const p = tagProblem(req.tag);
    if (p) fail(`--tag: ${p}`);
  }
  if (req.digest !== undefined) {
    const p = digestProblem(req.digest);
    if (p) fail(`--digest: ${p}`);
  }
  for (const [flag, v] of [
    ['--env', req.env],
    ['--app', req.app],
  ] as const) {
    if (v !== undefined && !NAME.test(v))
      fail(`${flag} '${v}' must be 1-63 of [A-Za-z0-9._-], starting with a letter or digit`);
  }
  for (const u of [...(req.assignees ?? []), ...(req.reviewers ?? [])]) {
    if (!/^[A-Za-z0-9_.-]+$/.test(u)) fail(`'${u}' is not a GitLab username`);
  }
  for (const l of req.labels ?? [])
    if (!l || l.includes(',')) fail(`label '${l}' is empty or contains a comma`);
}

export function defaultApp(image: string): string {
  return image
    .split('/')
    .pop()!
    .replace(/[^A-Za-z0-9._-]/g, '-');
}

interface Plan {
  record: PromotionRecord;
  diffs: FileDiff[];
  contents: Map<string, string>;
  changes: Array<Change & { file: string }>;
  deployedTag?: string;
}

/** Applies the edit to each file as it is on the target branch. Pure. */
function planEdits(
  req: PromoteRequest,
  files: Array<{ path: string; text: string; lastCommitId: string }>,
  meta: { app: string; env: string; target: string },
  image: { image: string; tag?: string; digest?: string },
): Plan {
  const diffs: FileDiff[] = [];
  const contents = new Map<string, string>();
  const changes: Array<Change & { file: string }> = [];
  const records: PromotionRecord['files'] = [];
  let from: ImageRef | undefined;
  let fromChange: Change | undefined;
  for (const f of files) {
    let result: ReturnType<typeof setImage>;
    try {
      result = setImage(f.text, { ...image, container: req.container, path: f.path });
    } catch (e) {
      if (e instanceof YamlSyntaxError) {
        throw new PromoteError(`${f.path}:${e.line}:${e.column}: ${e.reason}`, PromoteExit.INVALID_YAML);
      }
      if (e instanceof NotReferencedError)
        throw new PromoteError(`${f.path}: ${e.message}`, PromoteExit.NOT_REFERENCED);
      if (e instanceof InvalidReferenceError) throw new PromoteError(e.message, PromoteExit.USAGE);
      if (e instanceof SharedAnchorError)
        throw new PromoteError(`${f.path}: ${e.message}`, PromoteExit.FAILURE);
      throw e;
    }
    from ??= result.unchanged[0];
    fromChange ??= result.changes[0];
    for (const c of result.changes) changes.push({ file: f.path, ...c });
    if (result.text !== f.text) {
      diffs.push({ path: f.path, before: f.text, after: result.text });
      contents.set(f.path, result.text);
      records.push({
        path: f.path,
        base: f.lastCommitId,
        before: result.changes.map((c) => c.before),
        after: result.changes.map((c) => c.after),
      });
    }
  }
  const fromRef = fromChange
    ? splitRef(fromChange.before)
    : from
      ? { tag: from.tag, digest: from.digest }
      : {};
  const record: PromotionRecord = {
    v: 1,
    app: meta.app,
    env: meta.env,
    image: image.image,
    ...(image.tag ? { tag: image.tag } : {}),
    ...(image.digest ? { digest: image.digest } : {}),
    ...(req.container ? { container: req.container } : {}),
    ...(fromRef.tag ? { fromTag: fromRef.tag } : {}),
    ...(fromRef.digest ? { fromDigest: fromRef.digest } : {}),
    target: meta.target,
    files: records,
    source: req.source ?? {},
  };
  return { record, diffs, contents, changes, deployedTag: fromRef.tag };
}

function splitRef(ref: string): { tag?: string; digest?: string } {
  const at = ref.indexOf('@');
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const colon = name.lastIndexOf(':');
  const tag = colon > name.lastIndexOf('/') ? name.slice(colon + 1) : undefined;
  return { tag, digest };
}

function commitMessage(r: PromotionRecord): string {
  const lines = [mrTitle(r), ''];
  for (const f of r.files) lines.push(`${f.path}: ${f.before.join(', ')} -> ${f.after.join(', ')}`);
  const s = r.source;
  if (s.project || s.sha)
    lines.push('', `Source: ${s.project ?? ''}${s.sha ? `@${s.sha.slice(0, 12)}` : ''}`);
  if (s.pipelineUrl) lines.push(`Pipeline: ${s.pipelineUrl}`);
  lines.push('', recordTrailer(r));
  return lines.join('\n');
}

export interface PromoteDeps {
  gitlab: GitLab;
  /** the image registry; without it nothing is verified and the changes are not listed */
  registry?: RegistryClient;
  progress?: (line: string) => void;
}

/** One promotion, retried from fresh reads when GitLab shows that someone else moved first. */
export async function promote(req: PromoteRequest, deps: PromoteDeps): Promise<PromoteResult> {
  validateRequest(req);
  const gl = deps.gitlab;
  const say = deps.progress ?? (() => {});
  try {
    return await run(req, gl, say, deps.registry);
  } catch (e) {
    if (e instanceof GitLabError) throw explain(e, req);
    if (e instanceof RegistryError) throw new PromoteError(e.message, PromoteExit.IMAGE);
    throw e;
  }
}

async function run(
  req: PromoteRequest,
  gl: GitLab,
  say: (l: string) => void,
  registry: RegistryClient | undefined,
): Promise<PromoteResult> {
  const project = req.project;
  const target = req.targetBranch ?? (await gl.projectDefaultBranch(project));
  const app = req.app ?? defaultApp(req.image);
  const env = req.env ?? target;
  const branch = `gitops-bot/${env}/${app}`;
  const image = { image: req.image, tag: req.tag, digest: req.digest };
  const reference = req.tag ?? req.digest ?? '';
  let checked: Awaited<ReturnType<typeof inspectNew>> | null = null;
  if (req.pinDigest && (!registry || req.verifyImage === false))
    throw new PromoteError(
      '--pin-digest asks the registry for the digest: it cannot go with --no-verify-image',
      PromoteExit.USAGE,
    );
  if (registry && req.verifyImage !== false) {
    say(`checking ${req.image}:${reference} in the registry`);
    checked = await inspectNew(
      registry,
      req.image,
      reference,
      req.pinDigest ? true : (req.verifyImage ?? 'auto'),
    );
    if ('unverified' in checked) say(`not verified: ${checked.unverified}`);
    else say(`${req.image}:${reference} is ${checked.info.digest}`);
    if (req.pinDigest && 'info' in checked) {
      if (req.digest && req.digest !== checked.info.digest)
        throw new PromoteError(
          `--digest ${req.digest} is not what ${req.image}:${reference} resolves to (${checked.info.digest})`,
          PromoteExit.IMAGE,
        );
      image.digest = checked.info.digest;
    }
  }
  const imageResult = checked
    ? 'info' in checked
      ? { image: { digest: checked.info.digest, verified: true } }
      : { image: { verified: false, note: checked.unverified } }
    : {};
  let facts: ImageFacts | undefined;
  const result = (
    action: PromoteAction,
    reason: string,
    extra: Partial<PromoteResult> = {},
  ): PromoteResult => ({
    action,
    reason,
    mr: null,
    branch,
    commit: null,
    changes: [],
    requests: gl.requests,
    ...imageResult,
    ...extra,
  });

  // The branch head when GitLab showed it to be other than the MR's `sha` (a lost
  // compare-and-swap, or a branch left behind by a run that stopped before opening the MR).
  let branchHead: string | null | undefined;
  /** who pushed commits gitops-bot did not write to the MR's branch (discarded by the update) */
  let foreign: string[] = [];
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    if (attempt > 1)
      say(`someone else changed ${branch} or ${target} meanwhile; reading again (attempt ${attempt})`);
    say(`reading ${req.files.join(', ')} at ${target} of ${project}`);
    const [read, mr] = await Promise.all([
      Promise.all(req.files.map((f) => gl.readFile(project, f, target))),
      gl.openMergeRequest(project, branch),
    ]);
    const files = read.map((f, i) => {
      if (!f)
        throw new PromoteError(
          `--file ${req.files[i]}: not found on ${target} of ${project}`,
          PromoteExit.USAGE,
        );
      return { path: f.path, text: decodeText(f.path, f.content), lastCommitId: f.lastCommitId };
    });
    const plan = planEdits(req, files, { app, env, target }, image);
    const mrRef = mr ? { iid: mr.iid, url: mr.webUrl } : null;
    if (!plan.diffs.length) {
      say(`${target} already runs ${req.image}:${req.tag ?? req.digest}`);
      return result('noop', 'already deployed', { mr: mrRef, requests: gl.requests });
    }
    const head = branchHead === undefined ? (mr?.sha ?? null) : branchHead;
    const described = mr ? readRecordComment(mr.description) : null;
    const consistent = !!mr && !!described && described.commit === mr.sha && head === mr.sha;
    if (mr && consistent && described && sameProposal(described, plan.record)) {
      if (mr.userNotesCount === 0 && !req.dryRun) {
        // A run that stopped between opening the MR and commenting: finish its work.
        say(`adding the missing diff comment to !${mr.iid}`);
        await createDiffComment(
          gl,
          project,
          mr.iid,
          diffComment({ ...plan.record, commit: mr.sha }, plan.diffs),
        );
      }
      say(`!${mr.iid} already proposes ${req.image}:${req.tag ?? req.digest}: ${mr.webUrl}`);
      return result('noop', 'already proposed', { mr: mrRef, commit: mr.sha, changes: plan.changes });
    }
    // What the open MR proposes. When the description and the branch disagree, a race left
    // them so: the branch head's record is what would deploy, but a newer proposal in the
    // description was overwritten by an older run and must win.
    let proposed: PromotionRecord | null = consistent ? described : null;
    let onBranch: PromotionRecord | null = proposed;
    if (mr && !consistent) {
      // GitLab's push notes say who pushed since the MR's author (gitops-bot) last did: the
      // head's record is trusted only when nobody else did (anyone can write a trailer).
      const [info, pushes] = await Promise.all([
        head ? gl.commitInfo(project, head) : null,
        gl.pushNotes(project, mr.iid),
      ]);
      foreign = pushesAfter(pushes, mr.authorUsername);
      onBranch = head && !foreign.length ? readRecordTrailer(info?.message) : null;
      proposed = newest(onBranch, described);
      if (foreign.length)
        say(`!${mr.iid} has commits pushed by ${foreign.join(', ')}; they will be discarded`);
    }
    const refusal = downgrade(req, plan.deployedTag, proposed, mr);
    if (refusal) {
      if (mr && proposed && !consistent && !req.dryRun) {
        await restoreNewest(gl, req, mr, proposed, files, say);
      }
      say(`refused: ${refusal}`);
      return result('refused', refusal, { mr: mrRef, changes: plan.changes });
    }
    if (req.dryRun) {
      say(`dry run: would ${mr ? `update !${mr.iid}` : 'open a merge request'} on ${branch}`);
      return result(mr ? 'updated' : 'created', 'dry run: nothing written', {
        mr: mrRef,
        changes: plan.changes,
        dryRun: true,
      });
    }
    if (checked && !facts) {
      facts =
        'info' in checked
          ? await describeChanges({
              registry: registry!,
              gitlab: gl,
              image: req.image,
              newInfo: checked.info,
              fromTag: plan.deployedTag,
              source: req.source ?? {},
            })
          : { unverified: checked.unverified };
    }
    if (facts) plan.record.registry = facts;
    // People are resolved before anything is written: a typo must not leave a branch behind.
    const people = await resolvePeople(gl, req, mr);

    say(`committing ${req.image}:${req.tag ?? req.digest} to ${branch}`);
    let commit: string | null;
    try {
      commit = await gl.writeBranch(
        project,
        branch,
        head,
        commitMessage(plan.record),
        editActions(plan, files),
        target,
      );
    } catch (e) {
      if (
        e instanceof GitLabError &&
        e.status === 400 &&
        /has changed since you started editing/.test(e.gitlabMessage)
      ) {
        continue;
      }
      throw e;
    }
    if (!commit) {
      // Someone moved the branch after we read it: read again, and decide again.
      branchHead = await gl.branchHead(project, branch);
      continue;
    }
    branchHead = undefined;
    const record = { ...plan.record, commit };
    const title = mrTitle(record);
    const description = mrDescription(record, gl.opts.url);
    const comment = diffComment(record, plan.diffs);

    if (!mr) {
      let created: MergeRequest;
      try {
        created = await gl.createMergeRequest(project, {
          sourceBranch: branch,
          targetBranch: target,
          title,
          description,
          assigneeIds: people.assigneeIds ?? [],
          reviewerIds: people.reviewerIds ?? [],
          labels: ['gitops-bot', ...(req.labels ?? [])],
        });
      } catch (e) {
        // Another run opened it first: start over and update that one.
        if (e instanceof GitLabError && e.status === 409) continue;
        throw e;
      }
      say(`opened !${created.iid}: ${created.webUrl}`);
      if (created.sha !== commit) continue; // someone committed after us: look again
      await createDiffComment(gl, project, created.iid, comment);
      say(`commented the diff on !${created.iid}`);
      return result('created', 'opened a merge request', {
        mr: { iid: created.iid, url: created.webUrl },
        commit,
        changes: plan.changes,
        requests: gl.requests,
      });
    }

    const notes = await gl.notes(project, mr.iid);
    const sticky = notes.find((n) => isDiffComment(n.body));
    const shown = readRecordComment(sticky?.body);
    // A newer promotion moved the branch after ours (its commit is on top of ours, since the
    // move is a compare-and-swap) and has shown itself already: leave its comment alone.
    if (
      shown?.tag &&
      req.tag &&
      shown.commit !== commit &&
      compareTags(req.tag, shown.tag) === -1 &&
      !req.allowDowngrade
    )
      continue;
    if (sticky) await updateDiffComment(gl, project, mr.iid, sticky.id, comment);
    else await createDiffComment(gl, project, mr.iid, comment);
    const updated = await gl.updateMergeRequest(project, mr.iid, {
      title,
      description,
      addLabels: ['gitops-bot', ...(req.labels ?? [])].filter((l) => !mr.labels.includes(l)),
      assigneeIds: people.assigneeIds,
      reviewerIds: people.reviewerIds,
    });
    if (updated.sha !== commit) continue;
    say(`updated !${mr.iid}: ${mr.webUrl}`);
    const discarded = foreign.length ? `; discarded foreign commits pushed by ${foreign.join(', ')}` : '';
    return result('updated', `updated the open merge request${discarded}`, {
      mr: mrRef,
      commit,
      changes: plan.changes,
      requests: gl.requests,
    });
  }
  throw new PromoteError(
    `${branch} kept changing under us; gave up after ${MAX_ATTEMPTS} attempts (another promotion of ${app} to ${env} is running?)`,
    PromoteExit.FAILURE,
  );
}

/** The record with the newer tag (the branch's when they cannot be ordered). */
/**
 * Posts the diff comment, then makes sure it is the only one. Two runs that each found no
 * comment (the creator of the MR, and a run that came in before the creator commented)
 * both post one; GitLab cannot refuse the second. Every run that posts applies the same
 * rule, so they agree: the oldest comment stays, and takes the text of the comment that
 * describes the MR's head, if another one does. One read more when a comment is created,
 * two more when there was a duplicate.
 */
async function createDiffComment(gl: GitLab, project: string, iid: number, body: string): Promise<void> {
  await gl.createNote(project, iid, body);
  const comments = (await gl.notes(project, iid))
    .filter((n) => isDiffComment(n.body))
    .sort((a, b) => a.id - b.id);
  if (comments.length < 2) return;
  const [keep, ...extra] = comments;
  const head = (await gl.mergeRequest(project, iid)).sha;
  const current = comments.find((c) => readRecordComment(c.body)?.commit === head);
  if (current && current !== keep) await gl.updateNote(project, iid, keep.id, current.body);
  for (const c of extra) await gl.deleteNote(project, iid, c.id);
}

/** Updates the diff comment; when a racing run deleted it as a duplicate, posts it again. */
async function updateDiffComment(gl: GitLab, project: string, iid: number, noteId: number, body: string) {
  try {
    await gl.updateNote(project, iid, noteId, body);
  } catch (e) {
    if (!(e instanceof GitLabError && e.status === 404)) throw e;
    await createDiffComment(gl, project, iid, body);
  }
}

function newest(onBranch: PromotionRecord | null, described: PromotionRecord | null): PromotionRecord | null {
  if (!onBranch || !described) return onBranch ?? described;
  if (onBranch.tag && described.tag && described.image === onBranch.image) {
    return compareTags(described.tag, onBranch.tag) === 1 ? described : onBranch;
  }
  return onBranch;
}

/** The largest manifest promote edits: far above real ones, and it bounds memory in serve. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

function decodeText(path: string, content: Buffer): string {
  if (content.length > MAX_MANIFEST_BYTES)
    throw new PromoteError(
      `${path}: ${content.length} bytes is over the ${MAX_MANIFEST_BYTES / 1024 / 1024} MiB limit for a manifest`,
      PromoteExit.INVALID_YAML,
    );
  if (content.includes(0)) throw new PromoteError(`${path}: binary file, not YAML`, PromoteExit.INVALID_YAML);
  const text = content.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(content)) {
    throw new PromoteError(`${path}: not valid UTF-8`, PromoteExit.INVALID_YAML);
  }
  return text;
}

/** Why this promotion would go backwards, or null. */
function downgrade(
  req: PromoteRequest,
  deployed: string | undefined,
  proposed: PromotionRecord | null,
  mr: MergeRequest | null,
): string | null {
  if (req.allowDowngrade || !req.tag) return null;
  if (deployed && compareTags(req.tag, deployed) === -1) {
    return `${req.tag} is older than ${deployed}, which the target branch already runs (pass --allow-downgrade to roll back)`;
  }
  if (proposed?.tag && proposed.image === req.image && compareTags(req.tag, proposed.tag) === -1) {
    return `${req.tag} is older than ${proposed.tag}, already proposed in !${mr?.iid} (pass --allow-downgrade to replace it)`;
  }
  return null;
}

async function resolvePeople(
  gl: GitLab,
  req: PromoteRequest,
  mr: MergeRequest | null,
): Promise<{ assigneeIds?: number[]; reviewerIds?: number[] }> {
  const same = (want: string[] | undefined, have: Array<{ username: string }>) =>
    !want?.length ||
    (want.length === have.length &&
      want.every((u) => have.some((h) => h.username.toLowerCase() === u.toLowerCase())));
  const needAssignees = req.assignees?.length && !(mr && same(req.assignees, mr.assignees));
  const needReviewers = req.reviewers?.length && !(mr && same(req.reviewers, mr.reviewers));
  if (!needAssignees && !needReviewers) return {};
  const members = await gl.members(req.project);
  const ids = async (names: string[]) => {
    const out: number[] = [];
    for (const n of names) {
      const id = members.get(n.toLowerCase()) ?? (await gl.userId(n));
      if (id === null)
        throw new PromoteError(`no GitLab user '${n}' (from --assignee/--reviewer)`, PromoteExit.USAGE);
      out.push(id);
    }
    return out;
  };
  return {
    ...(needAssignees ? { assigneeIds: await ids(req.assignees!) } : {}),
    ...(needReviewers ? { reviewerIds: await ids(req.reviewers!) } : {}),
  };
}

/**
 * The repair after a race: make the branch, the description and the comment show the
 * newest proposal anyone can see right now (what this run read earlier may be stale), then
 * look once more. The branch is only ever moved by compare-and-swap, so a repair cannot
 * overwrite a newer commit that landed meanwhile; it loses the swap and looks again.
 */
async function restoreNewest(
  gl: GitLab,
  req: PromoteRequest,
  mr: MergeRequest,
  candidate: PromotionRecord,
  files: Array<{ path: string; text: string; lastCommitId: string }>,
  say: (l: string) => void,
): Promise<void> {
  let record = candidate;
  for (let round = 0; round < 3; round++) {
    const seen = await visibleProposal(gl, req.project, mr);
    if (!seen.head) return; // merged or closed meanwhile: nothing left to repair
    const pick = seen.record ? (newest(record, seen.record) ?? record) : record;
    record = pick;
    if (!(await reconcile(gl, req, mr, pick, files, say, seen.head, seen.commentId))) continue;
    const after = await visibleProposal(gl, req.project, mr);
    if (!after.record || newest(record, after.record) === record) return;
    record = after.record;
  }
}

/** The newest of what the MR's description and its diff comment propose, and its head, read now. */
async function visibleProposal(
  gl: GitLab,
  project: string,
  mr: MergeRequest,
): Promise<{ record: PromotionRecord | null; head: string | null; commentId: number | null }> {
  const [fresh, notes] = await Promise.all([
    gl.openMergeRequest(project, mr.sourceBranch),
    gl.notes(project, mr.iid),
  ]);
  const described = readRecordComment(fresh?.description);
  const sticky = notes.find((n) => isDiffComment(n.body));
  const shown = readRecordComment(sticky?.body);
  return { record: newest(described, shown), head: fresh?.sha ?? null, commentId: sticky?.id ?? null };
}

/**
 * Makes the branch, the description and the comment describe `record` again. The branch
 * is reset to that record's edit when its head (`head`) holds another proposal. False
 * when the branch moved meanwhile (nothing written).
 */
async function reconcile(
  gl: GitLab,
  req: PromoteRequest,
  mr: MergeRequest,
  record: PromotionRecord,
  files: Array<{ path: string; text: string; lastCommitId: string }>,
  say: (l: string) => void,
  head: string,
  /** the diff comment, as visibleProposal just read it */
  commentId: number | null,
): Promise<boolean> {
  const plan = planEdits(
    req,
    files,
    { app: record.app, env: record.env, target: record.target },
    { image: record.image, tag: record.tag, digest: record.digest },
  );
  const fixed: PromotionRecord = { ...record, files: plan.record.files, fromTag: plan.record.fromTag };
  let sha: string | null = head;
  const onBranch = readRecordTrailer((await gl.commitInfo(req.project, head))?.message);
  if (plan.contents.size && !(onBranch && sameProposal(onBranch, fixed))) {
    sha = await gl.writeBranch(
      req.project,
      mr.sourceBranch,
      head,
      commitMessage(fixed),
      editActions(plan, files),
      record.target,
    );
    if (!sha) return false;
  }
  const withCommit = { ...fixed, commit: sha };
  say(`bringing !${mr.iid} back in step with its branch (${record.tag ?? record.digest})`);
  const body = diffComment(withCommit, plan.diffs);
  if (commentId !== null) await updateDiffComment(gl, req.project, mr.iid, commentId, body);
  else await createDiffComment(gl, req.project, mr.iid, body);
  await gl.updateMergeRequest(req.project, mr.iid, {
    title: mrTitle(withCommit),
    description: mrDescription(withCommit, gl.opts.url),
  });
  return true;
}

/** The Commits API actions for a plan, each guarded by the file's last commit as read. */
function editActions(plan: Plan, files: Array<{ path: string; lastCommitId: string }>) {
  return [...plan.contents].map(([filePath, content]) => ({
    action: 'update' as const,
    filePath,
    content,
    lastCommitId: files.find((f) => f.path === filePath)!.lastCommitId,
  }));
}

/** GitLab's refusals, in words that say what to fix. */
function explain(e: GitLabError, req: PromoteRequest): PromoteError {
  if (e.status === 401) {
    return new PromoteError(
      `GitLab rejected the token (401 Unauthorized): check GITOPS_BOT_TOKEN; it may be expired or revoked`,
      PromoteExit.AUTH,
    );
  }
  if (e.status === 403) {
    return new PromoteError(
      `the token lacks write access to ${req.project} (${e.message}): it needs the Developer role there ` +
        '(to push a branch and open a merge request) with the api scope',
      PromoteExit.AUTH,
    );
  }
  if (e.status === 404 && /Project Not Found/i.test(e.gitlabMessage)) {
    return new PromoteError(
      `project ${req.project} not found, or the token cannot see it (it needs the Developer role there)`,
      PromoteExit.AUTH,
    );
  }
  return new PromoteError(e.message, PromoteExit.FAILURE);
}
