// The promotion record: what the bot proposed, machine-readable. It travels in three
// places: the bot's commit message (the truth, since the branch head is what would be
// deployed), the MR description and the sticky diff comment (projections of it). A run
// that finds them out of step rebuilds the projections from the branch head's commit.

export interface FileRecord {
  path: string;
  /** last_commit_id of the file on the target branch when the edit was computed */
  base: string;
  before: string[];
  after: string[];
}

export interface SourceFacts {
  project?: string;
  sha?: string;
  pipelineUrl?: string;
  pipelineIid?: string;
  projectUrl?: string;
}

/** The app changes an image bump carries: the commits between the two images' revisions. */
export interface DeployedChanges {
  /** the source project, and its web URL */
  project: string;
  projectUrl: string;
  /** `org.opencontainers.image.revision` of the deployed and of the new image */
  from: string;
  to: string;
  compareUrl: string;
  /** oldest first, at most MAX_LISTED */
  commits: Array<{ sha: string; title: string; url: string }>;
  /** commits beyond those listed */
  more: number;
  /** merge requests merged in that range (from GitLab's merge commit messages) */
  mergeRequests: Array<{ ref: string; url: string }>;
}

/** What the registry says about the images, when it was asked. */
export interface ImageFacts {
  /** the digest the new tag resolved to */
  digest?: string;
  /** the digest the deployed tag resolves to now */
  fromDigest?: string;
  /** why the image was not verified (registry unreachable, no access) */
  unverified?: string;
  changes?: DeployedChanges;
  /** why the changes cannot be known */
  changesUnknown?: string;
}

export interface PromotionRecord {
  v: 1;
  app: string;
  env: string;
  image: string;
  tag?: string;
  digest?: string;
  /** the container the edit was narrowed to (--container), so that the edit can be recomputed */
  container?: string;
  /** the tag (and digest) deployed on the target branch before this change */
  fromTag?: string;
  fromDigest?: string;
  target: string;
  files: FileRecord[];
  source: SourceFacts;
  /** from the registry and the source project (absent when the registry was not asked) */
  registry?: ImageFacts;
  /**
   * A rollback (`gitops-bot rollback`, on_degraded: rollback): back from `fromTag` to `tag`,
   * which GitLab's Deployments showed healthy in the environment. The downgrade guard is
   * waived for this proposal only, and the record says so.
   */
  rollback?: RollbackFacts;
  /** A chain step (`promotion:`): the tag has been healthy in `from` since `since` (ISO). */
  chain?: { from: string; since: string };
  /** the bot commit this description or comment describes (not in the commit itself) */
  commit?: string;
}

export interface RollbackFacts {
  /** the tag rolled back from: rejected in this environment from then on */
  fromTag?: string;
  /** why (--reason, or the agent's words for on_degraded) */
  reason: string;
  /** the agent's last message about the environment, when it said one */
  agentMessage?: string;
  /** the deployment (GitLab id) the target tag was healthy in */
  healthyDeployment?: number;
  /** what was waived for this proposal: the downgrade guard */
  waived: 'downgrade';
  /** who asked: a person with the CLI, or on_degraded */
  by: 'command' | 'on_degraded';
}

const COMMENT_OPEN = '<!-- gitops-bot:record ';
const COMMENT_CLOSE = ' -->';
const TRAILER = 'Gitops-Bot-Record: ';

/** JSON inside an HTML comment never contains `-->`: escape `>` so that it cannot. */
function encode(record: PromotionRecord): string {
  return JSON.stringify(record).replace(/>/g, '\\u003e');
}

export function recordComment(record: PromotionRecord): string {
  return `${COMMENT_OPEN}${encode(record)}${COMMENT_CLOSE}`;
}

export function recordTrailer(record: PromotionRecord): string {
  const { commit: _omit, ...rest } = record;
  return `${TRAILER}${encode(rest as PromotionRecord)}`;
}

function parse(json: string): PromotionRecord | null {
  try {
    const r = JSON.parse(json) as PromotionRecord;
    return r && r.v === 1 && typeof r.app === 'string' && Array.isArray(r.files) ? r : null;
  } catch {
    return null;
  }
}

/** The record in an MR description or note, or null. */
export function readRecordComment(text: string | null | undefined): PromotionRecord | null {
  if (!text) return null;
  const at = text.indexOf(COMMENT_OPEN);
  if (at < 0) return null;
  const end = text.indexOf(COMMENT_CLOSE, at + COMMENT_OPEN.length);
  return end < 0 ? null : parse(text.slice(at + COMMENT_OPEN.length, end));
}

/** The record in a commit message, or null. */
export function readRecordTrailer(message: string | null | undefined): PromotionRecord | null {
  if (!message) return null;
  const line = message.split('\n').find((l) => l.startsWith(TRAILER));
  return line ? parse(line.slice(TRAILER.length)) : null;
}

/** Same proposal: same image, tag, digest and the same edit of the same file versions. */
export function sameProposal(a: PromotionRecord, b: PromotionRecord): boolean {
  const files = (r: PromotionRecord) =>
    JSON.stringify(
      r.files.map((f) => [f.path, f.base, f.after]).sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
  return (
    a.image === b.image &&
    (a.tag ?? '') === (b.tag ?? '') &&
    (a.digest ?? '') === (b.digest ?? '') &&
    a.target === b.target &&
    files(a) === files(b)
  );
}
