// The verdict on a merge request: a pure function over facts fetched from GitLab, so that
// every rule, and every way around one, is a row in a table test (as Atlantis does with its
// apply requirements).
import type { ChangeKind } from '../model/version-order.js';
import {
  accessLevelNumber,
  type Environment,
  type FreezeWindow,
  type Policy,
  type RollbackRules,
} from './schema.js';

export interface Person {
  id: number;
  username: string;
  bot?: boolean;
  email?: string | null;
  name?: string;
}

export interface Facts {
  mr: {
    iid: number;
    state: string;
    draft: boolean;
    author: Person;
    sha: string;
    targetBranch: string;
    changedPaths: string[];
  };
  /** a policy parse error means "blocked"; null means no policy file */
  policy: Policy | { error: string } | null;
  approvals: Array<{ user: Person; approvedAt: string }>;
  /** members of the groups the policy names, by lowercase group path; null: unreadable */
  groups?: Map<string, Set<number> | null>;
  /** access level of each member of the ops project, by user id */
  accessLevels: Map<number, number>;
  /**
   * Ids of the users GitLab recorded as pushing to the MR's source branch (its "added N
   * commits" system notes and push events). Not commit author or committer fields: anyone
   * writes those.
   */
  pushers: Set<number>;
  /** What the bot may trust about where the rules came from and the target branch. */
  trust: Trust;
  /** For gitops-bot's own MRs: what the MR changes beyond its promotion record (null: nothing). */
  foreign?: Foreign | null;
  /** A file the bot refused to read (over the size limit): nothing can be judged. */
  unreadable?: string | null;
  /** when the MR's latest push landed (server time) */
  lastPushAt: string | null;
  /** the largest image tag change the MR makes, read from the files themselves */
  bumpKind?: ChangeKind | null;
  /** the bot's own account: its approval never counts */
  botUserId: number;
  now: Date;
  /**
   * For gitops-bot's own MR whose trusted record is a rollback: whether GitLab shows the
   * target tag ran healthy in the environment (gatherFacts decides; absent or null: not a
   * rollback). Only a verified rollback is judged by the environment's `rollback:` rules.
   */
  rollback?: RollbackFact | null;
}

/** What the gate verified of a rollback record (src/gate/facts.ts rollbackFact). */
export type RollbackFact =
  | {
      verified: true;
      /** the environment the record names (the policy environment's name) */
      env: string;
      app: string;
      tag: string;
      fromTag?: string;
      /** the bot's successful deployment, in GitLab environment `<env>/<app>`, that ran the tag */
      deployment: number;
      /** its GitLab environment */
      environment: string;
    }
  | { verified: false; reason: string };

export interface Trust {
  /** where the rules were read from, e.g. `main` or `main (as deployed at deploy/prod)` */
  source: string;
  /** the ops project's default branch: environments without target_branches govern it alone */
  defaultBranch: string;
  /** the default branch is protected (else no rule read from it can be trusted) */
  defaultProtected: boolean;
  /** the MR's target branch is protected */
  targetProtected: boolean;
  /** one-line notes for the verdict: a policy found elsewhere and ignored, a change not yet in force */
  notes: string[];
}

/** Changes in one of gitops-bot's MRs that its promotion record does not account for. */
export interface Foreign {
  /** who pushed them, as GitLab recorded it (usernames); empty when unknown */
  pushedBy: string[];
  /** why the MR is foreign, when it is not about files (e.g. the head is not gitops-bot's commit) */
  reason?: string;
  files: Array<{ path: string; hunks: string[] }>;
}

export interface ApprovalVerdict {
  username: string;
  counted: boolean;
  reason: string;
}

export interface Verdict {
  pass: boolean;
  /** commit status state */
  state: 'success' | 'pending' | 'failed';
  /** one line, for the commit status description (GitLab allows 255 characters) */
  summary: string;
  environment: string | null;
  required: number;
  counted: number;
  approvals: ApprovalVerdict[];
  blockers: string[];
  merge: 'manual' | 'bot';
  /** 'rollback': a verified rollback judged by the environment's `rollback:` rules */
  rules?: 'environment' | 'rollback';
  deployRef?: string;
  /** notes on where the rules came from (shown in the verdict comment) */
  notes: string[];
  /** set when gitops-bot's own MR carries changes it did not write */
  foreign?: Foreign;
}

const DEFAULT_ENV_NAME = 'default';

/** Glob to RegExp: `*` within a path segment, `**` across segments, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * The environment governing an MR into `targetBranch`. An environment without
 * target_branches governs the default branch only: an MR author picks the target branch,
 * so a rule that matched any branch would govern branches a Developer creates.
 */
