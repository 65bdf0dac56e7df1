// The edit a promotion makes, computed from the files as read: pure.
import {
  type Change,
  type ImageRef,
  InvalidReferenceError,
  NotReferencedError,
  SharedAnchorError,
  setImage,
  YamlSyntaxError,
} from '../manifests/index.js';
import { type PromotionRecord, recordTrailer } from '../model/record.js';
import { mrTitle } from '../render/description.js';
import type { FileDiff } from '../render/diff-comment.js';
import { type ManifestFile, PromoteError, PromoteExit, type PromoteRequest, type Scope } from './types.js';

export interface Plan {
  record: PromotionRecord;
  diffs: FileDiff[];
  contents: Map<string, string>;
  changes: Array<Change & { file: string }>;
  deployedTag?: string;
}

/** setImage on one file, its failures as PromoteErrors. */
function edit(req: Pick<PromoteRequest, 'container'>, f: ManifestFile, image: Scope['image']) {
  try {
    return setImage(f.text, { ...image, container: req.container, path: f.path });
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
}

/** Applies the edit to each file as it is on the target branch. Pure. */
export function planEdits(
  req: Pick<PromoteRequest, 'container' | 'source' | 'rollback' | 'chain'>,
  files: ManifestFile[],
  meta: { app: string; env: string; target: string },
  image: Scope['image'],
): Plan {
  const diffs: FileDiff[] = [];
  const contents = new Map<string, string>();
  const changes: Array<Change & { file: string }> = [];
  const records: PromotionRecord['files'] = [];
  let from: ImageRef | undefined;
  let fromChange: Change | undefined;
  for (const f of files) {
    const result = edit(req, f, image);
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
    ...(req.rollback ? { rollback: req.rollback } : {}),
    ...(req.chain ? { chain: req.chain } : {}),
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

export function commitMessage(r: PromotionRecord): string {
  const lines = [mrTitle(r), ''];
  for (const f of r.files) lines.push(`${f.path}: ${f.before.join(', ')} -> ${f.after.join(', ')}`);
  const s = r.source;
  if (s.project || s.sha)
    lines.push('', `Source: ${s.project ?? ''}${s.sha ? `@${s.sha.slice(0, 12)}` : ''}`);
  if (s.pipelineUrl) lines.push(`Pipeline: ${s.pipelineUrl}`);
  lines.push('', recordTrailer(r));
  return lines.join('\n');
}

/** The Commits API actions for a plan, each guarded by the file's last commit as read. */
export function editActions(plan: Plan, files: Array<{ path: string; lastCommitId: string }>) {
  return [...plan.contents].map(([filePath, content]) => ({
    action: 'update' as const,
    filePath,
    content,
    lastCommitId: files.find((f) => f.path === filePath)!.lastCommitId,
  }));
}
