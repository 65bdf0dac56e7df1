// When the next freeze edge comes (src/gate/freeze-edges.ts): one row per kind of window.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextFreezeEdge } from '../../src/gate/freeze-edges.js';
import { parsePolicy } from '../../src/policy/schema.js';

const policy = (freeze: string, match = '{ target_branches: [main] }') =>
  parsePolicy(`version: 1\nenvironments:\n  - name: prod\n    match: ${match}\n    freeze: ${freeze}\n`);

// Wednesday 2026-12-02 13:50 UTC
const NOW = new Date('2026-12-02T13:50:20Z');

const rows: Array<[string, string, string | null]> = [
  [
    'a window later today starts at its from',
    '[{ days: [wed], from: "14:00", to: "15:00" }]',
    '2026-12-02T14:00:00.000Z',
  ],
  ['inside a window: its end', '[{ days: [wed], from: "13:00", to: "15:30" }]', '2026-12-02T15:30:00.000Z'],
  ['a window to 24:00 ends at midnight', '[{ days: [wed], from: "13:00" }]', '2026-12-03T00:00:00.000Z'],
  [
    'whole days that follow each other: the end of the last',
    '[{ days: [wed, thu] }]',
    '2026-12-04T00:00:00.000Z',
  ],
  ['a window next week', '[{ days: [tue], from: "09:00", to: "10:00" }]', '2026-12-08T09:00:00.000Z'],
  [
    'in a time zone: its wall clock (Madrid is UTC+1 in December)',
    '[{ days: [wed], from: "18:00", to: "19:00", timezone: Europe/Madrid }]',
    '2026-12-02T17:00:00.000Z',
  ],
  [
    'a zone with a 45-minute offset (Kathmandu, UTC+5:45: Thursday 00:00 there is Wednesday 18:15 UTC)',
    '[{ days: [thu], from: "00:00", to: "01:00", timezone: Asia/Kathmandu }]',
    '2026-12-02T18:15:00.000Z',
  ],
  ['always frozen: no edge', '[{ days: [mon, tue, wed, thu, fri, sat, sun] }]', null],
  ['no windows: no edge', '[]', null],
  [
    'the earliest of two windows',
    '[{ days: [fri], from: "08:00", to: "09:00" }, { days: [wed], from: "20:00", to: "21:00" }]',
    '2026-12-02T20:00:00.000Z',
  ],
];

for (const [name, freeze, at] of rows) {
  test(name, () => {
    const e = nextFreezeEdge(policy(freeze), 'main', NOW);
    assert.equal(e?.at.toISOString() ?? null, at);
    if (e) assert.deepEqual(e.branches, ['main']);
  });
}

test('across a DST change: the window starts at its wall time (Madrid, last Sunday of March)', () => {
  const e = nextFreezeEdge(
    policy('[{ days: [sun], from: "09:00", to: "10:00", timezone: Europe/Madrid }]'),
    'main',
    new Date('2027-03-28T00:30:00Z'),
  );
  // 09:00 CEST (UTC+2) on 2027-03-28
  assert.equal(e?.at.toISOString(), '2027-03-28T07:00:00.000Z');
});

test('an environment without target_branches governs the default branch; edges at the same minute merge', () => {
  const p = parsePolicy(`version: 1
environments:
  - name: a
    match: { target_branches: [staging] }
    freeze: [{ days: [wed], from: "14:00", to: "15:00" }]
  - name: b
    freeze: [{ days: [wed], from: "14:00", to: "16:00" }]
`);
  const e = nextFreezeEdge(p, 'main', NOW);
  assert.equal(e?.at.toISOString(), '2026-12-02T14:00:00.000Z');
  assert.deepEqual(e?.branches, ['staging', 'main']);
});

test('an unknown time zone or a policy that does not parse: no edge (nothing to time)', () => {
  assert.equal(
    nextFreezeEdge(policy('[{ days: [wed], from: "14:00", timezone: Mars/Olympus }]'), 'main', NOW),
    null,
  );
  assert.equal(nextFreezeEdge({ error: 'bad' }, 'main', NOW), null);
  assert.equal(nextFreezeEdge(null, 'main', NOW), null);
});

test('cheap: computing an edge takes well under the time of one request', () => {
  const p = policy(
    '[{ days: [mon, wed, fri], from: "08:00", to: "18:00", timezone: America/New_York }, { days: [sat], timezone: Asia/Tokyo }]',
  );
  const t = performance.now();
  for (let i = 0; i < 10; i++) nextFreezeEdge(p, 'main', NOW);
  const ms = (performance.now() - t) / 10;
  assert.ok(ms < 100, `${ms.toFixed(1)} ms per edge`);
});
