// Argo CD's word about one Application, read into an AgentObservation. The same field
// paths serve the REST answer (GET /api/v1/applications/{name}, the polling fallback) and
// the partial Application our notification template sends (README "Deployment feedback"),
// so both ways in take one parser. Pure: the table test is test/feedback/parsers.test.ts.
import {
  AGENT_HEALTHS,
  AGENT_MESSAGE_MAX,
  type AgentHealth,
  type AgentObservation,
  FeedbackInputError,
} from '../model/agent.js';

// biome-ignore lint/suspicious/noExplicitAny: agent JSON, read field by field
type Json = Record<string, any>;

const SHA = /^[0-9a-f]{40}$/;

const isObject = (v: unknown): v is Json => !!v && typeof v === 'object' && !Array.isArray(v);

/** `field` must be an object when present; absent reads as {}. */
function objectAt(v: unknown, field: string): Json {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new FeedbackInputError(`Argo CD application: ${field}: expected an object`);
  return v;
}

function stringAt(v: unknown, field: string): string | null {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') throw new FeedbackInputError(`Argo CD application: ${field}: expected a string`);
  return v;
}

function timeAt(v: unknown, field: string): number | null {
  const s = stringAt(v, field);
  if (s === null) return null;
  const t = Date.parse(s);
  if (Number.isNaN(t))
    throw new FeedbackInputError(`Argo CD application: ${field}: not a time: ${s.slice(0, 40)}`);
  return t;
}

/** A 40-hex revision, else null (Argo CD may report a tag or a Helm chart version). */
function revisionOf(v: unknown): string | null {
  return typeof v === 'string' && SHA.test(v.toLowerCase()) ? v.toLowerCase() : null;
}

export function clip(message: string): string {
  const one = message.trim();
  return one.length > AGENT_MESSAGE_MAX ? `${one.slice(0, AGENT_MESSAGE_MAX - 1)}…` : one;
}

const PHASES: Record<string, AgentObservation['phase']> = {
  Running: 'running',
  Terminating: 'running',
  Succeeded: 'succeeded',
  Failed: 'failed',
  Error: 'failed',
};

/** Reads an Argo CD `Application` (REST answer or our notification's partial one). */
export function observeArgoApplication(app: unknown): AgentObservation {
  if (!isObject(app)) throw new FeedbackInputError('Argo CD application: expected an object');
  const name = stringAt(objectAt(app.metadata, 'metadata').name, 'metadata.name');
  if (!name) throw new FeedbackInputError('Argo CD application: metadata.name: missing');
  if (!isObject(app.status)) throw new FeedbackInputError('Argo CD application: status: missing');
  const status = app.status;
  const sync = objectAt(status.sync, 'status.sync');
  const health = objectAt(status.health, 'status.health');
  const op = objectAt(status.operationState, 'status.operationState');
  const phaseText = stringAt(op.phase, 'status.operationState.phase');
  const phase = phaseText === null ? null : (PHASES[phaseText] ?? null);
  if (phaseText !== null && !(phaseText in PHASES))
    throw new FeedbackInputError(
      `Argo CD application: status.operationState.phase: unknown phase ${phaseText.slice(0, 40)}`,
    );
  const healthText = stringAt(health.status, 'status.health.status');
  const code: AgentHealth = AGENT_HEALTHS.includes(healthText as AgentHealth)
    ? (healthText as AgentHealth)
    : 'Unknown';
  // The operation's revision is what was (or is being) applied; sync.revision is what the
  // last comparison saw, the best there is when no operation is known.
  const opSync = objectAt(
    objectAt(op.operation, 'status.operationState.operation').sync,
    'status.operationState.operation.sync',
  );
  const result = objectAt(op.syncResult, 'status.operationState.syncResult');
  const revision = revisionOf(result.revision) ?? revisionOf(opSync.revision) ?? revisionOf(sync.revision);
  const times = [
    timeAt(op.startedAt, 'status.operationState.startedAt'),
    timeAt(op.finishedAt, 'status.operationState.finishedAt'),
    timeAt(health.lastTransitionTime, 'status.health.lastTransitionTime'),
  ].filter((t): t is number => t !== null);
  // reconciledAt moves on every reconciliation: only when nothing else tells the time
  const reconciled = timeAt(status.reconciledAt, 'status.reconciledAt');
  if (!times.length && reconciled !== null) times.push(reconciled);
  if (!times.length)
    throw new FeedbackInputError(
      'Argo CD application: status.operationState.finishedAt, status.health.lastTransitionTime: no time given',
    );
  const resources: Json[] = Array.isArray(status.resources) ? status.resources.filter(isObject) : [];
  const resourceMessage = resources
    .map((r) => objectAt(r.health, 'status.resources[].health'))
    .find((h) => h.status === 'Degraded' && typeof h.message === 'string')?.message as string | undefined;
  const opMessage = stringAt(op.message, 'status.operationState.message') ?? '';
  const healthMessage = stringAt(health.message, 'status.health.message') ?? resourceMessage ?? '';
  const message =
    phase === 'failed'
      ? opMessage || healthMessage
      : code === 'Healthy'
        ? opMessage
        : healthMessage || opMessage;
  const summary = objectAt(status.summary, 'status.summary');
  const images = Array.isArray(summary.images)
    ? summary.images.filter((i: unknown) => typeof i === 'string')
    : undefined;
  return {
    agent: 'argocd',
    app: name,
    revision,
    phase,
    health: code,
    message: clip(message),
    at: new Date(Math.max(...times)).toISOString(),
    ...(images ? { images } : {}),
  };
}
