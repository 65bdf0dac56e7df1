// Writes a FeedbackDecision to GitLab: the Deployments, the commit status gitops-bot/deploy,
// the Deployment section of each ops MR's sticky comment, the notes on app MRs and the
// alerts. Every write is idempotent (sticky comments by marker, statuses and deployments
// only when they differ), so a run repeated after a crash or by another replica converges.
import { log } from '../base/log.js';
import type { GateContext } from '../gate/facts.js';
import { gate } from '../gate/gate.js';
import { alertOnce } from '../gate/notify.js';
import { GitLabError, type Note } from '../gitlab/client.js';
import { ensureSticky, stickyNotes } from '../gitlab/sticky.js';
import { DIFF_MARKER } from '../model/markers.js';
import { rollback } from '../rollback/rollback.js';
import {
  DEPLOY_STATUS_NAME,
  DEPLOYMENT_SECTION,
  type FeedbackDecision,
  type FeedbackFacts,
  type RollbackAction,
} from './decide.js';

export interface ApplyHooks {
  /** this run moved a deployment to failed (once per revision and environment): the metric counts it */
  onDeployFailure?(environment: string, reason: string): void;
}

export interface Applied {
  deployments: number;
  status: boolean;
  sections: number;
  appNotes: number;
  alerts: number;
  /** on_degraded: rollback: what each rollback asked for did ('created', 'noop', 'merged', 'alert', 'skipped') */
  rollbacks: Array<{ environment: string; app: string; outcome: string; iid?: number }>;
}

/** The sticky comment's text with `section` in place of the Deployment section it had. */
export function withSection(body: string | undefined, section: string): string {
  const text = body ?? DIFF_MARKER;
  const at = text.indexOf(DEPLOYMENT_SECTION);
  const kept = (at < 0 ? text : text.slice(0, at)).replace(/\s+$/, '');
  return `${kept}\n\n${section}`;
}

/** `group/app!12` → project and iid. */
function parseRef(ref: string): { project: string; iid: number } | null {
  const m = /^(\S+)!(\d+)$/.exec(ref);
  return m ? { project: m[1], iid: Number(m[2]) } : null;
}

export async function applyFeedback(
  ctx: GateContext,
  facts: FeedbackFacts,
  d: FeedbackDecision,
  notes: Map<number, Note[]>,
  hooks: ApplyHooks = {},
): Promise<Applied> {
  const gl = ctx.gitlab;
  const project = facts.project;
  const out: Applied = { deployments: 0, status: false, sections: 0, appNotes: 0, alerts: 0, rollbacks: [] };
  // The environments this run moved to failed itself: only those count an alert, so that
  // replicas racing over one report (or one timeout) count it once between them.
  const failedHere = new Set<string>();
  for (const a of d.deployments) {
    if (a.action === 'none') continue;
    if (a.action === 'update') {
      try {
        await gl.updateDeployment(project, a.id!, a.status);
      } catch (e) {
        // another run (a replica, a repeated report) made this transition first
        if (e instanceof GitLabError && e.status === 400) {
          log.info({ project, id: a.id, status: a.status }, `deployment ${a.id} was moved already`);
          continue;
        }
        throw e;
      }
      out.deployments++;
      if (a.status === 'failed') failedHere.add(a.environment);
      continue;
    }
    if (a.status === 'canceled') continue;
    const made = await gl.createDeployment(project, {
      environment: a.environment,
      sha: facts.revision,
      ref: a.ref,
      status: a.status,
    });
    out.deployments++;
    // A replica racing this one may have created one too: the oldest stays (decide's rule).
    // A running twin is left to the next report, which every replica decides alike (cancel
    // the younger, move the oldest on): one GitLab read saved on every first report. A
    // finished one is settled now, so that only the surviving replica alerts and counts.
    if (a.status === 'running') continue;
    const twins = (
      await gl.listDeployments(project, { environment: a.environment, orderBy: 'id', sort: 'asc' })
    )
      .filter((x) => x.sha === facts.revision && x.status !== 'canceled')
      .sort((x, y) => x.id - y.id);
    const lost = twins.length > 1 && twins[0].id !== made.id && twins.some((t) => t.id === made.id);
    if (!lost && a.status === 'failed') failedHere.add(a.environment);
    if (lost) {
      await gl.updateDeployment(project, made.id, 'canceled');
      // ours lost; the survivor takes the state ours had
      if (twins[0].status !== a.status)
        await gl.updateDeployment(project, twins[0].id, a.status).catch((e: Error) => {
          if (!(e instanceof GitLabError && e.status === 400)) throw e;
        });
    }
  }
  if (d.status) {
    await gl.setStatus(project, d.status.sha, d.status.state, {
      name: DEPLOY_STATUS_NAME,
      description: d.status.description,
    });
    out.status = true;
  }
  for (const s of d.sections) {
    const known = notes.get(s.iid);
    const [sticky] = known ? stickyNotes(known, DIFF_MARKER, ctx.botUserId) : [];
    const r = await ensureSticky(
      gl,
      { project, iid: s.iid, by: ctx.botUserId },
      DIFF_MARKER,
      withSection(sticky?.body, s.section),
      {
        ...(known ? { known } : {}),
      },
    );
    if (r !== 'unchanged') out.sections++;
  }
  for (const n of d.appNotes) {
    const target = parseRef(n.ref);
    if (!target) continue;
    try {
      const r = await ensureSticky(gl, { ...target, by: ctx.botUserId }, n.marker, `${n.marker}\n${n.body}`);
      if (r === 'created') out.appNotes++;
    } catch (e) {
      // the app project may be one the bot cannot comment on: the deployment stands
      log.warn({ ref: n.ref, error: (e as Error).message }, `cannot note the deployment on ${n.ref}`);
    }
  }
  for (const a of d.alerts) {
    for (const iid of a.iids)
      await ensureSticky(gl, { project, iid, by: ctx.botUserId }, a.marker, `${a.marker}\n${a.body}`);
    if (failedHere.has(a.environment)) {
      out.alerts++;
      hooks.onDeployFailure?.(a.environment, a.reason);
      log.error(
        {
          project,
          environment: a.environment,
          reason: a.reason,
          revision: facts.revision,
          agentApp: facts.agentApp,
        },
        `deployment of ${facts.revision.slice(0, 8)} to ${a.environment} failed (${a.reason})`,
      );
    }
  }
  for (const r of d.rollbacks) out.rollbacks.push(await rollBack(ctx, project, r));
  return out;
}

