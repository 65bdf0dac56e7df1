// Which of two tags is newer, and what kind of change a bump is. Semver when both tags are
// semver (a leading `v` allowed), numeric for build numbers with the same prefix
// (`ci-33` → `ci-34`, the story's `ci-<pipeline iid>`); otherwise unknown.
import semver from 'semver';

export type ChangeKind = 'major' | 'minor' | 'patch' | 'prerelease' | 'build number' | 'tag change' | 'same';

function asSemver(tag: string): string | null {
  const v = semver.valid(tag.startsWith('v') ? tag.slice(1) : tag);
  return v;
}

function asBuild(tag: string): { prefix: string; n: number } | null {
  const m = /^(.*?)(\d+)$/.exec(tag);
  if (!m || m[2].length > 15) return null;
  return { prefix: m[1], n: Number(m[2]) };
}

/** -1 if a is older than b, 1 if newer, 0 if equal, null if the tags cannot be ordered. */
export function compareTags(a: string, b: string): -1 | 0 | 1 | null {
  if (a === b) return 0;
  const sa = asSemver(a);
  const sb = asSemver(b);
  if (sa && sb) return semver.compare(sa, sb);
  const ba = asBuild(a);
  const bb = asBuild(b);
  if (ba && bb && ba.prefix === bb.prefix && !sa && !sb) return ba.n === bb.n ? 0 : ba.n < bb.n ? -1 : 1;
  return null;
}

export function changeKind(from: string | undefined, to: string | undefined): ChangeKind {
  if (!from || !to) return 'tag change';
  if (from === to) return 'same';
  const sa = asSemver(from);
  const sb = asSemver(to);
  if (sa && sb) {
    const d = semver.diff(sa, sb);
    if (d === 'major' || d === 'premajor') return 'major';
    if (d === 'minor' || d === 'preminor') return 'minor';
    if (d === 'patch' || d === 'prepatch') return 'patch';
    return 'prerelease';
  }
  return compareTags(from, to) !== null ? 'build number' : 'tag change';
}
