// `gitops-bot status`, the decision half: facts read from GitLab (Deployments, the bot's
// open merge requests and its verdict comments, the promotion records in the ops repo's
// history) → one row per environment × app. Pure, so the table is a table test
// (test/cli/status.test.ts); src/cli/status.ts reads the facts and prints the rows.
//
// Trust: every fact here is one a Developer cannot forge. Deployments are written by the
// bot (the feedback loop) or whoever holds a token that may; the verdict and the diff comment
// are read only when the bot's account wrote them (the reader checks the author); the
// deployed tag comes from the promotion record in the bot's commit message, the truth the
// MR's description and comment are projections of.

import { VERDICT_MARKER } from '../model/markers.js';
import type { PromotionRecord } from '../model/record.js';
import { activeFreeze } from '../policy/evaluate.js';
import type { FreezeWindow } from '../policy/schema.js';

/** One GitLab Deployment, as much of it as the table needs. */
export interface DeploymentFact {
  id: number;
  /** the GitLab environment, `<env>/<app>` for gitops-bot's */
  environment: string;
  sha: string;
  status: 'created' | 'running' | 'success' | 'failed' | 'canceled' | 'blocked' | 'skipped';
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

/** The gate's published verdict on an MR, read back from its sticky comment. */
export interface VerdictFacts {
  pass: boolean;
  /** the one-line summary (the commit status description) */
  summary: string;
  /** the policy environment the MR deploys to; null when none governs it */
  environment: string | null;
  /** the first 8 hex of the commit the verdict is about */
  evaluatedAt: string;
  /** everything that holds the MR besides missing approvals */
  blockers: string[];
}

/** One of gitops-bot's open merge requests. */
export interface ProposalFact {
  iid: number;
  webUrl: string;
  /** the MR head */
  sha: string;
  /** the record in the bot's own diff comment; null when there is none */
  record: PromotionRecord | null;
  verdict: VerdictFacts | null;
}

export interface StatusFacts {
  now: Date;
  /** only this policy environment (`--env`) */
  env?: string;
  /** the ops project's GitLab environments (names) */
  environments: string[];
  /** its Deployments, any order */
  deployments: DeploymentFact[];
  /** for each deployed sha: the promotion records in its history, newest first */
  records: Record<string, PromotionRecord[]>;
  /** for each deployed sha: the bot's `gitops-bot/deploy` commit status, when the bot wrote one */
  deployStatus: Record<string, { state: string; description: string } | undefined>;
  proposals: ProposalFact[];
}

export type Health = 'Healthy' | 'Progressing' | 'Degraded' | 'Failed' | 'Canceled' | 'Pending' | 'none';

export interface StatusRow {
  environment: string;
  app: string;
  /** what the newest Deployment applied; null when nothing was deployed through GitLab yet */
  deployed: {
    tag: string | null;
    digest: string | null;
    sha: string;
    deployment: number;
  } | null;
  health: Health;
  /** when the health began (ISO 8601) */
  since: string | null;
  /** the bot's words on the deployment (its gitops-bot/deploy status), when it has some */
  detail: string | null;
  proposed: { tag: string | null; digest: string | null; iid: number; url: string } | null;
  /** what the proposal waits for, in a few words; null when nothing is proposed */
  waitsFor: string | null;
}

/**
 * The gate's verdict comment (src/gate/gate.ts verdictComment) read back: the headline,
 * the environment line and the blocker list. Null when `body` is no verdict comment.
 */
export function parseVerdictComment(body: string): VerdictFacts | null {
  if (!body.startsWith(VERDICT_MARKER)) return null;
  const lines = body.split('\n');
  const head = /^\S+ \*\*(Ready to deploy|Not ready to deploy)\*\*: (.*)$/.exec(lines[1] ?? '');
  if (!head) return null;
  const envLine = lines.find((l) => l.startsWith('Environment: ')) ?? '';
  const env = /^Environment: `([^`]+)`/.exec(envLine);
  const at = /evaluated at `([0-9a-f]{4,40})`/.exec(envLine);
  // The blocker list follows the environment line, before any note or table.
  const blockers: string[] = [];
  for (let i = lines.indexOf(envLine) + 1; i < lines.length; i++) {
    const l = lines[i];
    if (l === '' && blockers.length === 0) continue;
    if (!l.startsWith('- ')) break;
    blockers.push(l.slice(2));
  }
  return {
    pass: head[1] === 'Ready to deploy',
    summary: head[2],
    environment: env ? env[1] : null,
    evaluatedAt: at ? at[1] : '',
    blockers,
  };
}

const FREEZE = /^freeze window \(([a-z,]+) (\d\d:\d\d)-(\d\d:\d\d) ([^)\s]+)\)/;

/**
 * When the freeze window a blocker names ends, as "Monday 08:00" in the window's time zone
 * (a week of windows back to back has no end: null). Steps through time with the gate's
 * own activeFreeze, so status and gate never disagree on whether it is frozen.
 */
export function freezeEnd(blocker: string, now: Date): string | null {
  const m = FREEZE.exec(blocker);
  if (!m) return null;
  const window = {
    days: m[1].split(','),
    from: m[2],
    to: m[3],
    timezone: m[4],
  } as FreezeWindow;
  const frozen = (t: number) => {
    try {
      return activeFreeze([window], new Date(t)) !== null;
    } catch {
      return false; // an unknown time zone: the gate could not have named it
    }
  };
  const STEP = 15 * 60_000;
  // Minutes matter (windows are HH:MM); start at the minute, step a quarter, then back up.
  let t = Math.floor(now.getTime() / 60_000) * 60_000;
  if (!frozen(t)) return null;
  const limit = t + 8 * 24 * 3_600_000;
  while (t < limit && frozen(t)) t += STEP;
  if (t >= limit) return null;
  while (!frozen(t - 60_000)) t -= 60_000;
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: window.timezone,
    weekday: 'long',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(t));
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('weekday')} ${get('hour')}:${get('minute')}`;
}

