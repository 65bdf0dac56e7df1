export type { AppDefinition, Application, ArgocdOptions, SentNotification } from './argocd/index.js';
export { ARGOCD_ADMIN, STORY_APPLICATION } from './argocd/index.js';
export type { SandboxCore } from './core.js';
export {
  deployRefProtection,
  MAIN_PROTECTION,
  protectBranch,
  type SeedName,
  STORY_FILES,
  strictPolicy,
} from './seed.js';
export {
  isLoopback,
  type RequestLogEntry,
  type Sandbox,
  type SandboxOptions,
  startSandbox,
} from './server.js';
export { AccessLevel } from './state.js';
