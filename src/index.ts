// gitops-bot as a library: what the CLI does, callable from your own code. The sandbox and
// the manifest editor have their own entry points (gitops-bot/sandbox, gitops-bot/manifests).
export { type GateResult, gate } from './gate/gate.js';
export { GitLab, GitLabError, GitLabGate } from './gitlab/client.js';
export { evaluate, type Facts, type Verdict } from './policy/evaluate.js';
export { type Policy, PolicyError, parsePolicy, policyJsonSchema } from './policy/schema.js';
export {
  PromoteError,
  PromoteExit,
  type PromoteRequest,
  type PromoteResult,
  promote,
} from './promote/promote.js';
export { credentialsFromEnv, imageName, RegistryClient, RegistryError } from './registry/client.js';
export { createWebhookServer, type ServeOptions } from './server/webhook.js';
export { VERSION } from './version.js';
