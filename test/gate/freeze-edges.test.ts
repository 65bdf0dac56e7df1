// When the next freeze edge comes (src/gate/freeze-edges.ts): one row per kind of window.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextFreezeEdge } from '../../src/gate/freeze-edges.js';
import { activeFreeze } from '../../src/policy/evaluate.js';
import { parsePolicy } from '../../src/policy/schema.js';
import { mulberry32 } from '../../src/sandbox/faults.js';

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

// Across DST changes the edge is where the gate's own evaluation (activeFreeze, which reads the
// zone's wall clock) changes its answer: a boundary in a skipped hour takes effect at the first
// instant after it; in a repeated hour the wall clock passes a boundary twice, so a window
// re-opens when the clocks go back. Santiago, Beirut and Lord Howe change near midnight or by
// 30 minutes, so 24 hours after 23:30 is not the next calendar day there.
const dstRows: Array<[string, string, string, string]> = [
  [
    'before a DST change: the window starts at its wall time (Madrid, last Sunday of March)',
    '[{ days: [sun], from: "09:00", to: "10:00", timezone: Europe/Madrid }]',
    '2027-03-28T00:30:00Z',
    '2027-03-28T07:00:00.000Z', // 09:00 CEST (UTC+2)
  ],
  [
    'a start in a skipped hour: the first instant after it (Madrid, 02:00 CET jumps to 03:00 CEST)',
    '[{ days: [sun], from: "02:30", to: "04:00", timezone: Europe/Madrid }]',
    '2027-03-28T00:30:00Z',
    '2027-03-28T01:00:00.000Z',
  ],
  [
    'a skipped hour at midnight (Beirut, Saturday 23:30: 00:00 jumps to 01:00, the start at 00:30 is skipped)',
    '[{ days: [sun], from: "00:30", to: "01:30", timezone: Asia/Beirut }]',
    '2027-03-27T21:30:00Z',
    '2027-03-27T22:00:00.000Z',
  ],
  [
    'a repeated hour: the end at its first occurrence (Madrid, 03:00 CEST goes back to 02:00 CET)',
    '[{ days: [sun], from: "01:00", to: "02:30", timezone: Europe/Madrid }]',
    '2026-10-24T23:30:00Z',
    '2026-10-25T00:30:00.000Z', // 02:30 CEST
  ],
  [
    'a repeated hour: the window opens again when the clocks go back to 02:00',
    '[{ days: [sun], from: "01:00", to: "02:30", timezone: Europe/Madrid }]',
    '2026-10-25T00:40:00Z', // 02:40 CEST: past the end
    '2026-10-25T01:00:00.000Z', // 02:00 CET
  ],
  [
    'a repeated hour: and ends again at the second 02:30',
    '[{ days: [sun], from: "01:00", to: "02:30", timezone: Europe/Madrid }]',
    '2026-10-25T01:10:00Z',
    '2026-10-25T01:30:00.000Z', // 02:30 CET
  ],
  [
    'clocks that change at midnight: the next calendar day is not skipped (Santiago, Saturday 23:30)',
    '[{ days: [sun], from: "09:00", to: "10:00", timezone: America/Santiago }]',
    '2026-09-06T03:30:00Z', // Saturday 23:30 UTC-4; Sunday starts at 01:00 UTC-3
    '2026-09-06T12:00:00.000Z',
  ],
  [
    'a 30-minute change (Lord Howe, Saturday 23:46: 02:00 jumps to 02:30)',
    '[{ days: [sun, tue], from: "03:30", to: "04:00", timezone: Australia/Lord_Howe }]',
    '2026-10-03T13:16:47Z',
    '2026-10-03T16:30:00.000Z', // Sunday 03:30 UTC+11
  ],
];

for (const [name, freeze, now, at] of dstRows) {
  test(name, () => {
    const e = nextFreezeEdge(policy(freeze), 'main', new Date(now));
    assert.equal(e?.at.toISOString(), at);
    assert.deepEqual(e?.branches, ['main']);
  });
}

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

test('windows that never change the verdict within the horizon: look again at the horizon, on no branches', () => {
  // serve clears a project's timer on null: a policy with windows must never be left untimed.
  const again = { at: '2026-12-10T13:50:00.000Z', branches: [] };
  for (const freeze of [
    '[{ days: [mon, tue, wed, thu, fri, sat, sun] }]', // always frozen
    // (a window from after to, or in an unknown zone, is refused by the schema: see evaluate.test)
  ]) {
    const e = nextFreezeEdge(policy(freeze), 'main', NOW);
    assert.deepEqual({ at: e?.at.toISOString(), branches: e?.branches }, again, freeze);
  }
});

test('no windows, or a policy that does not parse: no edge (nothing to time)', () => {
  assert.equal(nextFreezeEdge(policy('[]'), 'main', NOW), null);
  assert.equal(nextFreezeEdge({ error: 'bad' }, 'main', NOW), null);
  assert.equal(nextFreezeEdge(null, 'main', NOW), null);
});