export function selectEnvironment(
  policy: Policy,
  targetBranch: string,
  paths: string[],
  defaultBranch: string,
): Environment | null {
  for (const env of policy.environments) {
    const m = env.match;
    if (!(m.target_branches ?? [defaultBranch]).includes(targetBranch)) continue;
    if (m.files && !paths.some((p) => m.files!.some((g) => globToRegExp(g).test(p)))) continue;
    return env;
  }
  return null;
}

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** The freeze window `now` falls in, if any. */
export function activeFreeze(windows: FreezeWindow[], now: Date): FreezeWindow | null {
  for (const w of windows) {
    const parts = new Intl.DateTimeFormat('en-US', {
      timeZone: w.timezone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    }).formatToParts(now);
    const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
    const day = get('weekday').toLowerCase().slice(0, 3);
    const minutes = Number(get('hour')) * 60 + Number(get('minute'));
    const toMin = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3));
    if (!w.days.includes(day as never) || !WEEKDAYS.includes(day)) continue;
    if (minutes >= toMin(w.from) && minutes < toMin(w.to)) return w;
  }
  return null;
}

/** The target branches a policy governs, for messages. */
export function governedBranches(policy: Policy, defaultBranch: string): string[] {
  return [...new Set(policy.environments.flatMap((e) => e.match.target_branches ?? [defaultBranch]))];
}

function blocked(reason: string, env: string | null, notes: string[] = [], foreign?: Foreign): Verdict {
  return {
    pass: false,
    state: 'failed',
    summary: reason.slice(0, 255),
    environment: env,
    required: 0,
    counted: 0,
    approvals: [],
    blockers: [reason],
    merge: 'manual',
    notes,
    ...(foreign ? { foreign } : {}),
  };
}

/** One sentence on a foreign MR, for the summary. */
export function foreignSummary(f: Foreign): string {
  const who = f.pushedBy.map((u) => `@${u}`).join(', ');
  const files = f.files.map(
    (x) => `${x.path} (${x.hunks.length} ${x.hunks.length === 1 ? 'hunk' : 'hunks'})`,
  );
  const what = files.length
    ? `${who ? `${who} pushed ` : ''}changes gitops-bot did not write: ${files.join(', ')}`
    : who
      ? `${who} pushed commits after gitops-bot's own${f.reason ? ` (${f.reason})` : ''}`
      : (f.reason ?? 'commits gitops-bot did not write');
  return `${what}; approvals cannot make this deployable: run the promotion again to discard them`;
}

