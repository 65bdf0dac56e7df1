// The bot's sticky text: one comment per marker, for every comment gitops-bot writes (the
// promotion's diff, the gate's verdict, alerts). On an MR the comment is created, or edited
// when its text changed, never re-posted. On a commit, where GitLab can neither edit nor
// delete a comment, it is posted once per marker (a new state takes a new marker).
//
// One rule for duplicates, which racing runs make (two runs that both found no comment
// both post one; GitLab cannot refuse the second): the oldest comment stays, the others are
// removed. Every run applies the same rule, so racing runs agree on which one survives.
//
// Only the bot's own comments count (`by`: its user id or username). Anyone who may comment
// can start a note with a marker; such a note is neither the sticky comment nor a duplicate
// of it: the bot would otherwise delete its own as the younger one and try to edit theirs,
// which GitLab refuses, and their text would stand as the bot's.
import { type GitLab, GitLabError, type GitLabGate, type Note } from './client.js';

export type NoteForge = Pick<GitLab, 'notes' | 'createNote' | 'updateNote' | 'deleteNote'>;
export type CommitNoteForge = Pick<GitLabGate, 'commitComments' | 'commitComment'>;

export type StickyOutcome = 'created' | 'updated' | 'unchanged';

export interface StickyOptions {
  /** the MR's notes as the caller just read them (saves a read); omitted: read now */
  known?: Note[];
  /**
   * Which text the surviving comment takes when a race left duplicates (default: `body`).
   * Promote keeps the text that describes the MR's head, whichever run wrote it.
   */
  settle?: (duplicates: Note[]) => Promise<string | undefined>;
}

/** Who the bot is: its user id or its username. */
export type Author = number | string;

const wrote = (by: Author, who: { authorId: number; author: string }) =>
  typeof by === 'number' ? who.authorId === by : who.author === by;

/** The notes `by` wrote that start with `marker`, oldest first (never GitLab's system notes). */
export const stickyNotes = (notes: Note[], marker: string, by: Author) =>
  notes.filter((n) => !n.system && wrote(by, n) && n.body.startsWith(marker)).sort((a, b) => a.id - b.id);

/** Makes `project!iid` hold exactly one note by `target.by` starting with `marker`, reading `body`. */
export async function ensureSticky(
  gl: NoteForge,
  target: { project: string; iid: number; by: Author },
  marker: string,
  body: string,
  opts: StickyOptions = {},
): Promise<StickyOutcome> {
  const { project, iid, by } = target;
  const mine = stickyNotes(opts.known ?? (await gl.notes(project, iid)), marker, by);
  if (mine.length) {
    const [keep, ...extra] = mine;
    for (const n of extra) await gl.deleteNote(project, iid, n.id);
    if (keep.body === body) return 'unchanged';
    try {
      await gl.updateNote(project, iid, keep.id, body);
      return 'updated';
    } catch (e) {
      // a racing run removed it as a duplicate of an older one: settle again below
      if (!(e instanceof GitLabError && e.status === 404)) throw e;
    }
  } else await gl.createNote(project, iid, body);
  const again = stickyNotes(await gl.notes(project, iid), marker, by);
  if (again.length === 0) {
    // ours was removed as a duplicate and so was the one it lost to: post it once more
    await gl.createNote(project, iid, body);
    return 'created';
  }
  const [keep, ...extra] = again;
  for (const n of extra) await gl.deleteNote(project, iid, n.id);
  const text = (extra.length ? await opts.settle?.(again) : undefined) ?? body;
  if (keep.body !== text) await gl.updateNote(project, iid, keep.id, text);
  return mine.length ? 'updated' : 'created';
}

/** Posts `body` on commit `sha` unless a comment by `target.by` starting with `marker` is there already. */
export async function ensureCommitSticky(
  gl: CommitNoteForge,
  target: { project: string; sha: string; by: Author },
  marker: string,
  body: string,
): Promise<StickyOutcome> {
  const existing = await gl.commitComments(target.project, target.sha);
  if (existing.some((c) => wrote(target.by, c) && c.note.startsWith(marker))) return 'unchanged';
  await gl.commitComment(target.project, target.sha, body);
  return 'created';
}
