// The parts of Argo CD's `Application` (argoproj/argo-cd pkg/apis/application/v1alpha1/
// types.go) the sandbox implements, with Go's JSON names. Go's encoding/json leaves out
// `omitempty` fields that are empty, so optional fields here are left out rather than null;
// non-pointer structs (status, sync, health, summary, operationState.operation) are always
// there, as Argo CD's API sends them.

export type HealthCode = 'Healthy' | 'Suspended' | 'Progressing' | 'Missing' | 'Degraded' | 'Unknown';
export type SyncCode = 'Synced' | 'OutOfSync' | 'Unknown';
export type OperationPhase = 'Running' | 'Terminating' | 'Failed' | 'Error' | 'Succeeded';

export interface ApplicationSource {
  repoURL: string;
  path?: string;
  targetRevision?: string;
  /** ApplicationSourceDirectory: `recurse`, `exclude`, `include` (glob patterns) */
  directory?: { recurse?: boolean; exclude?: string; include?: string };
  /** ApplicationSourceHelm: `valueFiles` (relative to `path`), `releaseName`, `ignoreMissingValueFiles` */
  helm?: { valueFiles?: string[]; releaseName?: string; ignoreMissingValueFiles?: boolean };
}

export interface ApplicationDestination {
  server?: string;
  namespace?: string;
  name?: string;
}

export interface OperationInitiator {
  username?: string;
  automated?: boolean;
}

export interface SyncOperation {
  revision?: string;
  prune?: boolean;
  dryRun?: boolean;
  source?: ApplicationSource;
}

export interface Operation {
  sync?: SyncOperation;
  initiatedBy: OperationInitiator;
  retry: Record<string, never>;
}

export interface ResourceResult {
  group: string;
  version: string;
  kind: string;
  namespace: string;
  name: string;
  status?: 'Synced' | 'SyncFailed' | 'Pruned' | 'PruneSkipped';
  message?: string;
  hookPhase?: string;
  syncPhase?: string;
}

export interface SyncOperationResult {
  resources?: ResourceResult[];
  revision: string;
  source?: ApplicationSource;
}

export interface OperationState {
  operation: Operation;
  phase: OperationPhase;
  message?: string;
  syncResult?: SyncOperationResult;
  startedAt: string;
  finishedAt?: string;
}

export interface RevisionHistory {
  revision?: string;
  deployedAt: string;
  id: number;
  source?: ApplicationSource;
  deployStartedAt?: string;
  initiatedBy?: OperationInitiator;
}

export interface HealthStatus {
  status?: HealthCode;
  message?: string;
  lastTransitionTime?: string;
}

export interface ResourceStatus {
  group?: string;
  version?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  status?: SyncCode;
  health?: { status?: HealthCode; message?: string };
}

export interface ApplicationCondition {
  type: string;
  message: string;
  lastTransitionTime?: string;
}

export interface Application {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    generation: number;
    creationTimestamp: string;
    annotations?: Record<string, string>;
  };
  spec: {
    source: ApplicationSource;
    destination: ApplicationDestination;
    project: string;
    syncPolicy?: { automated?: { prune?: boolean; selfHeal?: boolean } };
  };
  status: {
    resources?: ResourceStatus[];
    sync: {
      status: SyncCode;
      comparedTo?: { source: ApplicationSource; destination: ApplicationDestination };
      revision?: string;
    };
    health: HealthStatus;
    history?: RevisionHistory[];
    conditions?: ApplicationCondition[];
    reconciledAt?: string;
    operationState?: OperationState;
    sourceType?: 'Directory' | 'Kustomize' | 'Helm';
    summary: { externalURLs?: string[]; images?: string[] };
    resourceHealthSource?: 'appTree';
    controllerNamespace?: string;
  };
}
