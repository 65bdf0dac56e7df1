// What an in-cluster agent (Argo CD, Flux) said about one of its applications, in one
// shape for both. The agent's word is a claim: it is authenticated by the shared webhook
// secret, and which merge requests and apps a revision deploys is always re-derived from
// GitLab (the ops project's history and the bot's promotion records), never from it.

export type AgentKind = 'argocd' | 'flux';

/** Argo CD's health codes, best to worst; Flux's conditions map onto them. */
export type AgentHealth = 'Healthy' | 'Suspended' | 'Progressing' | 'Missing' | 'Degraded' | 'Unknown';

export const AGENT_HEALTHS: readonly AgentHealth[] = [
  'Healthy',
  'Suspended',
  'Progressing',
  'Missing',
  'Degraded',
  'Unknown',
];

/** One thing the in-cluster agent said about one of its applications (plain data). */
export interface AgentObservation {
  agent: AgentKind;
  /** Argo CD application name, or Flux `<namespace>/<name>` of the Kustomization */
  app: string;
  /** the ops-repo commit (40 hex) the report is about; null when the agent did not say */
  revision: string | null;
  /** the sync/apply operation: running, succeeded, failed; null when none is known */
  phase: 'running' | 'succeeded' | 'failed' | null;
  health: AgentHealth;
  /** the agent's own words (operationState.message, health.message, Flux message), ≤ 1,000 chars */
  message: string;
  /** when the agent observed it (ISO 8601): finishedAt / lastTransitionTime / event timestamp */
  at: string;
  /** images the agent reports running (Argo CD status.summary.images), when known */
  images?: string[];
}

/** The most of the agent's message that is kept (comments and logs quote it). */
export const AGENT_MESSAGE_MAX = 1000;

/** An agent's report that cannot be read: one line naming the field. */
export class FeedbackInputError extends Error {}
