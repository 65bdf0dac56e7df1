// rejections() as a table: which tags a rollback rejected in an environment, from the merged
// MRs of gitops-bot's branch (newest merge first), and what lifts a rejection.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PromotionRecord, recordComment } from '../../src/model/record.js';
import { type MergedMergeRequest, rejectionMessage, rejections } from '../../src/promote/rejections.js';

let iid = 20;
function merged(r: Partial<PromotionRecord>, mergedAt = '2026-12-03T12:10:00Z'): MergedMergeRequest {
  const record: PromotionRecord = {
    v: 1,
    app: 'helloworld',
    env: 'production',
    image: 'registry/root/helloworld',
    target: 'main',
    files: [],
    source: {},
    ...r,
  };
  return {
    iid: iid--,
    webUrl: `http://gitlab/-/merge_requests/${iid}`,
    description: `text\n${recordComment(record)}`,
    mergedAt,
  };
}
const rollback = (tag: string, from: string, reason = 'Degraded: ImagePullBackOff') =>
  merged({ tag, rollback: { fromTag: from, reason, waived: 'downgrade', by: 'on_degraded' } });

const rows: Array<[string, MergedMergeRequest[], string[]]> = [
  ['no rollback, no rejection', [merged({ tag: 'ci-35' }), merged({ tag: 'ci-34' })], []],
  [
    'a merged rollback rejects the tag it rolled back from',
    [rollback('ci-34', 'ci-35'), merged({ tag: 'ci-35' })],
    ['ci-35'],
  ],
  [
    'a later merged promotion of that tag (--allow-rejected) lifts it',
    [merged({ tag: 'ci-35' }), rollback('ci-34', 'ci-35')],
    [],
  ],
  ['a newer tag is not affected', [merged({ tag: 'ci-36' }), rollback('ci-34', 'ci-35')], ['ci-35']],
  [
    'two rollbacks reject both tags',
    [rollback('ci-33', 'ci-34'), rollback('ci-34', 'ci-35')],
    ['ci-34', 'ci-35'],
  ],
  [
    'MRs without a record (a person opened one on the branch) are ignored',
    [{ iid: 1, webUrl: 'u', description: 'by hand', mergedAt: null }, rollback('ci-34', 'ci-35')],
    ['ci-35'],
  ],
];
for (const [name, list, want] of rows)
  test(`rejections: ${name}`, () => {
    assert.deepEqual(
      rejections(list).map((r) => r.tag),
      want,
    );
  });

test('rejectionMessage says which tag, where, when, which MR and why', () => {
  const [r] = rejections([rollback('ci-34', 'ci-35')]);
  assert.match(
    rejectionMessage(r),
    /^ci-35 was rolled back from production at 12:10 \(!\d+\): Degraded: ImagePullBackOff$/,
  );
});
