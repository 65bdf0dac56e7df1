// Tag ordering decides refusals ("older than the one deployed") and escalations (a major
// bump needs one more approval): each rule is a row.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { changeKind, compareTags } from '../../src/model/version-order.js';

describe('compareTags', () => {
  const rows: Array<[string, string, -1 | 0 | 1 | null, string]> = [
    ['ci-33', 'ci-34', -1, 'build numbers with the same prefix, numerically'],
    ['ci-100', 'ci-99', 1, 'numerically, not as text'],
    ['ci-34', 'ci-34', 0, 'equal'],
    ['1.2.3', '1.10.0', -1, 'semver, not as text'],
    ['v2.0.0', '1.9.9', 1, 'a leading v is semver too'],
    ['1.0.0-rc.1', '1.0.0', -1, 'a prerelease is older than its release'],
    ['ci-34', 'build-35', null, 'different prefixes cannot be ordered'],
    ['latest', 'stable', null, 'names cannot be ordered'],
    ['1.2.3', 'ci-4', null, 'semver and a build number cannot be ordered'],
    ['ci-1234567890123456', 'ci-1234567890123457', null, 'numbers past 15 digits are not trusted as numbers'],
  ];
  for (const [a, b, want, why] of rows)
    test(`${a} vs ${b}: ${why}`, () => {
      assert.equal(compareTags(a, b), want);
      if (want !== null) assert.equal(compareTags(b, a), want === 0 ? 0 : -want);
    });
});

describe('changeKind', () => {
  const rows: Array<[string | undefined, string | undefined, string]> = [
    ['1.2.3', '2.0.0', 'major'],
    ['1.2.3', '1.3.0', 'minor'],
    ['1.2.3', '1.2.4', 'patch'],
    ['1.0.0-rc.1', '1.0.0-rc.2', 'prerelease'],
    ['1.9.9', '2.0.0-rc.1', 'major'],
    ['ci-33', 'ci-34', 'build number'],
    ['latest', 'stable', 'tag change'],
    [undefined, 'ci-34', 'tag change'],
    ['ci-34', 'ci-34', 'same'],
  ];
  for (const [from, to, want] of rows)
    test(`${from} -> ${to}: ${want}`, () => {
      assert.equal(changeKind(from, to), want);
    });
});
