// Which work a webhook delivery asks for: a pure function of the event and its payload.
// The project is taken by numeric id only; a payload's path is the sender's word, never
// acted on (the managed projects' paths were resolved through the API at startup).
import { observeArgoApplication } from '../feedback/argocd.js';
import { observeFluxEvent } from '../feedback/flux.js';
import type { AgentKind, AgentObservation } from '../model/agent.js';
import type { JobSpec } from './jobs.js';
import type { ManagedProject } from './projects.js';

export type Routed = { result: 'queued'; job: JobSpec } | { result: 'ignored' | 'invalid' | 'unmanaged' };

const NOTE_ACCEPT = /^\/gitops-bot accept ([0-9a-f]{7,40})$/i;
type Work = JobSpec extends infer J ? (J extends JobSpec ? Omit<J, 'project'> : never) : never;
type GitLabWork = Exclude<Work, { type: 'agent' | 'deploy-check' | 'deploy-resume' | 'chain' }>;

// biome-ignore lint/suspicious/noExplicitAny: webhook JSON, read field by field
type Payload = Record<string, any>;

function work(event: string, body: Payload): GitLabWork | 'ignored' | 'invalid' {
  const kind = body.object_kind;
  if (event === 'Merge Request Hook' && kind === 'merge_request') {
    const a = body.object_attributes ?? {};
    const iid = Number(a.iid);
    if (!Number.isInteger(iid)) return 'invalid';
    if (a.action === 'close') return 'ignored';
    return a.action === 'merge' ? { type: 'merged', iid } : { type: 'gate', iid };
  }
  if (event === 'Note Hook' && kind === 'note') {
    const a = body.object_attributes ?? {};
    const note = String(a.note ?? '').trim();
    const iid = Number(body.merge_request?.iid);
    const accept = NOTE_ACCEPT.exec(note);
    if (note === '/gitops-bot recheck' && Number.isInteger(iid)) return { type: 'gate', iid };
    if (accept && (Number.isInteger(iid) || a.noteable_type === 'Commit'))
      return { type: 'accept', sha: accept[1].toLowerCase() };
    return 'ignored';
  }
  if (event === 'Push Hook' && kind === 'push') {
    const ref = String(body.ref ?? '');
    if (!ref.startsWith('refs/heads/')) return 'ignored';
    return {
      type: 'push',
      branch: ref.slice('refs/heads/'.length),
      ...(body.before === undefined ? {} : { before: String(body.before) }),
      after: String(body.after ?? ''),
    };
  }
  return 'ignored';
}

/**
 * The work a delivery asks for. `managed`: the managed projects by id (null: every project
 * is served, named by its id, and the runner asks GitLab for its path).
 */
export function route(event: string, body: Payload, managed: Map<number, ManagedProject> | null): Routed {
  const w = work(event, body);
  if (w === 'ignored' || w === 'invalid') return { result: w };
  const raw = body.project?.id ?? body.project_id;
  const id =
    typeof raw === 'number' || (typeof raw === 'string' && /^\d+$/.test(raw)) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(id) || id <= 0) return { result: managed ? 'unmanaged' : 'ignored' };
  if (!managed) return { result: 'queued', job: { ...w, project: String(id) } as JobSpec };
  const m = managed.get(id);
  return m ? { result: 'queued', job: { ...w, project: m.path } as JobSpec } : { result: 'unmanaged' };
}

/**
 * The work an agent's report asks for: one job per ops project it may be about. The report
 * never says which project: with managed projects, each one's policy decides whether it
 * names the application (a project whose policy does not ignores the job); without, an
 * Argo CD application's `spec.source.repoURL` names the project on this GitLab (`gitlab`:
 * its base URL), and its policy decides likewise.
 */
export function routeAgent(
  kind: AgentKind,
  body: Payload,
  managed: Map<number, ManagedProject> | null,
  gitlab: string,
): { result: 'queued'; jobs: JobSpec[]; observation: AgentObservation } | { result: 'unmanaged' } {
  const observation =
    kind === 'argocd' ? observeArgoApplication(body.application ?? body) : observeFluxEvent(body);
  if (managed) {
    const jobs = [...managed.values()].map((m) => ({ type: 'agent' as const, project: m.path, observation }));
    return jobs.length ? { result: 'queued', jobs, observation } : { result: 'unmanaged' };
  }
  const repo = kind === 'argocd' ? projectOfRepo(body.application ?? body, gitlab) : null;
  return repo
    ? { result: 'queued', jobs: [{ type: 'agent', project: repo, observation }], observation }
    : { result: 'unmanaged' };
}

/** `group/project` of an Argo CD source on this GitLab, or null (another host, no source). */
function projectOfRepo(app: Payload, gitlab: string): string | null {
  const url = app?.spec?.source?.repoURL;
  if (typeof url !== 'string') return null;
  try {
    const u = new URL(url);
    const base = new URL(gitlab);
    if (u.host !== base.host) return null;
    const prefix = base.pathname.replace(/\/+$/, '');
    const path = u.pathname.replace(/\.git$/, '').replace(/\/+$/, '');
    if (!path.startsWith(`${prefix}/`)) return null;
    const p = path.slice(prefix.length + 1);
    return /^[\w.-]+(\/[\w.-]+)+$/.test(p) ? p : null;
  } catch {
    return null;
  }
}
