// What gitops-bot writes back to GitLab after an agent's report (or a timeout): a pure
// function of facts read from GitLab, table-tested in test/feedback/decide.test.ts like the
// gate's evaluate(). observe.ts gathers the facts, apply.ts writes the decision.
//
// One Deployment per (GitLab environment, revision), whatever arrives twice, late or from two
// replicas at once:
// - the deployment of a revision is the oldest one GitLab holds for it that is not canceled;
//   younger twins (two replicas that both created one) are canceled, by every run alike;
// - running on phase running; success on Healthy once the sync succeeded; failed on Degraded,
//   a failed sync, or no Healthy within deploy_timeout after the merge;
// - an observation older (`at`) than the one the state was written from changes nothing, so
//   reordered reports converge on the newest one;
// - never a transition GitLab refuses (AGENTS.md 4.2): nothing goes back to running, and a
//   finished state is left for another only when a newer report says so. Success then
//   Degraded becomes failed (GitLab allows success → failed): the environment's page then
//   shows the revision as failed, which is what runs there now. Failed then Healthy (the
//   agent retried, the image was pushed late) becomes success likewise;
// - a deployment that a newer one of its environment succeeded after is superseded: if it
//   is still running it is canceled, and reports about it change nothing else.
import type { DeploymentInfo } from '../gitlab/client.js';
import type { AgentObservation } from '../model/agent.js';
import { duration } from '../model/duration.js';
import { DEPLOY_STATUS_NAME, gitlabEnvironment } from '../model/markers.js';

export { DEPLOY_STATUS_NAME, gitlabEnvironment };

export type DeployStatus = 'running' | 'success' | 'failed';
export type FailureReason = 'degraded' | 'sync_failed' | 'timeout';
/** The Deployment section inside the MR's sticky comment starts here (with its state). */
export const DEPLOYMENT_SECTION = '<!-- gitops-bot:deployment ';

/** What the MR's section last said of one GitLab environment: the state and the report's time. */
export interface SectionState {
  sha: string;
  status: DeployStatus;
  /** the agent's `at` the state was decided from (the timeout's time for a timeout) */
  at: string;
  /** when the deployment came to this status (what the text's time says) */
  since?: string;
  reason?: FailureReason;
  text: string;
}

export interface OpsMergeRequest {
  iid: number;
  webUrl: string;
  mergedAt: string | null;
  /** the bot apps this MR changes in this environment (from its promotion records) */
  apps: string[];
  /** the app MRs its records list under "What is being deployed" (`group/app!1`) */
  appMergeRequests: string[];
  /** what its Deployment section holds now, by GitLab environment */
  section: Record<string, SectionState>;
  /** what its promotion records proposed, by app (from the bot's commits on the branch) */
  records?: Record<string, ProposedApp>;
}

/** One app's proposal in a bot MR, as its record says (what a rollback goes back from). */
export interface ProposedApp {
  image: string;
  tag?: string;
  files: string[];
  target: string;
  /** the proposal was a rollback (its record says so) */
  rollback?: boolean;
}

export interface WatchedEnvironment {
  /** the policy environment (`production`) */
  name: string;
  /** the branch the agent tracks: deploy_ref, else the target branch */
  ref: string;
  timeoutMs: number;
  /** the policy's on_degraded (default alert) */
  onDegraded?: 'alert' | 'rollback';
  /** the bot MRs the revision deploys here since the last successful deployment */
  mergeRequests: OpsMergeRequest[];
}

export interface FeedbackFacts {
  /** the ops project's path (`root/helloworld-ops`) */
  project: string;
  /** the agent application, as the policy names it (`argocd:helloworld`) */
  agentApp: string;
  revision: string;
  /** the agent's report; null for a timeout check */
  observation: AgentObservation | null;
  now: string;
  environments: WatchedEnvironment[];
  /** the project's deployments in these environments (one page, any order) */
  deployments: DeploymentInfo[];
  /**
   * the commit status gitops-bot/deploy on the revision, when gitops-bot wrote it; undefined
   * when it was not read: then it is written whenever a deployment or a section changes
   * (apply writes it before the sections, so a section in place means its status is too)
   */
  status?: { state: string; description: string } | null;
}

