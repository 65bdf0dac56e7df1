// Finding and editing image references in YAML without re-serialising anything.
//
// Documents stream through yaml's Parser and Composer one at a time (memory stays bounded
// by the largest document, not the file), each is walked once, and what we keep is plain
// offsets into the original text. An edit splices new bytes into that text: every byte
// outside the edited value stays identical, comments, key order, quoting and line endings
// included.
import {
  Composer,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  Parser,
  parseDocument,
  Scalar,
  type YAMLMap,
} from 'yaml';
import {
  digestProblem,
  formatReference,
  InvalidReferenceError,
  normalizeRepository,
  referenceProblem,
  repositoryProblem,
  splitDomain,
  tagProblem,
  tryParseReference,
} from './reference.js';

export type ImageKind = 'container' | 'image' | 'kustomize' | 'helm' | 'flux';

export interface ImageRef {
  kind: ImageKind;
  /** 0-based index of the YAML document in the file */
  document: number;
  /** where the reference sits in the document's data */
  path: Array<string | number>;
  /** 1-based line and column of the reference's first byte */
  line: number;
  column: number;
  /** [start, end) offsets of the reference's source in the text (JavaScript string indices) */
  range: [number, number];
  /** the same, in UTF-8 bytes */
  byteRange: [number, number];
  /** the reference as written (for Helm maps and kustomize entries, composed from its fields) */
  value: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** canonical repository name: `nginx` → `docker.io/library/nginx` */
  normalized: string;
  /** the container's `name`, for references in a pod template's container lists */
  container?: string;
  /** kustomize: the `name` the entry matches in resources */
  name?: string;
  /** set when the value is reached through an alias of this anchor */
  viaAlias?: string;
  /** other values fed by the same anchor that are not this image's references */
  sharedWith?: string[];
}

export interface SetImageOptions {
  /** repository to change, without tag or digest (`registry.example.com/root/helloworld`) */
  image: string;
  tag?: string;
  digest?: string;
  /** only the container with this name */
  container?: string;
  /** edit values whose anchor also feeds other values */
  followAnchor?: boolean;
  /** file path, to recognise `kustomization.yaml` without a `kind` */
  path?: string;
}

export interface Change {
  kind: ImageKind;
  document: number;
  path: Array<string | number>;
  line: number;
  before: string;
  after: string;
  container?: string;
  note?: string;
}

export interface SetImageResult {
  text: string;
  changes: Change[];
  /** references to the image that were already at the target */
  unchanged: ImageRef[];
}

/** The text is not valid YAML: `line`/`column` are 1-based. Exit code 4 in the CLI. */
export class YamlSyntaxError extends Error {
  override name = 'YamlSyntaxError';
  constructor(
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`${line}:${column}: ${reason}`);
  }
}

/** The image is not referenced in the text. Exit code 3 in the CLI. */
export class NotReferencedError extends Error {
  override name = 'NotReferencedError';
  constructor(
    message: string,
    readonly found: ImageRef[],
    /** image values in the text that are not valid references (`alpine:invalid!`) */
    readonly invalid: Array<{ value: string; line: number }> = [],
  ) {
    super(message);
  }
}

/** Editing would also change values that share the anchor. */
export class SharedAnchorError extends Error {
  override name = 'SharedAnchorError';
}

// ---------- internal plan: what to change, as offsets ----------

interface ScalarSpan {
  start: number;
  end: number;
  type: Scalar.Type | undefined;
  value: string;
  /** the node, to tell shared anchors apart */
  node: Node;
}

interface MapSpan {
  start: number;
  flow: boolean;
  /** where a new `key: value` goes: after the last pair's value */
  insertAfter: number;
}

type Plan =
  | { type: 'string'; scalar: ScalarSpan; repository: string; tag?: string; digest?: string }
  | {
      type: 'fields';
      map: MapSpan | null;
      tag?: ScalarSpan;
      digest?: ScalarSpan;
      tagKey: string;
      digestKey: string;
      /** ingress-nginx's `tag: v1.2.9@sha256:…`: the tag scalar holds the digest too */
      tagHoldsDigest?: boolean;
    };

