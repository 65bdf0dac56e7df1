// Commit statuses: GitLab's external pipeline per SHA, each named status a small state
// machine (pending → running → success / failed / canceled / skipped).
import type { SandboxCore } from './core.js';
import { ApiError, badRequest, notFound } from './http.js';
import type { CommitStatus, Project, User } from './state.js';

export const STATUS_STATES = ['pending', 'running', 'success', 'failed', 'canceled', 'skipped'];
const FINISHED = ['success', 'failed', 'canceled', 'skipped'];
const LIMIT = 255;

export interface StatusInput {
  state: string;
  name: string;
  ref: string | null;
  targetUrl: string | null;
  description: string | null;
  pipelineId?: number;
}

/**
 * POST /projects/:id/statuses/:sha, as Ci::CreateCommitStatusService does it: the pipeline
 * is the one `pipeline_id` names, else the commit's newest one (of `ref`, when given), else a
 * new one. In it, the caller's own pending or running status of that name and ref moves
 * through the state machine; anyone else's, or a finished one, is never touched: a new
 * status is made. Whichever status was written is then the latest of its name in that
 * pipeline, the older ones marked retried (`update_older_statuses_retried!`), even if they
 * are still pending.
 */
export async function setCommitStatus(
  core: SandboxCore,
  user: User,
  p: Project,
  rawSha: string,
  input: StatusInput,
): Promise<CommitStatus> {
  const store = core.store;
  const { state, name } = input;
  const sha = await core.repo(p).resolve(rawSha);
  if (!sha || sha !== rawSha) throw notFound('Commit');
  if (input.targetUrl && input.targetUrl.length > LIMIT)
    throw badRequest({ target_url: [`is too long (maximum is ${LIMIT} characters)`] });
  if (input.description && input.description.length > LIMIT)
    throw badRequest({ description: [`is too long (maximum is ${LIMIT} characters)`] });
  const ofSha = store.data.statuses.filter((s) => s.projectId === p.id && s.sha === sha);
  // newest pipeline first: pipeline ids only grow
  const matching = ofSha
    .filter(
      (s) =>
        (input.ref === null || s.ref === input.ref) &&
        (input.pipelineId === undefined || s.pipelineId === input.pipelineId),
    )
    .sort((a, b) => b.pipelineId - a.pipelineId)[0];
  if (input.pipelineId !== undefined && !matching) throw notFound('Pipeline for pipeline_id, sha and ref');
  const pipelineId = matching?.pipelineId ?? store.nextId('pipeline');
  const ref = input.ref ?? matching?.ref ?? null;
  let status = ofSha.find(
    (s) =>
      s.pipelineId === pipelineId &&
      s.name === name &&
      s.ref === ref &&
      s.authorId === user.id &&
      (s.state === 'pending' || s.state === 'running'),
  );
  // the same state again is no transition of GitLab's state machine (enqueue from pending,
  // run from running): 400, and nothing changes
  if (status && status.state === state && (state === 'pending' || state === 'running')) {
    const event = state === 'pending' ? 'enqueue' : 'run';
    throw new ApiError(400, { message: `Cannot transition status via :${event} from :${state}` });
  }
  const now = new Date().toISOString();
  const finishedAt = FINISHED.includes(state) ? now : null;
  const { targetUrl, description } = input;
  if (status) {
    Object.assign(status, { state, targetUrl, description, finishedAt });
  } else {
    status = {
      id: store.nextId('status'),
      projectId: p.id,
      sha,
      ref,
      name,
      state,
      targetUrl,
      description,
      pipelineId,
      authorId: user.id,
      createdAt: now,
      finishedAt,
    };
    store.data.statuses.push(status);
  }
  // the written status keeps its own `retried` mark: GitLab only marks the others
  for (const s of ofSha) if (s !== status && s.pipelineId === pipelineId && s.name === name) s.retried = true;
  store.changed();
  return status;
}

/**
 * The statuses of one SHA, filtered, ascending by id; without `all` only the latest ones
 * (not retried): one per name in each pipeline, so a commit with several pipelines lists a
 * name several times.
 */
export function statusesOf(
  core: SandboxCore,
  p: Project,
  sha: string,
  filter: { ref?: string; name?: string; all: boolean },
): CommitStatus[] {
  return core.store.data.statuses
    .filter(
      (s) =>
        s.projectId === p.id &&
        s.sha === sha &&
        (!filter.ref || s.ref === filter.ref) &&
        (!filter.name || s.name === filter.name) &&
        (filter.all || !s.retried),
    )
    .sort((a, b) => a.id - b.id);
}
