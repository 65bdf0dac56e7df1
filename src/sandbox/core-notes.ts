// Comments: notes on a merge request (with GitLab's NotePolicy) and comments on a commit.
// One id space for both, as GitLab's notes table has (the hook's #note_<id>).
import type { SandboxCore } from './core.js';
import { forbidden, notFound } from './http.js';
import {
  AccessLevel,
  type CommitComment,
  type MergeRequest,
  type Note,
  type Project,
  type User,
} from './state.js';

export function addNote(
  core: SandboxCore,
  user: User,
  p: Project,
  mr: MergeRequest,
  input: { body: string; internal: boolean },
): Note {
  if (core.accessLevel(user, p) < AccessLevel.GUEST && p.visibility === 'private') throw forbidden();
  if (mr.discussionLocked && core.accessLevel(user, p) < AccessLevel.DEVELOPER) throw forbidden();
  const now = new Date().toISOString();
  const note: Note = {
    id: core.store.nextId('note'),
    projectId: p.id,
    mrIid: mr.iid,
    body: input.body,
    authorId: user.id,
    system: false,
    internal: input.internal,
    createdAt: now,
    updatedAt: now,
  };
  core.store.data.notes.push(note);
  core.store.changed();
  core.hooks.note(p, mr, note, user, 'create');
  return note;
}

/** System notes are GitLab's record (who pushed): not editable by anyone (NotePolicy). */
export function requireEditNote(user: User, note: Note): void {
  if (note.system) throw forbidden();
  if (note.authorId !== user.id && !user.isAdmin) throw forbidden();
}

export function editNote(
  core: SandboxCore,
  user: User,
  p: Project,
  mr: MergeRequest,
  note: Note,
  body: string,
) {
  requireEditNote(user, note);
  note.body = body;
  note.updatedAt = new Date().toISOString();
  core.store.changed();
  core.hooks.note(p, mr, note, user, 'update');
}

export function deleteNote(core: SandboxCore, user: User, p: Project, note: Note): void {
  if (note.system) throw forbidden();
  if (note.authorId !== user.id && core.accessLevel(user, p) < AccessLevel.MAINTAINER) throw forbidden();
  core.store.data.notes.splice(core.store.data.notes.indexOf(note), 1);
  core.store.changed();
}

export function findNote(core: SandboxCore, p: Project, mr: MergeRequest, id: number): Note {
  const note = core.store.data.notes.find((n) => n.projectId === p.id && n.mrIid === mr.iid && n.id === id);
  if (!note) throw notFound('Note');
  return note;
}

export async function addCommitComment(
  core: SandboxCore,
  user: User,
  p: Project,
  rawSha: string,
  note: string,
): Promise<CommitComment> {
  const repo = core.repo(p);
  const sha = await repo.resolve(rawSha);
  const commit = sha ? await repo.commit(sha) : null;
  if (!sha || !commit) throw notFound('Commit');
  const store = core.store;
  store.data.commitComments ??= [];
  const c: CommitComment = {
    id: store.nextId('note'),
    projectId: p.id,
    sha,
    note,
    authorId: user.id,
    createdAt: new Date().toISOString(),
  };
  store.data.commitComments.push(c);
  store.changed();
  core.hooks.commitNote(p, c, commit, user);
  return c;
}
