// Flux's word about one Kustomization (notification-controller's generic webhook event,
// AGENTS.md 3.4), read into an AgentObservation. Pure: the table test is
// test/feedback/parsers.test.ts.
import type { AgentObservation } from '../model/agent.js';
import { FeedbackInputError } from '../model/agent.js';
import { clip } from './argocd.js';

// biome-ignore lint/suspicious/noExplicitAny: agent JSON, read field by field
type Json = Record<string, any>;

const isObject = (v: unknown): v is Json => !!v && typeof v === 'object' && !Array.isArray(v);

/** `main@sha1:<hex>`, `sha1:<hex>`, the old `main/<hex>`, or a bare hex: the commit, else null. */
export function fluxRevision(text: string): string | null {
  const m = /(?:^|@|:|\/)([0-9a-f]{40})$/i.exec(text.trim());
  return m ? m[1].toLowerCase() : null;
}

/** Reads one Flux event (JSON as notification-controller posts it). */
export function observeFluxEvent(event: unknown): AgentObservation {
  if (!isObject(event)) throw new FeedbackInputError('Flux event: expected an object');
  const obj = event.involvedObject;
  if (!isObject(obj)) throw new FeedbackInputError('Flux event: involvedObject: missing');
  if (obj.kind !== 'Kustomization')
    throw new FeedbackInputError(
      `Flux event: involvedObject.kind: expected Kustomization, got ${String(obj.kind).slice(0, 40)}`,
    );
  for (const f of ['name', 'namespace'] as const)
    if (typeof obj[f] !== 'string' || !obj[f])
      throw new FeedbackInputError(`Flux event: involvedObject.${f}: missing`);
  if (typeof event.timestamp !== 'string' || Number.isNaN(Date.parse(event.timestamp)))
    throw new FeedbackInputError('Flux event: timestamp: missing or not a time');
  const severity = event.severity;
  if (severity !== 'info' && severity !== 'error')
    throw new FeedbackInputError('Flux event: severity: expected info or error');
  const meta = isObject(event.metadata) ? event.metadata : {};
  // notification-controller ≥ 1.5 strips the `kustomize.toolkit.fluxcd.io/` prefix; older
  // ones send it.
  const rawRevision = meta.revision ?? meta['kustomize.toolkit.fluxcd.io/revision'];
  if (rawRevision !== undefined && typeof rawRevision !== 'string')
    throw new FeedbackInputError('Flux event: metadata.revision: expected a string');
  const reason = typeof event.reason === 'string' ? event.reason : '';
  let phase: AgentObservation['phase'];
  let health: AgentObservation['health'];
  if (severity === 'error') {
    if (reason === 'HealthCheckFailed') [phase, health] = ['succeeded', 'Degraded'];
    else if (reason === 'DependencyNotReady') [phase, health] = ['running', 'Progressing'];
    // ArtifactFailed, BuildFailed, ReconciliationFailed, PruneFailed: the apply itself failed
    else [phase, health] = ['failed', 'Degraded'];
  } else if (reason === 'ReconciliationSucceeded') [phase, health] = ['succeeded', 'Healthy'];
  else [phase, health] = ['running', 'Progressing'];
  return {
    agent: 'flux',
    app: `${obj.namespace}/${obj.name}`,
    revision: rawRevision ? fluxRevision(rawRevision) : null,
    phase,
    health,
    message: clip(typeof event.message === 'string' ? event.message : ''),
    at: new Date(Date.parse(event.timestamp)).toISOString(),
  };
}
