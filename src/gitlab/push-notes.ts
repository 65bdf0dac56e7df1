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

/**
 * The short ids of the MR commits a push note lists (`<li>abc12345 - title</li>`). Not the
 * summary lines: `<li>ab12cd34 - 1 commit from branch <code>main</code></li>` (commits
 * of the target, not pushed to the MR) and `… - 12 earlier commits</li>`.
 */
export function noteCommits(body: string): string[] {
  const out: string[] = [];
  for (const m of body.matchAll(/<li>(.*?)<\/li>/gs)) {
    const item = /^([0-9a-f]{7,40}) - (.*)$/s.exec(m[1]);
    if (!item) continue;
    if (/^\d+ commits? from branch <code>/.test(item[2]) || /^\d+ earlier commits?$/.test(item[2])) continue;
    out.push(item[1]);
  }
  return out;
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
