// The merge request a reviewer and an operator read: title, summary table, and the hidden
// record the bot reads back on later runs.

import { duration } from '../model/duration.js';
import { type PromotionRecord, recordComment } from '../model/record.js';
import { changeKind } from '../model/version-order.js';
import { code, link, plain } from './markdown.js';

export function mrTitle(r: PromotionRecord): string {
  const what = r.tag ?? (r.digest ? r.digest.slice(0, 19) : 'image');
  return r.rollback ? `Roll back ${r.app} to ${what} in ${r.env}` : `Deploy ${r.app} ${what} to ${r.env}`;
}

/** "verified in staging since 11:32 (45 min)": a chain step's evidence, as of `now`. */
export function verifiedText(chain: { from: string; since: string }, now: Date): string {
  return `verified in ${chain.from} since ${chain.since.slice(11, 16)} UTC (${duration(now.getTime() - Date.parse(chain.since))})`;
}

/** Why this is a rollback, what it waives, and what the agent said: above the table. */
function rollbackLines(r: PromotionRecord): string[] {
  const rb = r.rollback;
  if (!rb) return [];
  const who =
    rb.by === 'on_degraded' ? 'gitops-bot (on_degraded: rollback)' : 'a person (gitops-bot rollback)';
  const out = [
    `**Rollback** of ${code(r.app)} in **${r.env}**${rb.fromTag ? ` from ${code(rb.fromTag)}` : ''} to ${code(r.tag ?? '?')}, which ran healthy there${rb.healthyDeployment ? ` (deployment ${rb.healthyDeployment})` : ''}. Asked by ${who}.`,
    '',
    `Reason: ${plain(rb.reason)}`,
    '',
  ];
  if (rb.agentMessage) out.push(`The agent's last message: ${plain(rb.agentMessage)}`, '');
  out.push(
    `The downgrade guard is waived for this merge request only.${rb.fromTag ? ` Once merged, ${code(rb.fromTag)} is rejected in ${r.env}: promote refuses it there (exit 5) unless --allow-rejected.` : ''}`,
    '',
  );
  return out;
}

export function mrDescription(r: PromotionRecord, gitlabUrl: string, now: Date = new Date()): string {
  const arrow = (a: string | undefined, b: string | undefined) =>
    `${a ? code(a) : '—'} → ${b ? code(b) : '—'}`;
  const rows: Array<[string, string]> = [
    ['Image', code(r.image)],
    ['Tag', arrow(r.fromTag, r.tag ?? r.fromTag)],
  ];
  const reg = r.registry;
  if (r.digest || r.fromDigest) rows.push(['Digest', arrow(r.fromDigest, r.digest)]);
  else if (reg?.digest) rows.push(['Digest (registry)', arrow(reg.fromDigest, reg.digest)]);
  if (reg)
    rows.push([
      'Image verified',
      reg.unverified ? `no: ${plain(reg.unverified)}` : 'yes, the tag exists in the registry',
    ]);
  rows.push(['Kind of change', changeKind(r.fromTag, r.tag)]);
  rows.push(['Files', r.files.map((f) => code(f.path)).join(', ')]);
  const s = r.source;
  if (s.project) {
    const projectUrl = s.projectUrl ?? `${gitlabUrl.replace(/\/+$/, '')}/${s.project}`;
    const commit = s.sha ? ` @ ${link(code(s.sha.slice(0, 8)), `${projectUrl}/-/commit/${s.sha}`)}` : '';
    rows.push(['Source', `${link(code(s.project), projectUrl)}${commit}`]);
  } else if (s.sha) {
    rows.push(['Source commit', code(s.sha)]);
  }
  if (s.pipelineUrl || s.pipelineIid) {
    rows.push(['Pipeline', link(s.pipelineIid ? `#${s.pipelineIid}` : 'pipeline', s.pipelineUrl)]);
  }
  if (r.chain) rows.push(['Promoted from', `${r.chain.from}: ${plain(verifiedText(r.chain, now))}`]);
  return [
    ...rollbackLines(r),
    `Deploys ${code(`${r.image}:${r.tag ?? ''}${r.digest ? `@${r.digest}` : ''}`.replace(/:$/, ''))} to **${r.env}** (target branch ${code(r.target)}).`,
    '',
    '| | |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
    ...whatIsDeployed(r),
    `Merging this merge request changes ${code(r.target)}, which the in-cluster agent deploys.`,
    '',
    '<sub>Opened by gitops-bot. A newer tag for this app and environment updates this merge request in place; ' +
      'commits pushed to its branch by hand are replaced.</sub>',
    '',
    recordComment(r),
    '',
  ].join('\n');
}

/** The app changes the bump carries, or plainly why they cannot be known. */
function whatIsDeployed(r: PromotionRecord): string[] {
  const reg = r.registry;
  if (!reg) return [];
  const out = ['### What is being deployed', ''];
  const c = reg.changes;
  if (!c) {
    out.push(
      `Which app changes this carries cannot be known: ${plain(reg.unverified ?? reg.changesUnknown ?? 'no registry facts')}.`,
      '',
    );
    return out;
  }
  const n = c.commits.length + c.more;
  const between = `${link(code(c.from.slice(0, 8)), `${c.projectUrl}/-/commit/${c.from}`)} (${code(r.fromTag ?? '?')}) and ${link(code(c.to.slice(0, 8)), `${c.projectUrl}/-/commit/${c.to}`)} (${code(r.tag ?? '?')})`;
  if (n === 0) {
    out.push(
      `No app commits: both images were built from the same commit of ${link(code(c.project), c.projectUrl)}.`,
      '',
    );
    return out;
  }
  out.push(
    `${n} commit${n === 1 ? '' : 's'} in ${link(code(c.project), c.projectUrl)} between ${between} (${link('compare', c.compareUrl)}):`,
    '',
  );
  for (const x of c.commits) out.push(`- ${link(code(x.sha.slice(0, 8)), x.url)} ${plain(x.title)}`);
  if (c.more) out.push(`- … and ${c.more} older (see ${link('the comparison', c.compareUrl)})`);
  if (c.mergeRequests.length)
    out.push('', `Merge requests: ${c.mergeRequests.map((m) => link(code(m.ref), m.url)).join(', ')}`);
  out.push('');
  return out;
}