interface Found {
  ref: ImageRef;
  plan: Plan;
  /** nodes whose bytes an edit changes, for the shared-anchor check */
  nodes: Node[];
}

/** An image value that is not a valid reference (`image: alpine:invalid!`). */
interface Invalid {
  /** the value as written */
  value: string;
  /** its repository, when that part is valid: who asks to edit it is told why it cannot be */
  repository: string | null;
  problem: string;
  start: number;
  line: number;
  column: number;
}

/** The keys of a kustomization's `images:` entries. */
const KUSTOMIZE_IMAGE_KEYS = new Set(['name', 'newName', 'newTag', 'digest']);

/**
 * A kustomization by its content, whatever the file is called: kustomize's apiVersion, or
 * (kustomize does not require apiVersion and kind) a top-level `images:` list whose every
 * entry is a map of kustomize's image fields with a `name`, one at least setting something.
 */
function isKustomization(root: Node | null, filePath: string | undefined): boolean {
  if (!isMap(root)) return false;
  const kind = root.get('kind');
  const apiVersion = root.get('apiVersion');
  if (kind === 'Kustomization' || kind === 'Component') return true;
  if (typeof apiVersion === 'string' && apiVersion.startsWith('kustomize.config.k8s.io/')) return true;
  if (kind !== undefined) return false;
  if (filePath && KUSTOMIZATION_FILE.test(filePath)) return true;
  if (apiVersion !== undefined) return false;
  const images = root.get('images', true);
  if (!isSeq(images) || images.items.length === 0) return false;
  let setsSomething = false;
  for (const item of images.items) {
    if (!isMap(item)) return false;
    const keys = item.items.map(keyOf);
    if (!keys.includes('name') || !keys.every((k) => KUSTOMIZE_IMAGE_KEYS.has(k as string))) return false;
    if (keys.length > 1) setsSomething = true;
  }
  return setsSomething;
}

/** The repository part of an invalid reference, when that part is valid by itself. */
function repositoryOf(value: string): string | null {
  let rest = value;
  const at = rest.indexOf('@');
  if (at >= 0) rest = rest.slice(0, at);
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) rest = rest.slice(0, colon);
  return rest && !repositoryProblem(rest) ? rest : null;
}

const CONTAINER_LISTS = new Set(['containers', 'initContainers', 'ephemeralContainers']);
const KUSTOMIZATION_FILE = /(^|[\\/])kustomization\.ya?ml$|(^|[\\/])Kustomization$/;

function isImageKey(key: unknown): boolean {
  return key === 'image' || (typeof key === 'string' && /[a-z0-9]Image$/.test(key));
}

function keyOf(pair: Pair): unknown {
  return isScalar(pair.key) ? pair.key.value : pair.key;
}

function getPair(map: YAMLMap, key: string): Pair | undefined {
  for (const p of map.items) if (keyOf(p) === key) return p;
  return undefined;
}

/** The text a scalar holds, as a string: `1.10` stays `1.10`, not the number 1.1. */
function scalarText(s: Scalar): string | null {
  if (s.value === null || s.value === undefined) return '';
  if (typeof s.value === 'string') return s.value;
  if (s.type === Scalar.PLAIN && typeof s.source === 'string') return s.source;
  if (typeof s.value === 'number' || typeof s.value === 'boolean') return String(s.value);
  return null;
}

const FLUX_MARKER = /\{\s*"\$imagepolicy"\s*:\s*"([^"]+)"\s*\}/;

/** One document's references, found in a single walk. */
class DocumentScanner {
  readonly found: Found[] = [];
  readonly invalid: Invalid[] = [];
  private readonly path: Array<string | number> = [];
  private readonly anchors = new Map<string, Node>();
  private readonly anchorSites = new Map<Node, string>();
  private readonly aliasUses = new Map<Node, string[]>();
  private readonly fluxParts = new Map<
    string,
    { name?: ScalarSpan; tag?: ScalarSpan; digest?: ScalarSpan; at: string[] }
  >();
  private readonly kustomization: boolean;