const APPROVALS = /^(\d+)\/(\d+) approvals from (.+?)(?: \(\w+ bump: \+\d+\))?(?:; .*)?$/;

/** What a proposal waits for, from its verdict: missing approvals, then each blocker. */
export function waitsFor(p: ProposalFact, now: Date): string {
  const v = p.verdict;
  if (!v) return 'the gate (no verdict yet)';
  if (!v.evaluatedAt || !p.sha.startsWith(v.evaluatedAt))
    return 'the gate (its verdict is for an older commit)';
  if (v.pass) return 'a merge (the rules pass)';
  const parts: string[] = [];
  const a = APPROVALS.exec(v.summary);
  if (a) {
    const need = Number(a[2]) - Number(a[1]);
    if (need > 0) parts.push(`${need} approval${need === 1 ? '' : 's'} from ${a[3]}`);
  }
  for (const b of v.blockers) {
    const until = freezeEnd(b, now);
    parts.push(until ? `frozen until ${until}` : b);
  }
  return parts.length ? parts.join('; ') : v.summary;
}

/** The GitLab environment `<env>/<app>` split; null for environments gitops-bot does not write. */
export function splitEnvironment(name: string): { environment: string; app: string } | null {
  const at = name.lastIndexOf('/');
  if (at <= 0 || at === name.length - 1) return null;
  return { environment: name.slice(0, at), app: name.slice(at + 1) };
}

/**
 * The bot's words on one environment in its `gitops-bot/deploy` status, whose description
 * lists every environment of the commit: `production/helloworld: Healthy, staging/web: …`.
 * Null when it does not name the environment.
 */
export function deployWords(description: string, environment: string): string | null {
  const escaped = environment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`(?:^|, )${escaped}: `).exec(description);
  if (!m) return null;
  const rest = description.slice(m.index + m[0].length);
  // the next environment's entry, `, <env>/<app>: `
  const next = /, [^\s,:/]+\/[^\s,:/]+: /.exec(rest);
  return (next ? rest.slice(0, next.index) : rest).trim() || null;
}

function healthOf(d: DeploymentFact, words: string | null): Health {
  switch (d.status) {
    case 'success':
      return 'Healthy';
    case 'running':
      return 'Progressing';
    case 'failed':
      return words && /^(❌ ?)?Degraded/.test(words) ? 'Degraded' : 'Failed';
    case 'canceled':
      return 'Canceled';
    default:
      return 'Pending';
  }
}

/** The image's digest: the one pinned, else the one the registry resolved the tag to. */
function digestOf(r: PromotionRecord | undefined): string | null {
  return r?.digest ?? r?.registry?.digest ?? null;
}

/**
 * The newest Deployment of each environment; a canceled one only when there is no other:
 * the feedback loop cancels the twin a racing replica made, which never stood for anything.
 */
export function newestDeployments<D extends DeploymentFact>(deployments: D[]): Map<string, D> {
  const rank = (d: D) => (d.status === 'canceled' || d.status === 'skipped' ? 0 : 1);
  const newest = new Map<string, D>();
  for (const d of deployments) {
    const seen = newest.get(d.environment);
    if (!seen || rank(d) > rank(seen) || (rank(d) === rank(seen) && d.id > seen.id))
      newest.set(d.environment, d);
  }
  return newest;
}

