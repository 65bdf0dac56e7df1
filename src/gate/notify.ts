// The bot's sticky comments: one note per marker on an MR (created, or edited when its text
// changed), one comment per marker on a commit (GitLab cannot edit those, so a new state
// gets a new marker). When racing runs both created one, the oldest stays.
import type { GateForge } from './facts.js';

export async function ensureNote(
  gl: GateForge,
  project: string,
  iid: number,
  marker: string,
  body: string,
): Promise<void> {
  const mine = (await gl.notes(project, iid))
    .filter((n) => n.body.startsWith(marker))
    .sort((a, b) => a.id - b.id);
  if (!mine.length) {
    await gl.createNote(project, iid, body);
    const again = (await gl.notes(project, iid))
      .filter((n) => n.body.startsWith(marker))
      .sort((a, b) => a.id - b.id);
    for (const extra of again.slice(1)) await gl.deleteNote(project, iid, extra.id);
    if (again.length > 1 && again[0].body !== body) await gl.updateNote(project, iid, again[0].id, body);
    return;
  }
  if (mine[0].body !== body) await gl.updateNote(project, iid, mine[0].id, body);
  for (const extra of mine.slice(1)) await gl.deleteNote(project, iid, extra.id);
}

export async function ensureCommitNote(
  gl: GateForge,
  project: string,
  sha: string,
  marker: string,
  body: string,
) {
  const existing = await gl.commitComments(project, sha);
  if (!existing.some((c) => c.startsWith(marker))) await gl.commitComment(project, sha, body);
}

const ALERT = '<!-- gitops-bot:alert ';

export function alertMarker(key: string): string {
  return `${ALERT}${key} -->`;
}

/** An alert on an MR (by iid) or a commit (by sha), once per key. */
export async function alertOnce(
  gl: GateForge,
  project: string,
  on: { iid?: number; sha?: string },
  key: string,
  text: string,
): Promise<void> {
  const marker = alertMarker(key);
  const body = `${marker}\n${text}`;
  if (on.iid !== undefined) await ensureNote(gl, project, on.iid, marker, body);
  else if (on.sha) await ensureCommitNote(gl, project, on.sha, marker, body);
}
