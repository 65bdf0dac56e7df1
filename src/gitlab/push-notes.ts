// GitLab's record of who pushed to a merge request: its "added N commits" system notes,
// authored by the pusher (the API user for Commits API commits). Unlike a commit's author
// and committer fields, which anyone writes, these are GitLab's own.

export interface PushRecord {
  username: string;
  /** the note's creation time (ISO) */
  at: string;
  /** the note's body: `added N commits`, then `<ul><li><short id> - <title></li>…</ul>` */
  body: string;
}

/** Whether a note is GitLab's push system note ("added 1 commit", "added 12 commits"). */
export function isPushNote(body: string): boolean {
  return /^added \d+ commits?\b/.test(body);
}

/** The short commit ids a push note lists (`<li>abc12345 - title</li>`). */
export function noteCommits(body: string): string[] {
  return [...body.matchAll(/<li>([0-9a-f]{7,40}) - /g)].map((m) => m[1]);
}

/**
 * Who pushed after `owner`'s latest push: the bot replaces its branch with one commit on
 * the target each time it writes, so pushes before its latest one are gone from the MR.
 */
export function pushesAfter(notes: PushRecord[], owner: string): string[] {
  const ordered = [...notes].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  let last = -1;
  ordered.forEach((n, i) => {
    if (n.username === owner) last = i;
  });
  return [...new Set(ordered.slice(last + 1).map((n) => n.username))];
}
