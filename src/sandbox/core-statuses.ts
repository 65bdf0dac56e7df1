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

/** POST /projects/:id/statuses/:sha: a new status, or the same-named one moved on. */
export async function setCommitStatus(
  core: SandboxCore,
  user: User,
  p: Project,
  rawSha: string,
  input: StatusInput,
): Promise<CommitStatus> {
  const store = core.store;
  const { state, name, ref } = input;
  const sha = await core.repo(p).resolve(rawSha);
  if (!sha || sha !== rawSha) throw notFound('Commit');
  if (input.targetUrl && input.targetUrl.length > LIMIT)
    throw badRequest({ target_url: [`is too long (maximum is ${LIMIT} characters)`] });
  if (input.description && input.description.length > LIMIT)
    throw badRequest({ description: [`is too long (maximum is ${LIMIT} characters)`] });
  let status = store.data.statuses.find(
    (s) => s.projectId === p.id && s.sha === sha && s.name === name && s.ref === ref,
  );
  // GitLab finds a pending or running status of the same name and moves it through its
  // state machine; the same state again is an invalid transition (400).
  if (status && status.state === state && (state === 'pending' || state === 'running')) {
    const event = state === 'pending' ? 'enqueue' : 'run';
    throw new ApiError(400, { message: `Cannot transition status via :${event} from :${state}` });
  }
  const now = new Date().toISOString();
  const finishedAt = FINISHED.includes(state) ? now : null;
  const { targetUrl, description } = input;
  if (status) {
    Object.assign(status, { state, targetUrl, description, authorId: user.id, finishedAt });
  } else {
    const samePipeline = store.data.statuses.find((s) => s.projectId === p.id && s.sha === sha);
    status = {
      id: store.nextId('status'),
      projectId: p.id,
      sha,
      ref,
      name,
      state,
      targetUrl,
      description,
      pipelineId: input.pipelineId ?? samePipeline?.pipelineId ?? store.nextId('pipeline'),
      authorId: user.id,
      createdAt: now,
      finishedAt,
    };
    store.data.statuses.push(status);
  }
  store.changed();
  return status;
}

/** The statuses of one SHA, filtered; without `all` only the latest of each name. */
export function statusesOf(
  core: SandboxCore,
  p: Project,
  sha: string,
  filter: { ref?: string; name?: string; all: boolean },
): CommitStatus[] {
  const list = core.store.data.statuses.filter(
    (s) =>
      s.projectId === p.id &&
      s.sha === sha &&
      (!filter.ref || s.ref === filter.ref) &&
      (!filter.name || s.name === filter.name),
  );
  if (filter.all) return list;
  const latest = new Map<string, CommitStatus>();
  for (const s of list) latest.set(s.name, s);
  return [...latest.values()];
}
