// Decide: when the next freeze window of the rules starts or ends, and which target branches
// it changes verdicts on. A window's edge changes verdicts with no event at all, so `serve`
// sets one timer per project to this instant (no requests until then). Pure: the policy and
// the time in, the edge out.
//
// The edge is, exactly, the first whole minute after `now` at which `activeFreeze` (the gate's
// own evaluation, src/policy/evaluate.ts) gives an environment another answer. That
// evaluation reads the wall clock of each window's zone (weekday, hour, minute), so across a
// DST change:
// - a boundary at a wall time the change skips (02:30 when 02:00 jumps to 03:00) takes effect
//   at the first instant after it, the change itself (03:00);
// - a boundary in a repeated hour is crossed at its first occurrence, and again at its second:
//   when the clocks go back the wall clock re-enters the window (01:00-02:30 is active from
//   the first 01:00 to the first 02:30, and again from the change back to 02:00 until the
//   second 02:30). Both are edges, since both change the evaluation's answer.
// So the instants at which an answer can change are: the wall-clock boundaries of each window
// on each calendar day, taken in each stretch of constant UTC offset, plus the offset changes
// themselves. Between two of them no window's answer changes, so the edge is the first of
// them at which the environment's answer differs from now's.
import { activeFreeze } from '../policy/evaluate.js';
import type { Environment, FreezeWindow } from '../policy/schema.js';
import type { ParsedPolicy } from './trust.js';

export interface FreezeEdge {
  /** the first instant (a whole minute) at which some environment's active window differs */
  at: Date;
  /**
   * the target branches of the environments whose window changes then; empty: no window
   * changes within the horizon (always frozen, never open, an unknown time zone), and `at` is
   * only when to look again, so that a policy with windows is never left untimed
   */
  branches: string[];
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Windows repeat weekly: any edge falls within a week and a day (time zone changes included). */
const HORIZON_DAYS = 8;

const formatters = new Map<string, Intl.DateTimeFormat>();

/** `timeZone`'s wall clock at instant `t`, written as if it were UTC (ms); RangeError: unknown zone. */
function wallAsUtc(t: number, timeZone: string): number {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(timeZone, f);
  }
  const parts = f.formatToParts(new Date(t));
  const get = (k: string) => Number(parts.find((p) => p.type === k)?.value ?? 0);
  return Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'));
}

/** The UTC offset of `timeZone` at the whole minute `t` (ms). */
const offsetAt = (t: number, timeZone: string) => wallAsUtc(t, timeZone) - t;

/**
 * The stretches of constant UTC offset of `timeZone` from the whole minute `from` to `to`:
 * each starts at an offset change (the first at `from`). Offsets are sampled hourly (zones
 * change them months apart) and each change is found to the minute.
 */
function stretches(timeZone: string, from: number, to: number): Array<{ start: number; offset: number }> {
  const out = [{ start: from, offset: offsetAt(from, timeZone) }];
  for (let t = from; t < to; t += HOUR) {
    const last = out[out.length - 1].offset;
    const next = Math.min(t + HOUR, to);
    if (offsetAt(next, timeZone) === last) continue;
    // The change lies in (t, next]: find its first minute.
    let lo = t / MINUTE;
    let hi = next / MINUTE;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (offsetAt(mid * MINUTE, timeZone) === last) lo = mid;
      else hi = mid;
    }
    out.push({ start: hi * MINUTE, offset: offsetAt(hi * MINUTE, timeZone) });
  }
  return out;
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3));

/** Instants after `now`, within the horizon, at which `w`'s answer may change. */
function candidates(w: FreezeWindow, now: number): number[] {
  const from = Math.floor(now / MINUTE) * MINUTE;
  const to = from + HORIZON_DAYS * DAY;
  const boundaries = [minutesOf(w.from), minutesOf(w.to)];
  const out: number[] = [];
  const parts = stretches(w.timezone, from, to);
  parts.forEach(({ start, offset }, i) => {
    const end = i + 1 < parts.length ? parts[i + 1].start : to;
    if (start > now) out.push(start); // the wall clock jumps here
    // Calendar days of the stretch's wall clock, stepped as dates (a day is not always 24 h of
    // real time, and a wall-clock day may begin after midnight): boundary by boundary.
    const firstDay = Math.floor((start + offset) / DAY) * DAY;
    for (let day = firstDay; day < end + offset; day += DAY) {
      for (const m of boundaries) {
        const t = day + m * MINUTE - offset;
        if (t >= start && t < end && t > now) out.push(t);
      }
    }
  });
  return out;
}

/** Which window of `env` is active at `t` (its index, -1: none), minute by minute. */
function stateAt(env: Environment, t: number): number {
  const w = activeFreeze(env.freeze, new Date(Math.floor(t / MINUTE) * MINUTE));
  return w ? env.freeze.indexOf(w) : -1;
}

/** The first whole minute after `now` at which `env`'s active window changes, or null. */
function envEdge(env: Environment, now: number): number | null {
  const start = stateAt(env, now);
  const cs = [...new Set(env.freeze.flatMap((w) => candidates(w, now)))].sort((a, b) => a - b);
  for (const c of cs) if (stateAt(env, c) !== start) return Math.ceil(c / MINUTE) * MINUTE;
  return null;
}

/**
 * The next freeze edge of `policy` after `now`, or null when it has no windows (or does not
 * parse: it blocks every MR whatever the time). An environment whose time zone is unknown is
 * left out: its MRs fail to evaluate at any time. When windows exist but none changes within
 * the horizon, the edge is the horizon with no branches: look again then, never stop timing.
 */
export function nextFreezeEdge(policy: ParsedPolicy, defaultBranch: string, now: Date): FreezeEdge | null {
  if (!policy || 'error' in policy) return null;
  let best: FreezeEdge | null = null;
  let windows = false;
  for (const env of policy.environments) {
    if (!env.freeze.length) continue;
    windows = true;
    let at: number | null;
    try {
      at = envEdge(env, now.getTime());
    } catch (e) {
      if (e instanceof RangeError) continue; // Intl: an unknown time zone
      throw e;
    }
    if (at === null) continue;
    const branches = env.match.target_branches ?? [defaultBranch];
    if (!best || at < best.at.getTime()) best = { at: new Date(at), branches: [...branches] };
    else if (at === best.at.getTime()) best.branches = [...new Set([...best.branches, ...branches])];
  }
  if (!best && windows)
    return { at: new Date(Math.floor(now.getTime() / MINUTE) * MINUTE + HORIZON_DAYS * DAY), branches: [] };
  return best;
}
