// The sticky comment: the rendered diff of every changed file. One per MR; later runs
// edit it. Long diffs are collapsed, and the whole is cut below GitLab's note limit.
import { createPatch } from 'diff';
import { DIFF_MARKER } from '../model/markers.js';
import { type PromotionRecord, recordComment } from '../model/record.js';
import { code, fence } from './markdown.js';

/** GitLab refuses notes over 1,000,000 characters; stay well below. */
export const NOTE_BUDGET = 900_000;
const COLLAPSE_LINES = 40;

export interface FileDiff {
  path: string;
  before: string;
  after: string;
}

function renderSection(path: string, patch: string): string {
  const lines = patch.split('\n').length;
  const fenceMark = fence(patch);
  const block = `${fenceMark}diff\n${patch}\n${fenceMark}`;
  return lines > COLLAPSE_LINES
    ? `<details><summary>${code(path)} (${lines} lines)</summary>\n\n${block}\n\n</details>\n`
    : `${code(path)}\n\n${block}\n`;
}

export function isDiffComment(body: string | undefined): boolean {
  return !!body && body.startsWith(DIFF_MARKER);
}

export function diffComment(r: PromotionRecord, files: FileDiff[], budget = NOTE_BUDGET): string {
  const head = [
    DIFF_MARKER,
    recordComment(r),
    '',
    `**Rendered diff** for ${r.image}:${r.tag ?? r.digest}`,
    '',
  ].join('\n');
  const parts: string[] = [];
  let used = head.length;
  let cut = false;
  for (const f of files) {
    const patch = createPatch(f.path, f.before, f.after, '', '', { context: 3 })
      .split('\n')
      .slice(4) // drop the Index/===/---/+++ header: the file name is the heading
      .join('\n')
      .trimEnd();
    const section = renderSection(f.path, patch);
    if (used + section.length > budget) {
      // Keep as many lines of this file's diff as fit, then stop.
      const room = budget - used - 200;
      const kept: string[] = [];
      let size = 0;
      for (const line of patch.split('\n')) {
        if (size + line.length + 1 > room) break;
        kept.push(line);
        size += line.length + 1;
      }
      if (kept.length) parts.push(renderSection(f.path, kept.join('\n')));
      cut = true;
      break;
    }
    parts.push(section);
    used += section.length;
  }
  const tail = cut
    ? `\n_The diff is cut here: GitLab's limit for a comment is 1,000,000 characters. See the **Changes** tab for the rest._\n`
    : '';
  return `${head}${parts.join('\n')}${tail}`;
}