  constructor(
    private readonly index: number,
    private readonly root: Node | null,
    filePath: string | undefined,
  ) {
    this.kustomization = isKustomization(root, filePath);
  }

  private addInvalid(value: string, start: number, problem: string, repository = repositoryOf(value)): void {
    this.invalid.push({ value, repository, problem, start, line: 0, column: 0 });
  }

  scan(): Found[] {
    const root = this.root;
    if (!root) return [];
    // Flux's own image objects name repositories to scan, not images that run.
    const apiVersion = isMap(root) ? root.get('apiVersion') : undefined;
    if (typeof apiVersion === 'string' && apiVersion.startsWith('image.toolkit.fluxcd.io/')) return [];
    this.visit(root, undefined, false);
    this.finishFlux();
    this.markSharedAnchors();
    return this.found;
  }

  private pathString(extra?: string | number): string {
    const parts = extra === undefined ? this.path : [...this.path, extra];
    return parts.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('') || '.';
  }

  private span(s: Scalar): ScalarSpan | null {
    const text = scalarText(s);
    if (text === null || !s.range) return null;
    return { start: s.range[0], end: s.range[1], type: s.type, value: text, node: s };
  }

  private resolve(node: unknown): { node: Node | null; alias?: string } {
    if (isAlias(node)) return { node: this.anchors.get(node.source) ?? null, alias: node.source };
    return { node: (node as Node) ?? null };
  }

  private visit(node: unknown, key: unknown, inContainerList: boolean): void {
    if (!node || typeof node !== 'object') return;
    const n = node as Node;
    if ('anchor' in n && typeof n.anchor === 'string' && n.anchor) {
      this.anchors.set(n.anchor, n);
      this.anchorSites.set(n, this.pathString());
    }
    if (isAlias(n)) {
      const target = this.anchors.get(n.source);
      if (target) {
        const uses = this.aliasUses.get(target) ?? [];
        uses.push(this.pathString());
        this.aliasUses.set(target, uses);
      }
      return;
    }
    if (isMap(n)) {
      this.visitMap(n, key, inContainerList);
      return;
    }
    if (isSeq(n)) {
      const kustomizeImages = this.kustomization && this.path.length === 1 && this.path[0] === 'images';
      n.items.forEach((item, i) => {
        this.path.push(i);
        if (kustomizeImages && isMap(item)) this.kustomizeEntry(item);
        else this.visit(item, undefined, inContainerList);
        this.path.pop();
      });
    }
  }

  private visitMap(map: YAMLMap, key: unknown, inContainerList: boolean): void {
    const isResource = map.items.some((p) =>
      ['apiVersion', 'kind', 'metadata', 'spec'].includes(keyOf(p) as string),
    );
    const helm = isImageKey(key) || getPair(map, 'repository') ? this.helmMap(map, key) : false;
    for (const pair of map.items) {
      const k = keyOf(pair);
      if (typeof k !== 'string' && typeof k !== 'number') continue;
      if (k === 'status' && isResource) continue; // observed state, never desired state
      this.path.push(k);
      if (!helm) {
        if (isImageKey(k)) this.imageValue(pair, map, inContainerList);
        else this.fluxMarker(pair.value);
      }
      this.visit(pair.value, k, CONTAINER_LISTS.has(String(k)) && isSeq(pair.value));
      this.path.pop();
    }
  }