export interface DeploymentAction {
  environment: string;
  ref: string;
  action: 'create' | 'update' | 'none';
  status: DeployStatus | 'canceled';
  /** the deployment updated (update) */
  id?: number;
  why: string;
}

export interface FeedbackDecision {
  deployments: DeploymentAction[];
  status: { sha: string; state: DeployStatus; description: string } | null;
  /** the Deployment section of each ops MR, null where it stays as it is */
  sections: Array<{ iid: number; section: string }>;
  appNotes: Array<{ ref: string; marker: string; body: string }>;
  alerts: Array<{
    environment: string;
    reason: FailureReason;
    /** the ops MRs the comment goes on */
    iids: number[];
    marker: string;
    body: string;
  }>;
  /** when to check again for the timeout (ISO), null when nothing is still waiting */
  recheckAt: string | null;
  /**
   * on_degraded: rollback: the rollback MRs to open (and merge when the rollback rules pass
   * without people), one per app whose deployment of a revision bot MRs deployed failed.
   */
  rollbacks: RollbackAction[];
}

export interface RollbackAction {
  /** the policy environment (`production`) */
  environment: string;
  app: string;
  /** `Degraded: Back-off pulling image …`, `Sync failed: …`, `no Healthy within 5 min` */
  reason: string;
  /** the agent's message, when it said one */
  agentMessage?: string;
  /** what the failed revision proposed for the app (the newest of its bot MRs' records) */
  failed?: ProposedApp;
  /** the ops MRs of the failed revision (an alert goes there when no rollback is possible) */
  iids: number[];
}

const hhmm = (iso: string) => iso.slice(11, 16);

/**
 * Whether decideFeedback may write the MR's Deployment section (or app notes, or alerts) for
 * this report: only when it tells an outcome (Healthy, Degraded, a failed sync) or for a
 * timeout check (`null`). A sync under way (`running`, applied but not Healthy yet) shows in
 * GitLab's own Deployment (status running) and in the commit status gitops-bot/deploy, so
 * the MR's comment waits for the outcome: observe skips reading the MR's notes for such a
 * report (2 requests saved on every running report).
 */
export function writesSection(o: AgentObservation | null): boolean {
  if (!o) return true;
  const w = wanted(o);
  return !!w && w.status !== 'running';
}

/** What the report asks of the deployment, before GitLab's state is considered. */
function wanted(o: AgentObservation): { status: DeployStatus; reason?: FailureReason } | null {
  if (o.phase === 'failed') return { status: 'failed', reason: 'sync_failed' };
  if (o.health === 'Degraded') return { status: 'failed', reason: 'degraded' };
  if (o.phase === 'running') return { status: 'running' };
  if (o.health === 'Healthy' && (o.phase === 'succeeded' || o.phase === null)) return { status: 'success' };
  // applied, not healthy yet (Progressing, Missing, Suspended, Unknown)
  if (o.phase === 'succeeded') return { status: 'running' };
  return null;
}

function lineFor(
  s: Exclude<DeployStatus, 'running'>,
  reason: FailureReason | undefined,
  env: WatchedEnvironment,
  at: string,
  message: string,
  mergedAt: string | null,
): string {
  if (s === 'success') {
    const after = mergedAt ? ` (${duration(Date.parse(at) - Date.parse(mergedAt))} after merge)` : '';
    return `✅ Synced and Healthy in ${env.name} at ${hhmm(at)}${after}`;
  }
  if (reason === 'timeout') return `⌛ not live after ${duration(env.timeoutMs)}`;
  const words = message.replace(/\s+/g, ' ').trim() || 'no message from the agent';
  return reason === 'sync_failed' ? `❌ Sync failed: ${words}` : `❌ Degraded: ${words}`;
}

const FINISHED = new Set(['success', 'failed', 'canceled', 'skipped']);

