// Project and group operations: create and configure a project, create a group, add
// members, protect branches, and the project's webhooks.
import type { SandboxCore } from './core.js';
import { ApiError, badRequest, notFound } from './http.js';
import { AccessLevel, type Group, type Hook, type Project, type Protection, type User } from './state.js';

export interface NewProject {
  name: string;
  path: string;
  description: string;
  defaultBranch: string;
  visibility: Project['visibility'];
  onlyAllowMergeIfPipelineSucceeds: boolean;
  removeSourceBranchAfterMerge: boolean;
  initializeWithReadme: boolean;
}

export async function createProject(core: SandboxCore, user: User, input: NewProject): Promise<Project> {
  const store = core.store;
  const { initializeWithReadme, ...fields } = input;
  if (store.project(`${user.username}/${input.path}`))
    throw badRequest({ name: ['has already been taken'], path: ['has already been taken'] });
  const p: Project = {
    id: store.nextId('project'),
    ...fields,
    namespace: user.username,
    members: { [String(user.id)]: AccessLevel.OWNER },
    nextMrIid: 1,
    createdAt: new Date().toISOString(),
  };
  store.data.projects.push(p);
  await core.initRepo(p);
  if (initializeWithReadme) {
    await core.createCommit(user, p, {
      branch: p.defaultBranch,
      message: 'Initial commit',
      actions: [{ action: 'create', filePath: 'README.md', content: Buffer.from(`# ${p.name}\n`) }],
    });
  }
  store.changed();
  return p;
}

export type ProjectSettings = Partial<
  Pick<Project, 'onlyAllowMergeIfPipelineSucceeds' | 'removeSourceBranchAfterMerge' | 'description'>
>;

export function updateProject(core: SandboxCore, user: User | null, p: Project, settings: ProjectSettings) {
  core.require(user, p, AccessLevel.MAINTAINER);
  for (const [k, v] of Object.entries(settings)) if (v !== undefined) Object.assign(p, { [k]: v });
  core.store.changed();
}

/** `userId` joins `members` (a project's or a group's) at `level`. */
export function addMember(core: SandboxCore, members: Record<string, number>, userId: number, level: number) {
  const u = core.store.user(userId);
  if (!u) throw notFound('User');
  if (members[String(userId)] !== undefined) throw new ApiError(409, { message: 'Member already exists' });
  members[String(userId)] = level;
  core.store.changed();
  return u;
}

/** POST /groups: a group its creator owns; the path is the users' and groups' one namespace. */
export function createGroup(
  core: SandboxCore,
  user: User,
  input: Pick<Group, 'name' | 'path' | 'visibility'>,
): Group {
  const store = core.store;
  const taken = (path: string) =>
    store.group(path) || store.data.users.some((u) => u.username.toLowerCase() === path.toLowerCase());
  if (taken(input.path))
    throw new ApiError(400, { message: 'Failed to save group {:path=>["has already been taken"]}' });
  if (!['private', 'internal', 'public'].includes(input.visibility))
    throw new ApiError(400, { error: 'visibility does not have a valid value' });
  const g: Group = {
    id: store.nextId('group'),
    ...input,
    members: { [String(user.id)]: AccessLevel.OWNER },
    createdAt: new Date().toISOString(),
  };
  store.data.groups ??= [];
  store.data.groups.push(g);
  store.changed();
  return g;
}

// ---------- protected branches ----------

export function protect(
  core: SandboxCore,
  user: User | null,
  p: Project,
  name: string,
  rule: Omit<Protection, 'id'>,
): Protection {
  core.require(user, p, AccessLevel.MAINTAINER);
  const protection: Protection = {
    id: p.protectedBranches?.[name]?.id ?? core.store.nextId('protected_branch'),
    ...rule,
  };
  p.protectedBranches = { ...(p.protectedBranches ?? {}), [name]: protection };
  core.store.changed();
  return protection;
}

/** A rule's stable id, given also to rules made before the sandbox kept them and to the default branch. */
export function protectionId(core: SandboxCore, p: Project, name: string): number {
  const store = core.store;
  const explicit = p.protectedBranches?.[name];
  if (explicit) {
    if (explicit.id === undefined) {
      explicit.id = store.nextId('protected_branch');
      store.changed();
    }
    return explicit.id;
  }
  if (p.defaultProtectionId === undefined) {
    p.defaultProtectionId = store.nextId('protected_branch');
    store.changed();
  }
  return p.defaultProtectionId;
}

// ---------- hooks ----------

export type HookSettings = Omit<Hook, 'id' | 'projectId' | 'createdAt'>;

export function findHook(core: SandboxCore, p: Project, id: number): Hook {
  const h = core.store.data.hooks.find((x) => x.projectId === p.id && x.id === id);
  if (!h) throw notFound('Hook');
  return h;
}

export function addHook(core: SandboxCore, p: Project, settings: HookSettings): Hook {
  const hook: Hook = {
    id: core.store.nextId('hook'),
    projectId: p.id,
    ...settings,
    createdAt: new Date().toISOString(),
  };
  core.store.data.hooks.push(hook);
  core.store.changed();
  return hook;
}

export function updateHook(core: SandboxCore, h: Hook, settings: Partial<HookSettings>): void {
  for (const [k, v] of Object.entries(settings)) if (v !== undefined) Object.assign(h, { [k]: v });
  core.store.changed();
}

export function deleteHook(core: SandboxCore, p: Project, id: number): void {
  const h = findHook(core, p, id);
  core.store.data.hooks.splice(core.store.data.hooks.indexOf(h), 1);
  core.store.changed();
}