  /** `image: nginx:1.0`, also through an alias, also with a Flux marker. */
  private imageValue(pair: Pair, map: YAMLMap, inContainerList: boolean): void {
    const { node, alias } = this.resolve(pair.value);
    if (!isScalar(node)) return;
    const span = this.span(node);
    if (!span) return;
    const ref = tryParseReference(span.value);
    if (!ref) {
      const problem = referenceProblem(span.value);
      if (problem && span.value) this.addInvalid(span.value, span.start, problem);
      return;
    }
    const containerName = inContainerList ? getPair(map, 'name') : undefined;
    const name = containerName && isScalar(containerName.value) ? scalarText(containerName.value) : null;
    this.add({
      kind: inContainerList ? 'container' : 'image',
      span,
      plan: { type: 'string', scalar: span, ...ref },
      ref,
      container: name ?? undefined,
      viaAlias: alias,
    });
  }

  /** Flux setters: `# {"$imagepolicy": "ns:policy"}` (whole reference) or `:name` / `:tag` / `:digest` parts. */
  private fluxMarker(value: unknown): void {
    if (!isScalar(value) || typeof value.comment !== 'string') return;
    const m = FLUX_MARKER.exec(value.comment);
    if (!m) return;
    const span = this.span(value);
    if (!span) return;
    const parts = m[1].split(':');
    if (parts.length === 2) {
      const ref = tryParseReference(span.value);
      if (ref) this.add({ kind: 'flux', span, plan: { type: 'string', scalar: span, ...ref }, ref });
      return;
    }
    const policy = parts.slice(0, 2).join(':');
    const group = this.fluxParts.get(policy) ?? { at: [] };
    const role = parts[2];
    if (role === 'name' || role === 'tag' || role === 'digest') group[role] = span;
    group.at.push(this.pathString());
    this.fluxParts.set(policy, group);
  }

  private finishFlux(): void {
    for (const group of this.fluxParts.values()) {
      if (!group.name || repositoryProblem(group.name.value)) continue;
      const first = [group.name, group.tag, group.digest]
        .filter((s): s is ScalarSpan => !!s)
        .sort((a, b) => a.start - b.start)[0];
      this.addFields('flux', group.name.value, group, null, first, 'tag', 'digest', group.at[0]);
    }
  }

  /** Helm values: `image: { registry?, repository, tag, digest? }`, and ingress-nginx's `image: { image, tag }`. */
  private helmMap(map: YAMLMap, key: unknown): boolean {
    const scalarAt = (k: string) => {
      const p = getPair(map, k);
      const { node } = this.resolve(p?.value);
      return p && isScalar(node) ? this.span(node) : null;
    };
    const underImageKey = isImageKey(key);
    const repository = scalarAt('repository');
    const tag = scalarAt('tag');
    const registry = scalarAt('registry');
    // `repository` wins; under an image key, `name` (cert-manager) or `image` (ingress-nginx)
    // stand in for it when it is absent or empty.
    const repo = [
      repository,
      underImageKey ? scalarAt('name') : null,
      underImageKey ? scalarAt('image') : null,
    ].find((s) => !!s?.value);
    if (!repo) return false;
    if (repo === repository ? !(underImageKey || tag) : !(tag || registry || repository)) return false;
    const full = registry?.value ? `${registry.value}/${repo.value}` : repo.value;
    if (repositoryProblem(full)) return false;
    const digest = scalarAt('digest');
    this.addFields(
      'helm',
      full,
      { tag: tag ?? undefined, digest: digest ?? undefined },
      map,
      registry ?? repo,
      'tag',
      'digest',
    );
    return true;
  }

  /** kustomization.yaml `images:` entries: name, newName, newTag, digest. */
  private kustomizeEntry(map: YAMLMap): void {
    const scalarAt = (k: string) => {
      const p = getPair(map, k);
      return p && isScalar(p.value) ? this.span(p.value) : null;
    };
    const name = scalarAt('name');
    if (!name?.value) return;
    const newName = scalarAt('newName');
    const repository = newName?.value || name.value;
    if (repositoryProblem(repository)) return;
    const f = this.addFields(
      'kustomize',
      repository,
      { tag: scalarAt('newTag') ?? undefined, digest: scalarAt('digest') ?? undefined },
      map,
      name,
      'newTag',
      'digest',
    );
    if (f) f.ref.name = name.value;
  }