/** The machine-readable head of the section: its state per GitLab environment. */
export function sectionHead(state: Record<string, SectionState>): string {
  return `${DEPLOYMENT_SECTION}${JSON.stringify(state).replace(/>/g, '\\u003e')} -->`;
}

/** The state a Deployment section holds (null when the text has none). */
export function readSection(text: string): Record<string, SectionState> | null {
  const at = text.indexOf(DEPLOYMENT_SECTION);
  if (at < 0) return null;
  const end = text.indexOf(' -->', at + DEPLOYMENT_SECTION.length);
  if (end < 0) return null;
  try {
    const v = JSON.parse(text.slice(at + DEPLOYMENT_SECTION.length, end));
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

export function renderSection(state: Record<string, SectionState>, project: string): string {
  const rows = Object.entries(state)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([environment, s]) => `- ${s.text} — \`${environment}\` at \`${s.sha.slice(0, 8)}\``);
  return [
    sectionHead(state),
    '### Deployment',
    '',
    ...rows,
    '',
    `<sub>From the in-cluster agent; GitLab's Environments page of ${project} has the history.</sub>`,
  ].join('\n');
}

export function decideFeedback(f: FeedbackFacts): FeedbackDecision {
  const o = f.observation;
  const out: FeedbackDecision = {
    deployments: [],
    status: null,
    sections: [],
    appNotes: [],
    alerts: [],
    recheckAt: null,
    rollbacks: [],
  };
  const want = o ? wanted(o) : null;
  const at = o?.at ?? f.now;
  // per environment, for the commit status: what it is, and in words (as the section says)
  const results: Array<{ environment: string; status: DeployStatus; text?: string }> = [];
  const sections = new Map<number, { mr: OpsMergeRequest; state: Record<string, SectionState> }>();
  const opsName = f.project.split('/').pop() ?? f.project;

  for (const env of f.environments) {
    const apps = [...new Set(env.mergeRequests.flatMap((m) => m.apps))].sort();
    const landedAt =
      env.mergeRequests
        .map((m) => m.mergedAt)
        .filter((t): t is string => !!t)
        .sort()
        .at(-1) ?? null;
    for (const app of apps) {
      const environment = gitlabEnvironment(env.name, app);
      const mrs = env.mergeRequests.filter((m) => m.apps.includes(app));
      const mine = f.deployments
        .filter((d) => d.environment === environment && d.sha === f.revision)
        .sort((a, b) => a.id - b.id);
      const live = mine.filter((d) => d.status !== 'canceled');
      const [current, ...twins] = live;
      for (const t of twins)
        out.deployments.push({
          environment,
          ref: env.ref,
          action: 'update',
          status: 'canceled',
          id: t.id,
          why: `a second deployment of ${f.revision.slice(0, 8)} (a racing run made it); #${current.id} stays`,
        });
      if (!current && mine.length) {
        out.deployments.push({
          environment,
          ref: env.ref,
          action: 'none',
          status: 'canceled',
          why: 'canceled',
        });
        continue;
      }
      // Superseded: a newer deployment of the environment succeeded after this one began.
      const newer = f.deployments.find(
        (d) =>
          d.environment === environment &&
          d.sha !== f.revision &&
          d.status === 'success' &&
          (current ? d.id > current.id : false),
      );
      if (current && newer) {
        const stillRunning = !FINISHED.has(current.status);
        out.deployments.push({
          environment,
          ref: env.ref,
          action: stillRunning ? 'update' : 'none',
          status: 'canceled',
          ...(stillRunning ? { id: current.id } : {}),
          why: `superseded by ${newer.sha.slice(0, 8)} (#${newer.id})`,
        });
        continue;
      }
      const previous = mrs.map((m) => m.section[environment]).find((s) => s && s.sha === f.revision);
      let target = want;
      if (!o) {
        // a timeout check: only a revision not yet finished, past its time
        const due = landedAt ? Date.parse(landedAt) + env.timeoutMs : null;
        const finished = current && FINISHED.has(current.status);
        if (!finished && due !== null && Date.parse(f.now) >= due)
          target = { status: 'failed', reason: 'timeout' };
        else target = null;
        if (!finished && due !== null && Date.parse(f.now) < due) {
          const iso = new Date(due).toISOString();
          if (!out.recheckAt || iso < out.recheckAt) out.recheckAt = iso;
        }
      }
      // An older report than the one the state was written from: the state stands.
      const stale = o && previous && Date.parse(o.at) < Date.parse(previous.at);
      if (!target || stale) {
        out.deployments.push({
          environment,
          ref: env.ref,
          action: 'none',
          status:
            current && !FINISHED.has(current.status)
              ? 'running'
              : ((current?.status as DeployStatus) ?? 'running'),
          why: stale ? `an older report (${o.at}) than the state's (${previous.at})` : 'nothing to report',
        });
        if (current)
          results.push({
            environment,
            status: toStatus(current.status),
            ...(previous && previous.status === toStatus(current.status) ? { text: previous.text } : {}),
          });
        continue;
      }
      const from = current?.status;
      let action: DeploymentAction['action'];
      let why: string;
      if (!current) [action, why] = ['create', `first report of ${f.revision.slice(0, 8)} here`];
      else if (from === target.status) [action, why] = ['none', `already ${from}`];
      else if (target.status === 'running') [action, why] = ['none', `${from} does not go back to running`];
      else [action, why] = ['update', `${from} → ${target.status}`];
      out.deployments.push({
        environment,
        ref: env.ref,
        action,
        status: target.status,
        ...(action === 'update' ? { id: current!.id } : {}),
        why,
      });
      const result = action === 'none' && current ? toStatus(current.status) : target.status;
      if (result === 'running' && landedAt) {
        const iso = new Date(Date.parse(landedAt) + env.timeoutMs).toISOString();
        if (!out.recheckAt || iso < out.recheckAt) out.recheckAt = iso;
      }
      // A sync under way: the Deployment and the commit status say so; the section (whose
      // state, read only for outcomes, is not among the facts) waits for the outcome.
      // Nothing an outcome wrote is moved on by it: a running report never takes a
      // deployment back, and a report after it with an older `at` than the outcome's is
      // still stale against the outcome's state.
      if (result === 'running' || !writesSection(o)) {
        results.push({
          environment,
          status: result,
          ...(previous?.status === result ? { text: previous.text } : {}),
        });
        continue;
      }
      // The section says what the deployment now is. A report that changes nothing keeps the
      // words (and the time they show) but moves the state's time on, so that a yet older
      // report cannot override it.
      const unchanged = previous && previous.status === result;
      const reason = unchanged ? previous.reason : result === target.status ? target.reason : undefined;
      // "after merge": the newest merge the revision deploys here (older ones it carries too
      // were merged before it)
      const mergedAt =
        mrs
          .map((m) => m.mergedAt)
          .filter((t): t is string => !!t)
          .sort()
          .at(-1) ?? landedAt;
      const stateAt = unchanged && Date.parse(previous.at) > Date.parse(at) ? previous.at : at;
      const since = unchanged ? (previous.since ?? previous.at) : at;
      const state: SectionState = {
        sha: f.revision,
        status: result,
        at: stateAt,
        ...(since !== stateAt ? { since } : {}),
        ...(reason ? { reason } : {}),
        text: unchanged ? previous.text : lineFor(result, reason, env, at, o?.message ?? '', mergedAt),
      };
      results.push({ environment, status: result, text: state.text });
      for (const mr of mrs) {
        const s = sections.get(mr.iid) ?? { mr, state: { ...mr.section } };
        s.state[environment] = state;
        sections.set(mr.iid, s);
      }
      // on_degraded: rollback, once: when this report moves the deployment to failed (a
      // repeated report, or one after a person closed the rollback MR, rolls back nothing),
      // and never a rollback of a rollback (an outage that degrades every tag would walk the
      // environment back through its history): that failure is a person's to judge.
      const newest = [...mrs]
        .filter((m) => m.records?.[app])
        .sort((a, b) => (a.mergedAt ?? '').localeCompare(b.mergedAt ?? ''))
        .at(-1);
      const failedRollback = newest?.records?.[app]?.rollback ? newest : undefined;
      const rollsBack =
        result === 'failed' &&
        !!reason &&
        env.onDegraded === 'rollback' &&
        mrs.length > 0 &&
        action !== 'none';
      // Once per revision and environment: the comment's marker says so, and apply counts
      // and logs it only when its own write moved the deployment to failed.
      if (result === 'failed' && reason)
        out.alerts.push({
          environment,
          reason,
          iids: mrs.map((m) => m.iid),
          marker: `<!-- gitops-bot:deploy-alert ${environment} ${f.revision} -->`,
          body: [
            `🚨 **Deployment of ${code8(f.revision)} to ${env.name} failed**: ${state.text}`,
            '',
            `GitLab environment \`${environment}\`; agent application \`${f.agentApp}\`.`,
            ...(rollsBack && failedRollback
              ? [
                  '',
                  `on_degraded: rollback: not rolled back again: !${failedRollback.iid} is itself a rollback. What to deploy now is a person's call (\`gitops-bot rollback --to TAG\`).`,
                ]
              : []),
          ].join('\n'),
        });
      if (rollsBack && !failedRollback) {
        const message = o?.message.replace(/\s+/g, ' ').trim() ?? '';
        out.rollbacks.push({
          environment: env.name,
          app,
          reason:
            reason === 'timeout'
              ? `no Healthy within ${duration(env.timeoutMs)}`
              : statusWords('failed', state.text),
          ...(message && reason !== 'timeout' ? { agentMessage: message } : {}),
          ...(newest ? { failed: newest.records![app] } : {}),
          iids: mrs.map((m) => m.iid),
        });
      }
      if (result === 'success')
        for (const mr of mrs)
          for (const ref of mr.appMergeRequests)
            out.appNotes.push({
              ref,
              marker: `<!-- gitops-bot:deployed ${env.name} ${f.project}!${mr.iid} -->`,
              body: `Deployed to ${env.name} at ${hhmm(state.since ?? at)} (${opsName}!${mr.iid})`,
            });
    }
  }

  for (const { mr, state } of sections.values()) {
    const before = JSON.stringify(mr.section);
    if (JSON.stringify(state) !== before)
      out.sections.push({ iid: mr.iid, section: renderSection(state, f.project) });
  }
  out.appNotes = dedupe(out.appNotes, (n) => `${n.ref} ${n.marker}`);

  if (results.length) {
    const state: DeployStatus = results.some((r) => r.status === 'failed')
      ? 'failed'
      : results.every((r) => r.status === 'success')
        ? 'success'
        : 'running';
    const description = results
      .map((r) => `${r.environment}: ${statusWords(r.status, r.text)}`)
      .join(', ')
      .slice(0, 255);
    // a twin canceled changes nothing the status describes (and a running report, which
    // does not read the section, would not know the failure's words to write again)
    const changed =
      out.deployments.some((d) => d.action !== 'none' && d.status !== 'canceled') || out.sections.length > 0;
    const same = !!f.status && f.status.state === state && f.status.description === description;
    if (f.status === undefined ? changed : !same) out.status = { sha: f.revision, state, description };
  }
  return out;
}

/**
 * The commit status's words for one environment: `Healthy`, `running`, or the failure as
 * the section says it without its icon (`Degraded: <message>`, `Sync failed: <message>`,
 * `not live after 10 min`), which `gitops-bot status` shows.
 */
function statusWords(status: DeployStatus, text: string | undefined): string {
  if (status === 'success') return 'Healthy';
  if (status === 'running' || !text) return status;
  return text.replace(/^\S+\s+/, '');
}

const code8 = (sha: string) => `\`${sha.slice(0, 8)}\``;

function toStatus(s: DeploymentInfo['status']): DeployStatus {
  return s === 'success'
    ? 'success'
    : s === 'failed' || s === 'canceled' || s === 'skipped'
      ? 'failed'
      : 'running';
}

function dedupe<T>(list: T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  return list.filter((x) => {
    const k = key(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
