// The promotion's request, result and errors, shared by observe, decide and apply.

import type { GitLab } from '../gitlab/client.js';
import type { Change } from '../manifests/index.js';
import { ExitCode } from '../model/exit-codes.js';
import type { RollbackFacts, SourceFacts } from '../model/record.js';
import type { VerifyMode } from './image-facts.js';

/** The exit codes (one table for the CLI, the Action and --help: src/model/exit-codes.ts). */
export const PromoteExit = ExitCode;

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
  /** promote a tag that was rolled back from this environment (see rejections.ts) */
  allowRejected?: boolean;
  /**
   * A rollback (src/rollback): the MR is titled and labelled as one, the record carries
   * these facts, and the downgrade guard is waived for this proposal only.
   */
  rollback?: RollbackFacts;
  /** A chain step (src/chain): the tag's time healthy in the environment before, for the description. */
  chain?: { from: string; since: string };
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

/** What a promotion did; a dry run says what it would have done (would-create, would-update). */
export type PromoteAction = 'created' | 'updated' | 'noop' | 'refused' | 'would-create' | 'would-update';

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

/** A manifest as read at the target branch. */
export interface ManifestFile {
  path: string;
  text: string;
  lastCommitId: string;
}

/** Where one promotion goes: fixed for all its attempts. */
export interface Scope {
  project: string;
  target: string;
  app: string;
  env: string;
  branch: string;
  /** the image as it will be written (the digest pinned when --pin-digest asked for it) */
  image: { image: string; tag?: string; digest?: string };
}

/**
 * What promote needs of GitLab, and nothing else: reads, the one compare-and-swap branch
 * write, the MR and its comments. The client (src/gitlab/client.ts) provides it.
 */
export type PromoteForge = Pick<
  GitLab,
  | 'requests'
  | 'webUrl'
  | 'projectDefaultBranch'
  | 'readFile'
  | 'mergedMergeRequests'
  | 'listFiles'
  | 'openMergeRequest'
  | 'members'
  | 'userId'
  | 'writeBranch'
  | 'branchHead'
  | 'commitInfo'
  | 'createMergeRequest'
  | 'updateMergeRequest'
  | 'compare'
  | 'notes'
  | 'pushNotes'
  | 'createNote'
  | 'updateNote'
  | 'deleteNote'
  | 'mergeRequest'
>;
