// The gate's comments go through the one sticky rule (src/gitlab/sticky.ts): the verdict
// on the MR, alerts on an MR or a commit, once per key.
import { ensureCommitSticky, ensureSticky } from '../gitlab/sticky.js';
import type { GateForge } from './facts.js';

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
  if (on.iid !== undefined) await ensureSticky(gl, { project, iid: on.iid }, marker, body);
  else if (on.sha) await ensureCommitSticky(gl, { project, sha: on.sha }, marker, body);
}
