// The compare API caps its diffs as GitLab does (Gitlab::Git::DiffCollection's default
// limits: 100 files, 5,000 lines, 500 KiB) and says so with `compare_timeout: true`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { COMPARE_DIFF_LIMITS } from '../../src/sandbox/api-compare.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { api, client, OPS, sandboxFixture } from '../helpers.js';

let sb: Sandbox;
const op = () => client(sb, 'operator');

async function commit(actions: Array<{ filePath: string; content: string }>): Promise<string> {
  const c = await op().Commits.create(
    OPS,
    'main',
    'change',
    actions.map((a) => ({ action: 'create' as const, ...a })),
  );
  return String(c.id);
}

async function compare(from: string, to: string) {
  const r = await api(
    sb,
    `/projects/${encodeURIComponent(OPS)}/repository/compare?from=${from}&to=${to}&straight=true`,
    { token: 'operator-token' },
  );
  assert.equal(r.status, 200);
  return r.body as { diffs: Array<{ new_path: string }>; compare_timeout: boolean };
}

const files = (n: number, dir: string) =>
  Array.from({ length: n }, (_, i) => ({ filePath: `${dir}/f${i}.txt`, content: `${i}\n` }));

let head = '';
before(async () => {
  sb = await sandboxFixture();
  head = String((await op().Branches.show(OPS, 'main')).commit.id);
});
after(() => sb?.close());

test('the limits are GitLab’s defaults', () => {
  assert.deepEqual(COMPARE_DIFF_LIMITS, { maxFiles: 100, maxLines: 5000, maxBytes: 512_000 });
});

test('a compare of 100 files lists them all: no overflow', async () => {
  const to = await commit(files(100, 'hundred'));
  const c = await compare(head, to);
  assert.equal(c.diffs.length, 100);
  assert.equal(c.compare_timeout, false);
  head = to;
});

test('a compare of 101 files lists the first 100 and says compare_timeout', async () => {
  const to = await commit(files(101, 'more'));
  const c = await compare(head, to);
  assert.equal(c.diffs.length, 100);
  assert.equal(c.compare_timeout, true);
  head = to;
});

test('a file that brings the lines to 5,000 is not listed, and the compare overflows', async () => {
  const long = `${Array.from({ length: 4998 }, (_, i) => `line ${i}`).join('\n')}\n`;
  const to = await commit([
    { filePath: 'a-small.txt', content: 'small\n' },
    { filePath: 'b-long.txt', content: long },
  ]);
  const c = await compare(head, to);
  assert.deepEqual(
    c.diffs.map((d) => d.new_path),
    ['a-small.txt'],
  );
  assert.equal(c.compare_timeout, true);
  head = to;
});

test('over 500 KiB of diff overflows, under the file and line limits', async () => {
  // five files of 120 KiB (each under GitLab's 200 KiB limit on one file's patch)
  const wide = `${'x'.repeat(120 * 1024)}\n`;
  const to = await commit(Array.from({ length: 5 }, (_, i) => ({ filePath: `wide${i}.txt`, content: wide })));
  const c = await compare(head, to);
  assert.deepEqual(
    c.diffs.map((d) => d.new_path),
    ['wide0.txt', 'wide1.txt', 'wide2.txt', 'wide3.txt'],
  );
  assert.equal(c.compare_timeout, true);
});
