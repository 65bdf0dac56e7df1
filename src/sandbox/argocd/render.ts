// What Argo CD's repo server does for a Git source, for the kinds the sandbox knows: a
// Chart.yaml at the path is a Helm chart (helm.ts renders the simple kind), a kustomization
// goes through `kubectl kustomize` (when kubectl is installed), anything else is a Directory source: the path's .yaml/.yml/.json files (not recursive,
// unless `directory.recurse`), multi-document YAML, each document a Kubernetes object.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { Repo } from '../git.js';
import { onPath } from '../on-path.js';
import { HelmError, helmTemplate } from './helm.js';
import type { ApplicationSource } from './types.js';

const run = promisify(execFile);

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string };
  spec?: unknown;
  [key: string]: unknown;
}

export interface Rendered {
  sourceType: 'Directory' | 'Kustomize' | 'Helm';
  objects: K8sObject[];
}

/** A manifest-generation failure; the message is what Argo CD puts in its ComparisonError. */
export class RenderError extends Error {}

const KUSTOMIZATIONS = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
const MANIFEST_FILE = /\.(ya?ml|json)$/;

/** Argo CD's wording around a repo-server error (source 1 of 1: single-source apps). */
export function manifestError(message: string): string {
  return `Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = ${message}`;
}

// `directory.exclude` / `include`: one glob or `{a,b}`, matched against the path inside
// the source path, as Argo CD does with its glob package.
function globs(pattern: string | undefined): RegExp[] {
  if (!pattern) return [];
  const list = pattern.startsWith('{') && pattern.endsWith('}') ? pattern.slice(1, -1).split(',') : [pattern];
  return list.map(
    (g) =>
      new RegExp(
        `^${g
          .trim()
          .replace(/[.+^$()|[\]\\]/g, '\\$&')
          .replace(/\*\*/g, '\0')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')
          .replace(/\0/g, '.*')}$`,
      ),
  );
}

export function parseManifests(file: string, text: string): K8sObject[] {
  const out: K8sObject[] = [];
  if (file.endsWith('.json')) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new RenderError(`Failed to unmarshal "${file}": ${(e as Error).message}`);
    }
    out.push(...objectsOf(file, doc));
    return out;
  }
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      throw new RenderError(`Failed to unmarshal "${file}": ${doc.errors[0].message.split('\n')[0]}`);
    }
    const value = doc.toJS();
    if (value === null || value === undefined) continue;
    out.push(...objectsOf(file, value));
  }
  return out;
}

function objectsOf(file: string, value: unknown): K8sObject[] {
  const o = value as Partial<K8sObject> & { items?: unknown[] };
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new RenderError(`Failed to unmarshal "${file}": not a Kubernetes object`);
  }
  if (!o.kind) throw new RenderError(`Failed to unmarshal "${file}": Object 'Kind' is missing`);
  if (!o.apiVersion) throw new RenderError(`Failed to unmarshal "${file}": Object 'apiVersion' is missing`);
  // A List holds objects of its own.
  if (o.kind.endsWith('List') && Array.isArray(o.items)) return o.items.flatMap((i) => objectsOf(file, i));
  return [o as K8sObject];
}

/** Renders `source` at `commit` of `repo`. */
export async function renderSource(
  repo: Repo,
  commit: string,
  source: ApplicationSource,
  /** the Application's name: Helm's release name unless `helm.releaseName` says otherwise */
  appName = 'release',
): Promise<Rendered> {
  const base = posix
    .normalize(source.path ?? '.')
    .replace(/^\.\/?$/, '')
    .replace(/\/$/, '');
  const entries = await repo.tree(commit, base, source.directory?.recurse ?? false);
  if (!entries) throw new RenderError(`${source.path ?? '.'}: app path does not exist`);
  const rel = (p: string) => (base ? p.slice(base.length + 1) : p);
  // A Chart.yaml at the path makes it a Helm source, as Argo CD's repo server detects it.
  if (entries.some((e) => e.type === 'blob' && rel(e.path) === 'Chart.yaml')) {
    try {
      const files = await helmTemplate(repo, commit, base, appName, source.helm ?? {});
      return { sourceType: 'Helm', objects: files.flatMap((f) => parseManifests(f.name, f.text)) };
    } catch (e) {
      if (e instanceof HelmError)
        throw new RenderError(`\`helm template .\` failed exit status 1: ${e.message}`);
      throw e;
    }
  }
  const kustomization = entries.find((e) => e.type === 'blob' && KUSTOMIZATIONS.includes(rel(e.path)));
  if (kustomization && onPath('kubectl')) {
    return { sourceType: 'Kustomize', objects: await kustomize(repo, commit, base) };
  }
  // Without kubectl a kustomization is read as what it lists: the plain files beside it.
  const exclude = globs(source.directory?.exclude);
  const include = globs(source.directory?.include);
  const objects: K8sObject[] = [];
  for (const e of entries) {
    const name = rel(e.path);
    if (e.type !== 'blob' || !MANIFEST_FILE.test(name) || KUSTOMIZATIONS.includes(name)) continue;
    if (exclude.some((g) => g.test(name))) continue;
    if (include.length > 0 && !include.some((g) => g.test(name))) continue;
    const blob = await repo.blob(commit, e.path);
    if (blob) objects.push(...parseManifests(name, blob.content.toString('utf8')));
  }
  return { sourceType: 'Directory', objects };
}

async function kustomize(repo: Repo, commit: string, base: string): Promise<K8sObject[]> {
  // The whole commit, as a checkout would have it: bases may live outside the path.
  const dir = await mkdtemp(join(tmpdir(), 'gitops-bot-argocd-'));
  try {
    const { stdout: tar } = await repo.run(['archive', '--format=tar', commit]);
    await new Promise<void>((ok, fail) => {
      const child = execFile('tar', ['-x', '-C', dir], (e) => (e ? fail(e) : ok()));
      child.stdin?.end(tar);
    });
    let out: string;
    try {
      out = (await run('kubectl', ['kustomize', join(dir, base)], { maxBuffer: 64 << 20, timeout: 60_000 }))
        .stdout;
    } catch (e) {
      const stderr = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim();
      throw new RenderError(`\`kustomize build <path>/${base || '.'}\` failed exit status 1: ${stderr}`);
    }
    return parseManifests('kustomize output', out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The container images of workload objects (what Argo CD lists in `status.summary.images`). */
export function imagesOf(objects: K8sObject[]): string[] {
  const images = new Set<string>();
  for (const o of objects)
    for (const c of containersOf(o)) if (typeof c.image === 'string') images.add(c.image);
  return [...images].sort();
}

export function containersOf(o: K8sObject): Array<{ name?: string; image?: unknown }> {
  type PodSpec = { containers?: unknown; initContainers?: unknown };
  type Templated = { template?: { spec?: PodSpec } };
  const spec = o.spec as (PodSpec & Templated & { jobTemplate?: { spec?: Templated } }) | undefined;
  const pod: PodSpec | undefined =
    o.kind === 'Pod'
      ? spec
      : o.kind === 'CronJob'
        ? spec?.jobTemplate?.spec?.template?.spec
        : spec?.template?.spec;
  if (!pod || typeof pod !== 'object') return [];
  const list = (v: unknown) => (Array.isArray(v) ? (v as Array<{ name?: string; image?: unknown }>) : []);
  return [...list(pod.initContainers), ...list(pod.containers)];
}
