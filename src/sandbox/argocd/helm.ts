// A Helm source as Argo CD's repo server renders it (`helm template` with the app's
// `helm.valueFiles`), for charts of the simple kind an ops repository's "values per
// environment" layout uses: templates that read `.Values`, `.Release` and `.Chart`, through
// `quote` and `default`. Anything else a template asks for (if, range, include, toYaml…) is
// a manifest-generation error naming it, as an unsupported feature should be: the sandbox
// does not pretend to render what it cannot.
import { posix } from 'node:path';
import { parse } from 'yaml';
import type { Repo } from '../git.js';

export class HelmError extends Error {}

type Values = Record<string, unknown>;

const isObject = (v: unknown): v is Values => !!v && typeof v === 'object' && !Array.isArray(v);

/** Helm's coalescing of values files: later files win, maps merge key by key. */
export function mergeValues(base: Values, over: Values): Values {
  const out: Values = { ...base };
  for (const [k, v] of Object.entries(over))
    out[k] = isObject(v) && isObject(out[k]) ? mergeValues(out[k] as Values, v) : v;
  return out;
}

const ACTION = /\{\{(-?)\s*(.*?)\s*(-?)\}\}/gs;

/** One action's value: `.Values.a.b`, `.Release.Name`, `.Chart.Name`, then `| quote`, `| default X`. */
function evaluate(expr: string, scope: Values, where: string): string {
  const [head, ...pipes] = expr.split('|').map((p) => p.trim());
  if (!/^\.(Values|Release|Chart)(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(head))
    throw new HelmError(
      `${where}: the sandbox renders {{ .Values.* }}, {{ .Release.* }}, {{ .Chart.* }}, quote and default only, not {{ ${expr} }}`,
    );
  let value: unknown = scope;
  for (const key of head.slice(1).split('.')) value = isObject(value) ? value[key] : undefined;
  for (const p of pipes) {
    const [fn, ...args] = p.split(/\s+/);
    if (fn === 'quote') value = JSON.stringify(value === undefined || value === null ? '' : String(value));
    else if (fn === 'default' && args.length) {
      if (value === undefined || value === null || value === '') value = JSON.parse(args.join(' '));
    } else throw new HelmError(`${where}: the sandbox renders quote and default only, not | ${p}`);
  }
  if (isObject(value) || Array.isArray(value))
    throw new HelmError(`${where}: {{ ${expr} }} is a map or list (toYaml is not rendered by the sandbox)`);
  return value === undefined || value === null ? '' : String(value);
}

/** One template's text with its actions replaced (`{{-` and `-}}` trim whitespace as Go's do). */
export function renderTemplate(text: string, scope: Values, where: string): string {
  let out = '';
  let last = 0;
  for (const m of text.matchAll(ACTION)) {
    let before = text.slice(last, m.index);
    if (m[1]) before = before.replace(/\s+$/, '');
    out += before + evaluate(m[2], scope, where);
    last = m.index! + m[0].length;
    if (m[3]) while (last < text.length && /\s/.test(text[last])) last++;
  }
  return out + text.slice(last);
}

export interface HelmSource {
  valueFiles?: string[];
  releaseName?: string;
  ignoreMissingValueFiles?: boolean;
}

/**
 * The chart at `base` (its Chart.yaml, values.yaml and templates/), rendered with the value
 * files (relative to the chart's path, as Argo CD resolves them; never outside the repository).
 */
export async function helmTemplate(
  repo: Repo,
  commit: string,
  base: string,
  appName: string,
  helm: HelmSource,
): Promise<Array<{ name: string; text: string }>> {
  const read = async (path: string) => (await repo.blob(commit, path))?.content.toString('utf8') ?? null;
  const at = (p: string) => (base ? `${base}/${p}` : p);
  const chart = parse((await read(at('Chart.yaml'))) ?? '') as Values | null;
  let values = (parse((await read(at('values.yaml'))) ?? '') as Values | null) ?? {};
  for (const f of helm.valueFiles ?? []) {
    const path = posix.normalize(posix.join(base || '.', f));
    if (path.startsWith('..') || posix.isAbsolute(path))
      throw new HelmError(`value file ${f} resolved to outside repository root`);
    const text = await read(path);
    if (text === null) {
      if (helm.ignoreMissingValueFiles) continue;
      throw new HelmError(`Error: open ${path}: no such file or directory`);
    }
    const parsed = parse(text) as Values | null;
    if (parsed && !isObject(parsed)) throw new HelmError(`${path}: values must be a map`);
    values = mergeValues(values, parsed ?? {});
  }
  const scope: Values = {
    Values: values,
    Release: { Name: helm.releaseName ?? appName, Namespace: '', Service: 'Helm' },
    Chart: { Name: chart?.name ?? '', Version: chart?.version ?? '', AppVersion: chart?.appVersion ?? '' },
  };
  const templates = (await repo.tree(commit, at('templates'), true)) ?? [];
  const out: Array<{ name: string; text: string }> = [];
  for (const e of templates) {
    const name = posix.basename(e.path);
    if (e.type !== 'blob' || name.startsWith('_') || !/\.(ya?ml)$/.test(name)) continue;
    const text = (await read(e.path)) ?? '';
    out.push({ name: e.path, text: renderTemplate(text, scope, e.path) });
  }
  return out;
}
