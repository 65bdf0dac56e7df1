// Which tag a rollback goes back to: pure, from the deployments gitops-bot recorded in the
// environment (newest first, each with the tag its commit's files held) and what the target
// branch runs now. Table-tested in test/rollback/decide.test.ts.
import type { Rejection } from '../promote/rejections.js';

export interface PastDeployment {
  id: number;
  sha: string;
  status: string;
  /** the tag of the app's image at the deployment's commit (null: not found there) */
  tag: string | null;
  /** the digest pinned with it there, if any: what ran, restored as it was */
  digest?: string;
  /** when it came to its status (ISO) */
  at: string;
}

export interface TargetFacts {
  env: string;
  app: string;
  /** the tag the target branch holds now: what is rolled back from */
  deployedTag: string | null;
  /** the bot's deployments in `<env>/<app>`, newest first */
  history: PastDeployment[];
  /** --to */
  to?: string;
  /** tags rolled back from this environment before */
  rejected: Rejection[];
}

export type RollbackChoice =
  | { tag: string; fromTag?: string; healthyDeployment?: number; why: string }
  | { error: string };

export function chooseTarget(f: TargetFacts): RollbackChoice {
  const from = f.deployedTag ?? undefined;
  const healthy = f.history.filter((d) => d.status === 'success' && d.tag);
  if (f.to) {
    if (f.to === from) return { error: `${f.env} already runs ${f.app} ${f.to}: nothing to roll back to` };
    const seen = healthy.find((d) => d.tag === f.to);
    return {
      tag: f.to,
      fromTag: from,
      healthyDeployment: seen?.id,
      why: seen
        ? `${f.to} ran healthy in ${f.env} (deployment ${seen.id}, ${seen.at.slice(0, 16).replace('T', ' ')})`
        : `${f.to} as asked (--to); no healthy deployment of it is on record in ${f.env}`,
    };
  }
  const rejected = new Set(f.rejected.map((r) => r.tag));
  const target = healthy.find((d) => d.tag !== from && !rejected.has(d.tag!));
  if (!target) {
    const n = f.history.length;
    return {
      error:
        `no earlier healthy deployment of ${f.app} in ${f.env} to roll back to ` +
        `(gitops-bot recorded ${n} deployment${n === 1 ? '' : 's'} in ${f.env}/${f.app}, ${healthy.length} healthy` +
        `${from ? `, ${healthy.filter((d) => d.tag === from).length} of them of ${from}, the tag deployed now` : ''}); pass --to TAG`,
    };
  }
  return {
    tag: target.tag!,
    fromTag: from,
    healthyDeployment: target.id,
    why: `the last tag that ran healthy in ${f.env} before ${from ?? 'now'} (deployment ${target.id}, ${target.at.slice(0, 16).replace('T', ' ')})`,
  };
}