  private addFields(
    kind: ImageKind,
    repository: string,
    parts: { tag?: ScalarSpan; digest?: ScalarSpan },
    map: YAMLMap | null,
    first: ScalarSpan,
    tagKey: string,
    digestKey: string,
    at?: string,
  ): Found | null {
    let tag = parts.tag?.value || undefined;
    let digest = parts.digest?.value || undefined;
    // Helm charts compose `repo:{{ tag }}`, so ingress-nginx writes `tag: v1.2.9@sha256:…`.
    const atSign = tag?.indexOf('@') ?? -1;
    const tagHoldsDigest =
      kind === 'helm' &&
      !digest &&
      tag !== undefined &&
      atSign > 0 &&
      !tagProblem(tag.slice(0, atSign)) &&
      !digestProblem(tag.slice(atSign + 1));
    if (tagHoldsDigest && tag !== undefined) {
      digest = tag.slice(atSign + 1);
      tag = tag.slice(0, atSign);
    }
    const problem = (tag && tagProblem(tag)) || (digest && digestProblem(digest));
    if (problem) {
      const value = formatReference({ repository, tag, digest });
      this.addInvalid(value, (parts.tag ?? parts.digest ?? first).start, problem, repository);
      return null;
    }
    let mapSpan: MapSpan | null = null;
    const spans = [first, parts.tag, parts.digest].filter((x): x is ScalarSpan => !!x);
    const start = Math.min(...spans.map((x) => x.start));
    let end = Math.max(...spans.map((x) => x.end));
    if (map?.range) {
      const last = map.items.at(-1);
      const lastNode = (last?.value ?? last?.key) as Node | undefined;
      const firstKey = map.items[0]?.key as Node | undefined;
      mapSpan = {
        start: firstKey?.range?.[0] ?? map.range[0],
        flow: !!map.flow,
        insertAfter: lastNode?.range?.[1] ?? map.range[1],
      };
      end = Math.max(end, mapSpan.insertAfter);
    }
    const found: Found = {
      ref: this.baseRef(kind, { repository, tag, digest }, start, end, at),
      plan: {
        type: 'fields',
        map: mapSpan,
        tag: parts.tag,
        digest: parts.digest,
        tagKey,
        digestKey,
        ...(tagHoldsDigest ? { tagHoldsDigest } : {}),
      },
      nodes: [parts.tag?.node, parts.digest?.node].filter((x): x is Node => !!x),
    };
    this.found.push(found);
    return found;
  }

  private baseRef(
    kind: ImageKind,
    ref: { repository: string; tag?: string; digest?: string },
    start: number,
    end: number,
    at?: string,
  ): ImageRef {
    return {
      kind,
      document: this.index,
      path: at ? parsePathString(at) : [...this.path],
      line: 0,
      column: 0,
      range: [start, end],
      byteRange: [0, 0],
      value: formatReference(ref),
      repository: ref.repository,
      ...(ref.tag ? { tag: ref.tag } : {}),
      ...(ref.digest ? { digest: ref.digest } : {}),
      normalized: normalizeRepository(ref.repository),
    };
  }

  private add(x: {
    kind: ImageKind;
    span: ScalarSpan;
    plan: Plan;
    ref: { repository: string; tag?: string; digest?: string };
    container?: string;
    viaAlias?: string;
  }): void {
    const ref = this.baseRef(x.kind, x.ref, x.span.start, x.span.end);
    if (x.container) ref.container = x.container;
    if (x.viaAlias) ref.viaAlias = x.viaAlias;
    this.found.push({ ref, plan: x.plan, nodes: [x.span.node] });
  }