/**
 * on_degraded: rollback for one app: the rollback MR (rollback() to the last tag that ran
 * healthy before), then the gate, which merges it when the rollback rules pass without
 * people. Idempotent: a repeated report finds the same MR (rollback is a noop), and once the
 * target branch no longer holds the failed tag (the rollback merged, or a newer tag) nothing
 * is rolled back again. When no rollback is possible the failed MR gets an alert instead;
 * nothing here fails the feedback run.
 */
async function rollBack(
  ctx: GateContext,
  project: string,
  r: RollbackAction,
): Promise<Applied['rollbacks'][number]> {
  const at = { environment: r.environment, app: r.app };
  const where = `${r.app} in ${r.environment}`;
  try {
    const made = await rollback(
      {
        project,
        env: r.environment,
        app: r.app,
        toPrevious: true,
        by: 'on_degraded',
        reason: r.reason,
        ...(r.agentMessage ? { agentMessage: r.agentMessage } : {}),
        ...(r.failed ? { image: r.failed.image, files: r.failed.files, targetBranch: r.failed.target } : {}),
        // once the branch no longer holds the failed tag (the rollback merged, a newer tag
        // came), nothing is rolled back again
        ...(r.failed?.tag ? { onlyFrom: r.failed.tag } : {}),
      },
      { gitlab: ctx.gitlab },
    );
    if (!made.mr) {
      log.info({ project, ...at, failed: r.failed?.tag }, `${where}: ${made.reason}`);
      return { ...at, outcome: made.action === 'noop' ? 'skipped' : made.action };
    }
    log.warn(
      { project, ...at, iid: made.mr.iid, action: made.action, from: made.fromTag, to: made.tag },
      `${where}: rollback to ${made.tag} (!${made.mr.iid}, ${made.action}): ${r.reason}`,
    );
    const g = await gate(ctx, project, made.mr.iid, { merge: true });
    return { ...at, outcome: g.merged ? 'merged' : made.action, iid: made.mr.iid };
  } catch (e) {
    const message = (e as Error).message;
    log.error({ project, ...at, error: message }, `${where}: cannot roll back: ${message}`);
    const text = [
      `🚨 **gitops-bot could not roll back ${r.app} in ${r.environment}** (on_degraded: rollback): ${message}`,
      '',
      `The failure: ${r.reason}`,
    ].join('\n');
    for (const iid of r.iids)
      await alertOnce(
        ctx,
        project,
        { iid },
        `rollback ${r.environment} ${r.app} ${r.failed?.tag ?? ''}`.trim(),
        text,
      ).catch((err: Error) =>
        log.warn({ project, iid, error: err.message }, 'cannot post the rollback alert'),
      );
    return { ...at, outcome: 'alert' };
  }
}
