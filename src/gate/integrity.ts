// "What is approved is what was shown": gitops-bot's own MR may change exactly what its
// promotion record describes, the image edit recomputed from the MR's base, and nothing
// else. Pure: the gate reads the files, this says which changes the bot did not write.
import { structuredPatch } from 'diff';
import { setImage } from '../manifests/index.js';
import type { PromotionRecord } from '../model/record.js';
import type { Foreign } from '../policy/evaluate.js';

export interface FileVersions {
  path: string;
  /** the file at the MR's base (its merge base with the target); null: absent there */
  base: string | null;
  /** the file at the evaluated head; null: deleted there */
  head: string | null;
}

/** Unified-diff hunks from `a` to `b`, each with its `@@` header and two lines of context. */
export function hunks(path: string, a: string, b: string): string[] {
  const p = structuredPatch(path, path, a, b, '', '', { context: 2 });
  return p.hunks.map((h) =>
    [`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`, ...h.lines].join('\n'),
  );
}

/** What `record`'s edit makes of `base`, or null when it cannot be recomputed there. */
export function expectedContent(record: PromotionRecord, path: string, base: string): string | null {
  try {
    return setImage(base, {
      image: record.image,
      ...(record.tag ? { tag: record.tag } : {}),
      ...(record.digest ? { digest: record.digest } : {}),
      ...(record.container ? { container: record.container } : {}),
      path,
    }).text;
  } catch {
    return null;
  }
}

/**
 * The files and hunks of the MR that `record` does not account for: every changed file the
 * record does not name, and every difference between a named file at the head and the
 * record's edit recomputed from the base. Empty when the MR is exactly the proposal.
 */
export function foreignFiles(record: PromotionRecord, files: FileVersions[]): Foreign['files'] {
  const recorded = new Set(record.files.map((f) => f.path));
  const out: Foreign['files'] = [];
  for (const f of files) {
    if (f.base === f.head) continue;
    const expected =
      recorded.has(f.path) && f.base !== null ? expectedContent(record, f.path, f.base) : (f.base ?? '');
    const actual = f.head ?? '';
    if (expected === actual && f.head !== null) continue;
    const h = hunks(f.path, expected ?? f.base ?? '', actual);
    out.push({
      path: f.path,
      hunks: h.length ? h : [`${f.head === null ? 'deleted' : 'changed'} ${f.path}`],
    });
  }
  return out;
}
