// Observe: what GitLab holds for one promotion, read into plain data. The files at the
// target (and the edit they imply), the open MR and its description's record; when the MR
// is out of step with its branch, also the head commit's record and who pushed after the bot.
import type { MergeRequest } from '../gitlab/client.js';
import { pushesAfter } from '../gitlab/push-notes.js';
import { type PromotionRecord, readRecordComment, readRecordTrailer } from '../model/record.js';
import { type Plan, planEdits } from './plan.js';
import type { ManifestFile, PromoteForge, PromoteRequest, Scope } from './types.js';
import { PromoteError, PromoteExit } from './types.js';

export interface Observation {
  scope: Scope;
  files: ManifestFile[];
  /** the edit the files as read imply (pure, from `files`) */
  plan: Plan;
  mr: MergeRequest | null;
  /** the branch head: the MR's sha, or what GitLab showed when it was other (see `observe`) */
  head: string | null;
  /** the record in the MR's description */
  described: PromotionRecord | null;
  /** the description, the MR's sha and the branch head agree */
  consistent: boolean;
  /** read only when the MR is out of step and the files need the edit */
  branch?: {
    /** the head commit's record; null when anyone but the MR's author pushed after it */
    record: PromotionRecord | null;
    /** who pushed after the MR's author (their commits are discarded by an update) */
    foreign: string[];
  };
}

/** The largest manifest promote edits: far above real ones, and it bounds memory in serve. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

export function decodeText(path: string, content: Buffer): string {
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

/** Whether the MR's description describes its `sha`, and that is the branch head. */
export function inStep(
  mr: MergeRequest | null,
  described: PromotionRecord | null,
  head: string | null,
): boolean {
  return !!mr && !!described && described.commit === mr.sha && head === mr.sha;
}

export interface ObserveOptions {
  req: PromoteRequest;
  scope: Scope;
  /**
   * The branch head GitLab showed after a lost compare-and-swap (null: no branch), when it
   * may be other than the MR's `sha` (or there is no MR: a branch left by a run that
   * stopped before opening it). Absent: the MR's `sha`.
   */
  knownHead?: { head: string | null };
  say: (line: string) => void;
}

/** Two requests (files and MR, in parallel), two more when the MR is out of step. */
export async function observe(gl: PromoteForge, o: ObserveOptions): Promise<Observation> {
  const { req, scope } = o;
  const { project, target } = scope;
  o.say(`reading ${req.files.join(', ')} at ${target} of ${project}`);
  const [read, mr] = await Promise.all([
    Promise.all(req.files.map((f) => gl.readFile(project, f, target))),
    gl.openMergeRequest(project, scope.branch),
  ]);
  const files = read.map((f, i) => {
    if (!f)
      throw new PromoteError(
        `--file ${req.files[i]}: not found on ${target} of ${project}`,
        PromoteExit.USAGE,
      );
    return { path: f.path, text: decodeText(f.path, f.content), lastCommitId: f.lastCommitId };
  });
  const plan = planEdits(req, files, scope, scope.image);
  const head = o.knownHead ? o.knownHead.head : (mr?.sha ?? null);
  const described = mr ? readRecordComment(mr.description) : null;
  const consistent = inStep(mr, described, head);
  const seen: Observation = { scope, files, plan, mr, head, described, consistent };
  if (!mr || consistent || !plan.diffs.length) return seen;
  // GitLab's push notes say who pushed since the MR's author (gitops-bot) last did: the
  // head's record is trusted only when nobody else did (anyone can write a trailer).
  const [info, pushes] = await Promise.all([
    head ? gl.commitInfo(project, head) : null,
    gl.pushNotes(project, mr.iid),
  ]);
  const foreign = pushesAfter(pushes, mr.authorUsername);
  if (foreign.length) o.say(`!${mr.iid} has commits pushed by ${foreign.join(', ')}; they will be discarded`);
  const record = head && !foreign.length ? readRecordTrailer(info?.message) : null;
  return { ...seen, branch: { record, foreign } };
}