/** The table: one row per environment × app that was deployed or is proposed, sorted. */
export function statusRows(f: StatusFacts): StatusRow[] {
  const rows = new Map<string, StatusRow>();
  const row = (environment: string, app: string): StatusRow => {
    const key = `${environment}/${app}`;
    let r = rows.get(key);
    if (!r) {
      r = {
        environment,
        app,
        deployed: null,
        health: 'none',
        since: null,
        detail: null,
        proposed: null,
        waitsFor: null,
      };
      rows.set(key, r);
    }
    return r;
  };
  const newest = newestDeployments(f.deployments);
  for (const name of new Set([...f.environments, ...newest.keys()])) {
    const split = splitEnvironment(name);
    if (!split || (f.env && split.environment !== f.env)) continue;
    const r = row(split.environment, split.app);
    const d = newest.get(name);
    if (!d) continue;
    const record = (f.records[d.sha] ?? []).find((x) => x.app === split.app);
    const status = f.deployStatus[d.sha];
    const words = status ? deployWords(status.description, name) : null;
    r.deployed = { tag: record?.tag ?? null, digest: digestOf(record), sha: d.sha, deployment: d.id };
    r.health = healthOf(d, words);
    r.since = d.status === 'running' ? d.createdAt : (d.finishedAt ?? d.updatedAt);
    // "failed" alone says no more than the health does
    r.detail = words && d.status === 'failed' && !/^(failed|Failed)$/.test(words) ? words : null;
  }
  // The newest proposal per environment × app (the bot keeps one branch for each).
  for (const p of [...f.proposals].sort((a, b) => a.iid - b.iid)) {
    if (!p.record) continue;
    const environment = p.verdict?.environment ?? p.record.env;
    if (f.env && environment !== f.env) continue;
    const r = row(environment, p.record.app);
    r.proposed = { tag: p.record.tag ?? null, digest: digestOf(p.record), iid: p.iid, url: p.webUrl };
    r.waitsFor = waitsFor(p, f.now);
  }
  return [...rows.values()].sort(
    (a, b) => a.environment.localeCompare(b.environment) || a.app.localeCompare(b.app),
  );
}

/** "12:03 UTC" today, "Nov 30 12:03 UTC" before (UTC: the table must read the same anywhere). */
export function sinceText(iso: string | null, now: Date): string {
  if (!iso) return '';
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const hm = t.toISOString().slice(11, 16);
  if (t.toISOString().slice(0, 10) === now.toISOString().slice(0, 10)) return `${hm} UTC`;
  const month = t.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' });
  return `${month} ${t.getUTCDate()} ${hm} UTC`;
}

/** The agent's message can be long (1,000 characters); --json has it whole. */
const clip = (s: string, n: number) => ([...s].length > n ? `${[...s].slice(0, n - 1).join('')}…` : s);
const short = (digest: string | null) => (digest ? digest.replace(/^sha256:/, '').slice(0, 12) : '');

/** The rows as text with aligned columns (the last column is left ragged). */
export function renderStatusTable(rows: StatusRow[], now: Date): string {
  if (!rows.length) return 'no environments: nothing deployed or proposed by gitops-bot yet\n';
  const head = ['ENVIRONMENT', 'APP', 'DEPLOYED', 'DIGEST', 'HEALTH', 'SINCE', 'PROPOSED', 'WAITS FOR'];
  const body = rows.map((r) => [
    r.environment,
    r.app,
    r.deployed ? (r.deployed.tag ?? r.deployed.sha.slice(0, 8)) : '-',
    r.deployed ? short(r.deployed.digest) || '-' : '-',
    r.health === 'none'
      ? '-'
      : r.detail
        ? clip(r.detail.startsWith(r.health) ? r.detail : `${r.health}: ${r.detail}`, 50)
        : r.health,
    sinceText(r.since, now) || '-',
    r.proposed ? `${r.proposed.tag ?? short(r.proposed.digest)} (!${r.proposed.iid})` : '-',
    r.waitsFor ?? '-',
  ]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((cells) => [...cells[i]].length)));
  const lines = all.map((cells) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i] - [...c].length)))
      .join('  ')
      .trimEnd(),
  );
  const links = rows.filter((r) => r.proposed).map((r) => `  !${r.proposed!.iid}: ${r.proposed!.url}`);
  return `${lines.join('\n')}\n${links.length ? `\n${links.join('\n')}\n` : ''}`;
}
