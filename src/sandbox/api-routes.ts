// The REST API: one route file per GitLab resource.

import * as approvals from './api-approvals.js';
import * as branches from './api-branches.js';
import * as commitComments from './api-commit-comments.js';
import * as commits from './api-commits.js';
import type { RegisterRoutes } from './api-common.js';
import * as compare from './api-compare.js';
import * as deployments from './api-deployments.js';
import * as events from './api-events.js';
import * as files from './api-files.js';
import * as groups from './api-groups.js';
import * as hooks from './api-hooks.js';
import * as instance from './api-instance.js';
import * as mergeRequests from './api-merge-requests.js';
import * as mrDiffs from './api-mr-diffs.js';
import * as notes from './api-notes.js';
import * as projects from './api-projects.js';
import * as protectedBranches from './api-protected-branches.js';
import * as statuses from './api-statuses.js';

export const ROUTES: RegisterRoutes[] = [
  instance.register,
  projects.register,
  files.register,
  commits.register,
  commitComments.register,
  compare.register,
  branches.register,
  protectedBranches.register,
  statuses.register,
  hooks.register,
  mergeRequests.register,
  mrDiffs.register,
  approvals.register,
  notes.register,
  groups.register,
  events.register,
  deployments.register,
];