export function evaluate(f: Facts, defaultPolicy: Policy): Verdict {
  const t = f.trust;
  const notes = t.notes;
  if (!t.defaultProtected)
    return blocked(
      `the default branch ${t.defaultBranch} is not protected, so its rules cannot be trusted (protect it: Settings > Repository > Protected branches)`,
      null,
      notes,
    );
  if (f.policy && 'error' in f.policy) return blocked(`invalid policy: ${f.policy.error}`, null, notes);
  const policy = f.policy ?? defaultPolicy;
  const env = selectEnvironment(policy, f.mr.targetBranch, f.mr.changedPaths, t.defaultBranch);
  if (!env) {
    const governed = governedBranches(policy, t.defaultBranch).join(', ');
    return blocked(
      `target branch ${f.mr.targetBranch} is not governed by the rules on ${t.source} (they govern ${governed}); gitops-bot never merges into it`,
      null,
      notes,
    );
  }
  const name = f.policy ? env.name : DEFAULT_ENV_NAME;
  if (!t.targetProtected)
    return blocked(
      `target branch ${f.mr.targetBranch} is not protected, so a Developer could push to it: gitops-bot does not deploy from unprotected branches`,
      name,
      notes,
    );
  if (f.mr.state !== 'opened' && f.mr.state !== 'merged')
    return blocked(`the merge request is ${f.mr.state}`, name, notes);
  if (f.unreadable) return blocked(f.unreadable, name, notes);
  if (f.foreign) return blocked(foreignSummary(f.foreign), name, notes, f.foreign);

  const rb = rollbackRules(f, env, name);
  const notes2 = rb.note ? [...notes, rb.note] : notes;
  const a = rb.rules ? (rb.rules.approvals ?? env.approvals) : env.approvals;
  let required = a.required;
  const kind = f.bumpKind ?? null;
  // A verified rollback restores a tag that ran before: its own rules, no escalation.
  if (!rb.rules) for (const e of env.escalation) if (kind === e.when) required += e.extra_approvals;

  const minLevel = accessLevelNumber(a.min_access_level);
  const groupMembers = (a.groups ?? []).map((g) => ({ g, members: f.groups?.get(g.toLowerCase()) ?? null }));
  const unreadable = groupMembers.find((x) => !x.members);
  if (unreadable)
    return blocked(
      `approvals.groups: cannot read group '${unreadable.g}' (missing, or not visible to gitops-bot)`,
      name,
    );
  const restricted = !!(a.users?.length || a.groups?.length);
  const listed = (user: Person) =>
    !!a.users?.some((u) => u.toLowerCase() === user.username.toLowerCase()) ||
    groupMembers.some((x) => x.members!.has(user.id));
  const eligible = [...(a.users ?? []), ...(a.groups ?? []).map((g) => `members of ${g}`)].join(', ');
  const verdicts: ApprovalVerdict[] = [];
  const seen = new Set<number>();
  for (const { user, approvedAt } of f.approvals) {
    if (seen.has(user.id)) continue;
    seen.add(user.id);
    const level = f.accessLevels.get(user.id) ?? 0;
    const isCommitter = f.pushers.has(user.id);
    let reason = '';
    if (user.id === f.botUserId) reason = 'gitops-bot cannot approve its own proposals';
    else if (user.id === f.mr.author.id && !a.count_author) reason = 'the author of the merge request';
    else if (user.bot && !a.count_bots) reason = 'a bot user';
    else if (isCommitter && !a.count_committers) reason = 'pushed commits to the merge request';
    else if (restricted && !listed(user)) reason = `not among the approvers of ${name} (${eligible})`;
    else if (level < minLevel)
      reason = `role too low (${levelName(level)}; needs ${levelName(minLevel)} or higher)`;
    else if (!a.count_before_push && f.lastPushAt && Date.parse(approvedAt) < Date.parse(f.lastPushAt)) {
      reason = 'approved before the latest push';
    }
    verdicts.push({ username: user.username, counted: !reason, reason: reason || 'counted' });
  }
  const counted = verdicts.filter((v) => v.counted).length;
  const who = restricted ? eligible : `${levelName(minLevel)}s`;
  const blockers: string[] = [];
  if (f.mr.draft) blockers.push('the merge request is a draft');
  const freeze = activeFreeze(rb.rules ? rb.rules.freeze : env.freeze, f.now);
  if (freeze) {
    blockers.push(
      `freeze window (${freeze.days.join(',')} ${freeze.from}-${freeze.to} ${freeze.timezone})${freeze.reason ? `: ${freeze.reason}` : ''}`,
    );
  }
  const escalated = required > a.required ? ` (${kind} bump: +${required - a.required})` : '';
  const enough = counted >= required;
  const under = rb.rules ? ' (rollback rules)' : '';
  const summary = `${Math.min(counted, required)}/${required} approvals from ${who}${escalated}${under}${blockers.length ? `; ${blockers[0]}` : ''}`;
  return {
    pass: enough && blockers.length === 0,
    state: enough && !blockers.length ? 'success' : freeze || f.mr.draft || !enough ? 'pending' : 'failed',
    summary: summary.slice(0, 255),
    environment: name,
    required,
    counted,
    approvals: verdicts,
    blockers,
    merge: rb.rules ? (rb.rules.merge ?? env.merge) : env.merge,
    rules: rb.rules ? 'rollback' : 'environment',
    ...(env.deploy_ref ? { deployRef: env.deploy_ref } : {}),
    notes: notes2,
  };
}

/**
 * The environment's rollback rules when they apply to this MR (a rollback GitLab's
 * Deployments verified, for this very environment), and the verdict's note on why they do or
 * do not. Pure.
 */
export function rollbackRules(
  f: Pick<Facts, 'rollback'>,
  env: Environment,
  name: string,
): { rules: RollbackRules | null; note: string | null } {
  const r = f.rollback;
  if (!r) return { rules: null, note: null };
  if (!r.verified)
    return {
      rules: null,
      note: `Not judged as a rollback: ${r.reason}; the rules of ${name} apply.`,
    };
  if (r.env !== env.name)
    return {
      rules: null,
      note: `Not judged as a rollback: its record names the environment ${r.env}, and this merge request is governed by ${name}; the rules of ${name} apply.`,
    };
  const ran = `${r.tag} ran healthy in ${r.environment} (deployment #${r.deployment})`;
  if (!env.rollback)
    return {
      rules: null,
      note: `A rollback${r.fromTag ? ` from ${r.fromTag}` : ''} to ${ran}; ${name} has no rollback rules, so its own rules apply.`,
    };
  return {
    rules: env.rollback,
    note: `Rollback rules of ${name} applied: a rollback${r.fromTag ? ` from ${r.fromTag}` : ''} to ${ran}, as GitLab's Deployments show.`,
  };
}

function levelName(level: number): string {
  const names: Record<number, string> = {
    0: 'no role',
    10: 'Guest',
    15: 'Planner',
    20: 'Reporter',
    30: 'Developer',
    40: 'Maintainer',
    50: 'Owner',
    60: 'Admin',
  };
  return names[level] ?? `level ${level}`;
}
