// The gate's comments go through the one sticky rule (src/gitlab/sticky.ts): the verdict
// on the MR, alerts on an MR or a commit, once per key.
import { ensureCommitSticky, ensureSticky } from '../gitlab/sticky.js';
import type { GateContext } from './facts.js';

const ALERT = '<!-- gitops-bot:alert ';

export function alertMarker(key: string): string {
  return `${ALERT}${key} -->`;
}

/** An alert on an MR (by iid) or a commit (by sha), once per key (only the bot's comments count). */
export async function alertOnce(
  ctx: Pick<GateContext, 'gitlab' | 'botUserId'>,
  project: string,
  on: { iid?: number; sha?: string },
  key: string,
  text: string,
): Promise<void> {
  const marker = alertMarker(key);
  const body = `${marker}\n${text}`;
  const { gitlab: gl, botUserId: by } = ctx;
  if (on.iid !== undefined) await ensureSticky(gl, { project, iid: on.iid, by }, marker, body);
  else if (on.sha) await ensureCommitSticky(gl, { project, sha: on.sha, by }, marker, body);
}
