// Decide: when the next freeze window of the rules starts or ends, and which target branches
// it changes verdicts on. A window's edge changes verdicts with no event at all, so `serve`
// sets one timer per project to this instant (no requests until then). Pure: the policy and
// the time in, the edge out.
import { activeFreeze } from '../policy/evaluate.js';
import type { Environment, FreezeWindow } from '../policy/schema.js';
import type { ParsedPolicy } from './trust.js';

export interface FreezeEdge {
  /** the first instant (a whole minute) at which some environment's active window differs */
  at: Date;
  /** the target branches of the environments whose window changes then */
  branches: string[];
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Windows repeat weekly: any edge falls within a week and a day (time zone changes included). */
const HORIZON_DAYS = 8;

/** The wall-clock fields of instant `t` in `timeZone`. */
function wallClock(t: number, timeZone: string) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(t));
  const get = (k: string) => Number(parts.find((p) => p.type === k)?.value ?? 0);
  return {
    year: get('year'),
    month: get('month'),
    day: get('day'),
    hour: get('hour'),
    minute: get('minute'),
  };
}

/** The instant when `timeZone`'s clocks show the given wall time (the nearest one, across DST). */
function instantOf(timeZone: string, y: number, mo: number, d: number, hh: number, mm: number): number {
  const wanted = Date.UTC(y, mo - 1, d, hh, mm);
  let t = wanted;
  for (let i = 0; i < 3; i++) {
    const w = wallClock(t, timeZone);
    const shown = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute);
    if (shown === wanted) break;
    t += wanted - shown;
  }
  return t;
}

/** Instants near which `w` may start or end after `now`, within the horizon. */
function candidates(w: FreezeWindow, now: number): number[] {
  const out: number[] = [];
  for (let k = -1; k <= HORIZON_DAYS; k++) {
    const day = wallClock(now + k * DAY, w.timezone);
    for (const hhmm of [w.from, w.to]) {
      const t = instantOf(
        w.timezone,
        day.year,
        day.month,
        day.day,
        Number(hhmm.slice(0, 2)),
        Number(hhmm.slice(3)),
      );
      // An hour either side: a wall time that a DST change skips or repeats lands there.
      for (const c of [t - HOUR, t, t + HOUR]) if (c > now) out.push(c);
    }
  }
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
  let lo = Math.floor(now / MINUTE);
  for (const c of cs) {
    let hi = Math.floor(c / MINUTE);
    if (hi <= lo || stateAt(env, hi * MINUTE) === start) {
      lo = Math.max(lo, hi);
      continue;
    }
    // The change lies in (lo, hi]: find its minute.
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (stateAt(env, mid * MINUTE) === start) lo = mid;
      else hi = mid;
    }
    return hi * MINUTE;
  }
  return null;
}

/**
 * The next freeze edge of `policy` after `now`, or null when it has none (no windows, or a
 * policy that does not parse: it blocks every MR whatever the time). An environment whose
 * time zone is unknown is left out: its MRs fail to evaluate at any time.
 */
export function nextFreezeEdge(policy: ParsedPolicy, defaultBranch: string, now: Date): FreezeEdge | null {
  if (!policy || 'error' in policy) return null;
  let best: FreezeEdge | null = null;
  for (const env of policy.environments) {
    if (!env.freeze.length) continue;
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
  return best;
}