// The property: the edge is the first whole minute after `now` at which the gate's own
// evaluation gives another answer. Checked against activeFreeze minute by minute, in zones
// whose clocks change at midnight, by 30 or 45 minutes, or not at all, mostly within hours of
// one of their DST changes (where the bugs live). activeFreeze costs ~0.1 ms a call, so the
// brute force looks SCAN_HOURS ahead: beyond that it only checks that the edge lies beyond.
const ZONES = [
  'UTC',
  'Europe/Madrid',
  'America/New_York',
  'America/Santiago',
  'America/Havana',
  'Asia/Beirut',
  'Australia/Lord_Howe',
  'Pacific/Chatham',
  'Asia/Kathmandu',
];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const SCAN_HOURS = 6;
const CASES = 300;

/** The instants in 2026-2027 at which `zone`'s UTC offset changes (to the minute). */
function offsetChanges(zone: string): number[] {
  const f = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' });
  const offset = (t: number) => f.formatToParts(t).find((p) => p.type === 'timeZoneName')?.value;
  const out: number[] = [];
  for (let t = Date.UTC(2026, 0, 1); t < Date.UTC(2028, 0, 1); t += 3_600_000) {
    if (offset(t) === offset(t + 3_600_000)) continue;
    let m = t;
    while (offset(m) === offset(t)) m += 60_000;
    out.push(m);
  }
  return out;
}

test(`property: the edge is the first minute the evaluation's answer changes (${CASES} seeded cases, DST changes included)`, () => {
  // seeded (the sandbox's fault generator), so that a failure repeats
  const random = mulberry32(20261202);
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)];
  const changes = new Map(ZONES.map((z) => [z, offsetChanges(z)]));
  const hhmm = (m: number) =>
    `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
  let found = 0;
  let acrossChange = 0;
  for (let i = 0; i < CASES; i++) {
    const zone = pick(ZONES);
    const near = changes.get(zone) ?? [];
    // Near a change, the windows' boundaries are drawn around the wall time the change shows.
    const change = near.length && random() < 0.8 ? pick(near) : null;
    const anchor = change ?? Date.UTC(2026, 0, 1) + Math.floor(random() * 2 * 365 * 86_400_000);
    const now = change ? change - Math.floor(random() * 4 * 3_600_000) : anchor;
    const local = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    }).formatToParts(anchor);
    const get = (k: string) => local.find((p) => p.type === k)?.value ?? '';
    const today = DAYS.indexOf(get('weekday').toLowerCase().slice(0, 3));
    const minute = Number(get('hour')) * 60 + Number(get('minute'));
    // 1 or 2 windows (the second sometimes in another zone) on today (and sometimes the next day), with
    // boundaries on quarter hours within hours of the anchor's wall time, so that most edges are near.
    const windows = Array.from({ length: 1 + Math.floor(random() * 2) }, (_, j) => {
      const from = Math.max(0, Math.min(1425, Math.round((minute - 120 + random() * 300) / 15) * 15));
      const to = Math.min(1440, from + 15 * (1 + Math.floor(random() * 12)));
      const days = [...new Set([DAYS[today], DAYS[(today + Math.floor(random() * 2)) % 7]])];
      const tz = j === 1 && random() < 0.3 ? pick(ZONES) : zone;
      return `{ days: [${days.join(', ')}], from: "${hhmm(from)}", to: "${hhmm(to)}", timezone: ${tz} }`;
    });
    const p = policy(`[${windows.join(', ')}]`);
    if (!p || 'error' in p) throw new Error(`case ${i}: ${p?.error}`);
    const env = p.environments[0];
    const state = (t: number) => {
      const w = activeFreeze(env.freeze, new Date(t));
      return w ? env.freeze.indexOf(w) : -1;
    };
    const first = Math.floor(now / 60_000);
    const start = state(first * 60_000);
    let brute: number | null = null;
    for (let m = first + 1; m <= first + SCAN_HOURS * 60; m++)
      if (state(m * 60_000) !== start) {
        brute = m * 60_000;
        break;
      }
    const e = nextFreezeEdge(p, 'main', new Date(now));
    const what = `case ${i}: now ${new Date(now).toISOString()} ${JSON.stringify(windows)}`;
    if (brute === null) {
      assert.ok(e && e.at.getTime() > (first + SCAN_HOURS * 60) * 60_000, `${what}: ${e?.at.toISOString()}`);
      continue;
    }
    found++;
    if (near.some((c) => c > now && c <= brute)) acrossChange++;
    assert.equal(e?.at.toISOString(), new Date(brute).toISOString(), what);
    assert.deepEqual(e?.branches, ['main'], what);
  }
  // The test must exercise what its name says: most cases have an edge to compare, and many
  // of them lie across a DST change.
  assert.ok(found >= CASES * 0.6, `${found} of ${CASES} cases have an edge within ${SCAN_HOURS} h`);
  assert.ok(acrossChange >= 40, `${acrossChange} edges across a DST change`);
});
