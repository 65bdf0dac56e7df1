// Acceptance for issue 3: for every file of ../shared/corpus and every image reference in
// it, setting a new tag changes only bytes inside that reference's range (plus an inserted
// tag line for kustomize), and the data parses the same except for that value.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { findImages, type ImageRef, setImage, YamlSyntaxError } from '../../src/manifests/index.js';

const CORPUS = new URL('../../../../shared/corpus/', import.meta.url).pathname;
const NEW_TAG = 'ci-gitops-bot-7';

function toData(text: string): unknown[] {
  return parseAllDocuments(text, { uniqueKeys: false }).map((d) => d.toJS({ maxAliasCount: -1 }));
}

/** Paths (as strings) where two values differ. */
function differences(a: unknown, b: unknown, path = '', out: string[] = []): string[] {
  if (Object.is(a, b)) return out;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) differences((a as never)[k], (b as never)[k], `${path}/${k}`, out);
    return out;
  }
  out.push(path);
  return out;
}

/**
 * Checks that `after` equals `before` outside the given ranges, i.e. that it is `before`
 * with each range replaced (and kustomize's inserted line landing right after its range).
 */
function onlyInside(before: string, after: string, ranges: Array<[number, number]>): boolean {
  const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
  const outside: string[] = [];
  let at = 0;
  for (const [s, e] of sorted) {
    if (s < at) continue;
    outside.push(before.slice(at, s));
    // Allow an insertion up to the end of the range's last line (after a trailing comment).
    const nl = before.indexOf('\n', e);
    at = nl < 0 ? before.length : before[nl - 1] === '\r' ? nl - 1 : nl;
  }
  outside.push(before.slice(at));
  let pos = 0;
  for (let i = 0; i < outside.length; i++) {
    const seg = outside[i];
    if (i === 0) {
      if (!after.startsWith(seg)) return false;
      pos = seg.length;
    } else if (i === outside.length - 1) {
      if (!after.endsWith(seg) || after.length - seg.length < pos) return false;
    } else {
      const found = after.indexOf(seg, pos);
      if (found < 0) return false;
      pos = found + seg.length;
    }
  }
  return true;
}

test('every image reference in the corpus can be retagged byte-exactly', () => {
  const files = readdirSync(CORPUS).filter((f) => /\.ya?ml$/.test(f));
  let checked = 0;
  let unparseable = 0;
  let filesWithRefs = 0;
  const failures: string[] = [];
  for (const file of files) {
    const text = readFileSync(join(CORPUS, file), 'utf8');
    let refs: ImageRef[];
    try {
      refs = findImages(text, file);
    } catch (e) {
      assert.ok(e instanceof YamlSyntaxError, `${file}: ${e}`);
      unparseable++;
      continue;
    }
    if (refs.length) filesWithRefs++;
    const before = toData(text);
    for (const ref of refs) {
      const result = setImage(text, {
        image: ref.kind === 'kustomize' && ref.name ? ref.name : ref.repository,
        tag: NEW_TAG,
        container: ref.container,
        followAnchor: true,
        path: file,
      });
      checked++;
      const label = `${file}:${ref.line} ${ref.value}`;
      assert.ok(result.changes.length >= 1, `${label}: no change`);
      // All references to that repository (in that container) change together.
      const edited = findImages(text, file).filter((r) =>
        result.changes.some((c) => c.document === r.document && c.path.join('/') === r.path.join('/')),
      );
      if (
        !onlyInside(
          text,
          result.text,
          edited.map((r) => r.range),
        )
      ) {
        failures.push(`${label}: bytes changed outside the reference`);
        continue;
      }
      const after = toData(result.text);
      const changedPaths = result.changes.map((c) => `/${c.document}/${c.path.join('/')}`);
      for (const d of differences(before, after)) {
        const inside = changedPaths.some((p) => d === p || d.startsWith(`${p}/`));
        // Values that share an anchor with an edited one change with it.
        const viaAnchor = String(
          d
            .split('/')
            .slice(1)
            .reduce((v: any, k) => v?.[k], after),
        ).includes(NEW_TAG);
        if (!inside && !viaAnchor) failures.push(`${label}: data changed at ${d}`);
      }
      const reread = findImages(result.text, file).filter((r) =>
        changedPaths.includes(`/${r.document}/${r.path.join('/')}`),
      );
      for (const r of reread) if (r.tag !== NEW_TAG) failures.push(`${label}: re-read tag is ${r.tag}`);
    }
  }
  console.log(
    `corpus: ${files.length} files, ${filesWithRefs} with image references, ${checked} references checked, ` +
      `${unparseable} files not YAML (templates), ${failures.length} failures`,
  );
  assert.deepEqual(failures, []);
  assert.ok(checked > 600);
});