  /** Values that an anchor feeds besides the image references found on it. */
  private markSharedAnchors(): void {
    const imagePaths = new Map<Node, Set<string>>();
    for (const f of this.found) {
      for (const node of f.nodes) {
        const set = imagePaths.get(node) ?? new Set<string>();
        set.add(pathToString(f.ref.path));
        imagePaths.set(node, set);
      }
    }
    for (const f of this.found) {
      const shared = new Set<string>();
      for (const node of f.nodes) {
        const site = this.anchorSites.get(node);
        if (site === undefined) continue;
        const images = imagePaths.get(node)!;
        for (const use of [site, ...(this.aliasUses.get(node) ?? [])]) if (!images.has(use)) shared.add(use);
      }
      if (shared.size) f.ref.sharedWith = [...shared];
    }
  }
}

function pathToString(path: Array<string | number>): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('') || '.';
}

function parsePathString(s: string): Array<string | number> {
  const out: Array<string | number> = [];
  for (const m of s.matchAll(/\.([^.[]+)|\[(\d+)\]/g)) out.push(m[1] ?? Number(m[2]));
  return out;
}

interface Scan {
  found: Found[];
  invalid: Invalid[];
  lines: LineCounter;
}

function scan(text: string, filePath?: string): Scan {
  const lines = new LineCounter();
  const parser = new Parser(lines.addNewLine);
  // Kubernetes tolerates duplicate keys in practice; so do we (the last one wins).
  const composer = new Composer({ uniqueKeys: false, keepSourceTokens: false });
  const found: Found[] = [];
  const invalid: Invalid[] = [];
  let index = 0;
  for (const doc of composer.compose(parser.parse(text), true, text.length)) {
    const err = doc.errors[0];
    if (err) {
      const pos = lines.linePos(err.pos[0]);
      throw new YamlSyntaxError(pos.line, pos.col, err.message.split('\n')[0]);
    }
    const scanner = new DocumentScanner(index++, doc.contents as Node | null, filePath);
    found.push(...scanner.scan());
    invalid.push(...scanner.invalid);
  }
  for (const f of found) {
    const pos = lines.linePos(f.ref.range[0]);
    f.ref.line = pos.line;
    f.ref.column = pos.col;
  }
  for (const i of invalid) {
    const pos = lines.linePos(i.start);
    i.line = pos.line;
    i.column = pos.col;
  }
  return { found, invalid, lines };
}

/** Fills byteRange for refs sorted by offset, counting UTF-8 bytes once over the text. */
function fillByteRanges(text: string, refs: ImageRef[]): void {
  const points = refs.flatMap((r, i) => [
    { at: r.range[0], i, end: false },
    { at: r.range[1], i, end: true },
  ]);
  points.sort((a, b) => a.at - b.at);
  let offset = 0;
  let bytes = 0;
  for (const p of points) {
    bytes += Buffer.byteLength(text.slice(offset, p.at), 'utf8');
    offset = p.at;
    refs[p.i].byteRange[p.end ? 1 : 0] = bytes;
  }
}

/** Every image reference in a YAML file, in file order. */
export function findImages(text: string, path?: string): ImageRef[] {
  const refs = scan(text, path).found.map((f) => f.ref);
  fillByteRanges(text, refs);
  return refs;
}

// ---------- editing ----------

/** A plain scalar that YAML 1.1 or 1.2 would read as something other than this string. */
function needsQuotes(value: string): boolean {
  if (value === '' || /^[\s\-?:,[\]{}#&*!|>'"%@`]/.test(value) || /: |\s#|\s$/.test(value)) return true;
  for (const version of ['1.1', '1.2'] as const) {
    const v = parseDocument(value, { version }).contents;
    if (!isScalar(v) || v.value !== value) return true;
  }
  return false;
}

const doubleQuoted = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

interface Edit {
  start: number;
  end: number;
  text: string;
}

/** New source for a scalar that keeps its quoting style. */
function scalarEdit(text: string, s: ScalarSpan, value: string): Edit {
  const source = text.slice(s.start, s.end);
  switch (s.type) {
    case Scalar.QUOTE_DOUBLE:
      return { start: s.start, end: s.end, text: doubleQuoted(value) };
    case Scalar.QUOTE_SINGLE:
      return { start: s.start, end: s.end, text: `'${value.replace(/'/g, "''")}'` };
    case Scalar.BLOCK_FOLDED:
    case Scalar.BLOCK_LITERAL: {
      // Keep the header and indentation; replace the one content line.
      const bodyStart = source.search(/\r?\n/);
      const at = bodyStart < 0 ? -1 : source.indexOf(s.value, bodyStart);
      if (at >= 0 && s.value) {
        return { start: s.start + at, end: s.start + at + s.value.length, text: value };
      }
      return { start: s.start, end: s.end, text: doubleQuoted(value) };
    }
    default: {
      const out = needsQuotes(value) ? doubleQuoted(value) : value;
      // An empty value (`tag:`) needs a space after the colon.
      const pad = source === '' && text[s.start - 1] === ':' ? ' ' : '';
      return { start: s.start, end: s.end, text: pad + out };
    }
  }
}

function lineEnd(text: string, pos: number): { at: number; eol: string } {
  let at = text.indexOf('\n', pos);
  if (at < 0) return { at: text.length, eol: text.includes('\r\n') ? '\r\n' : '\n' };
  if (text[at - 1] === '\r') {
    at -= 1;
    return { at, eol: '\r\n' };
  }
  return { at, eol: '\n' };
}

/** Inserts `key: value` into a map: a new line at the map's indentation, or `, key: value` in flow style. */
function insertField(text: string, map: MapSpan, key: string, value: string): Edit {
  const quoted = needsQuotes(value) ? doubleQuoted(value) : value;
  if (map.flow) return { start: map.insertAfter, end: map.insertAfter, text: `, ${key}: ${quoted}` };
  const indent = map.start - (text.lastIndexOf('\n', map.start - 1) + 1);
  const { at, eol } = lineEnd(text, map.insertAfter);
  return { start: at, end: at, text: `${eol}${' '.repeat(indent)}${key}: ${quoted}` };
}

function validateOptions(opts: SetImageOptions): void {
  if (!opts.image) throw new InvalidReferenceError('--image is required: the repository to change');
  const { path } = splitDomain(opts.image);
  if (opts.image.includes('@') || path.includes(':')) {
    const problem = referenceProblem(opts.image);
    throw new InvalidReferenceError(
      problem
        ? `--image '${opts.image}' is not a valid reference: ${problem}`
        : `--image '${opts.image}' must be a repository without tag or digest; pass the tag with --tag`,
    );
  }
  const rp = repositoryProblem(opts.image);
  if (rp) throw new InvalidReferenceError(rp);
  if (opts.tag === undefined && opts.digest === undefined)
    throw new InvalidReferenceError('give --tag, --digest or both');
  if (opts.tag !== undefined) {
    const p = tagProblem(opts.tag);
    if (p) throw new InvalidReferenceError(p);
  }
  if (opts.digest !== undefined) {
    const p = digestProblem(opts.digest);
    if (p) throw new InvalidReferenceError(p);
  }
}

function matches(ref: ImageRef, target: string, container?: string): boolean {
  if (container !== undefined && ref.container !== container) return false;
  if (ref.normalized === target) return true;
  return (
    ref.kind === 'kustomize' &&
    !!ref.name &&
    !repositoryProblem(ref.name) &&
    normalizeRepository(ref.name) === target
  );
}

/**
 * Sets the tag and/or digest of every reference to `opts.image`, changing only the bytes of
 * those values. Pure: text in, text out.
 */
export function setImage(text: string, opts: SetImageOptions): SetImageResult {
  validateOptions(opts);
  const target = normalizeRepository(opts.image);
  const { found, invalid, lines } = scan(text, opts.path);
  // A reference to this image that is not valid cannot be edited: say why, rather than
  // "not referenced" (or editing the valid ones and leaving it behind).
  const broken = invalid.find((i) => i.repository && normalizeRepository(i.repository) === target);
  if (broken) {
    const at = `${opts.path ? `${opts.path}:` : 'line '}${broken.line}:${broken.column}`;
    throw new InvalidReferenceError(
      `${at}: image '${broken.value}' is not a valid reference: ${broken.problem}`,
    );
  }
  const mine = found.filter((f) => matches(f.ref, target, opts.container));
  if (!mine.length) {
    const names = [...new Set(found.map((f) => f.ref.repository))];
    const where = opts.container ? ` in a container named '${opts.container}'` : '';
    const bad = invalid.map((i) => `'${i.value}' (line ${i.line})`);
    throw new NotReferencedError(
      `image '${opts.image}' is not referenced${where}; ${names.length ? `found: ${names.join(', ')}` : 'no image references found'}${bad.length ? `; not valid references: ${bad.join(', ')}` : ''}`,
      found.map((f) => f.ref),
      invalid.map((i) => ({ value: i.value, line: i.line })),
    );
  }
  if (!opts.followAnchor) {
    const shared = mine.filter((f) => f.ref.sharedWith?.length);
    if (shared.length) {
      const f = shared[0];
      throw new SharedAnchorError(
        `line ${f.ref.line}: ${pathToString(f.ref.path)} is set through an anchor that also feeds ${f.ref.sharedWith!.join(', ')}; ` +
          'pass --follow-anchor to edit it anyway',
      );
    }
  }
  const edits: Edit[] = [];
  const changes: Change[] = [];
  const unchanged: ImageRef[] = [];
  const seen = new Set<number>();
  for (const f of mine) {
    const before = f.ref.value;
    const next = {
      repository: f.ref.repository,
      tag: opts.tag ?? f.ref.tag,
      digest: opts.digest ?? (opts.tag !== undefined ? undefined : f.ref.digest),
    };
    const after = formatReference(next);
    if (after === before) {
      unchanged.push(f.ref);
      continue;
    }
    const note = f.ref.digest && !next.digest ? `removed the stale digest ${f.ref.digest}` : undefined;
    const own: Edit[] = [];
    const plan = f.plan;
    if (plan.type === 'string') {
      if (!seen.has(plan.scalar.start)) {
        own.push(
          scalarEdit(text, plan.scalar, formatReference({ ...plan, tag: next.tag, digest: next.digest })),
        );
      }
    } else if (plan.tagHoldsDigest && plan.tag) {
      own.push(scalarEdit(text, plan.tag, `${next.tag ?? ''}${next.digest ? `@${next.digest}` : ''}`));
    } else {
      if (opts.tag !== undefined && opts.tag !== f.ref.tag) {
        if (plan.tag) own.push(scalarEdit(text, plan.tag, opts.tag));
        else if (plan.map) own.push(insertField(text, plan.map, plan.tagKey, opts.tag));
      }
      if (next.digest !== f.ref.digest) {
        if (plan.digest) own.push(scalarEdit(text, plan.digest, next.digest ?? ''));
        else if (plan.map && next.digest) own.push(insertField(text, plan.map, plan.digestKey, next.digest));
      }
    }
    for (const e of own) {
      if (seen.has(e.start)) continue;
      seen.add(e.start);
      edits.push(e);
    }
    const line = own.length ? lines.linePos(Math.min(...own.map((e) => e.start))).line : f.ref.line;
    changes.push({
      kind: f.ref.kind,
      document: f.ref.document,
      path: f.ref.path,
      line,
      before,
      after,
      ...(f.ref.container ? { container: f.ref.container } : {}),
      ...(note ? { note } : {}),
    });
  }
  edits.sort((a, b) => a.start - b.start);
  const out: string[] = [];
  let at = 0;
  for (const e of edits) {
    out.push(text.slice(at, e.start), e.text);
    at = e.end;
  }
  out.push(text.slice(at));
  return { text: out.join(''), changes, unchanged };
}
