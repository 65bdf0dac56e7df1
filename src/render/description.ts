// The merge request a reviewer and an operator read: title, summary table, and the hidden
// record the bot reads back on later runs.

import { type PromotionRecord, recordComment } from '../promote/record.js';
import { changeKind } from '../promote/version-order.js';
import { code, link } from './markdown.js';

export function mrTitle(r: PromotionRecord): string {
  const what = r.tag ?? (r.digest ? r.digest.slice(0, 19) : 'image');
  return `Deploy ${r.app} ${what} to ${r.env}`;
}

export function mrDescription(r: PromotionRecord, gitlabUrl: string): string {
  const arrow = (a: string | undefined, b: string | undefined) =>
    `${a ? code(a) : '—'} → ${b ? code(b) : '—'}`;
  const rows: Array<[string, string]> = [
    ['Image', code(r.image)],
    ['Tag', arrow(r.fromTag, r.tag ?? r.fromTag)],
  ];
  if (r.digest || r.fromDigest) rows.push(['Digest', arrow(r.fromDigest, r.digest)]);
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
  return [
    `Deploys ${code(`${r.image}:${r.tag ?? ''}${r.digest ? `@${r.digest}` : ''}`.replace(/:$/, ''))} to **${r.env}** (target branch ${code(r.target)}).`,
    '',
    '| | |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
    `Merging this merge request changes ${code(r.target)}, which the in-cluster agent deploys.`,
    '',
    '<sub>Opened by gitops-bot. A newer tag for this app and environment updates this merge request in place; ' +
      'commits pushed to its branch by hand are replaced.</sub>',
    '',
    recordComment(r),
    '',
  ].join('\n');
}
