// GitLab's CI/CD Catalog reads components from templates/<name>.yml in the repository at the
// released tag, so templates/ must be committed: a release job cannot produce it (an
// artifact is not the repository). ci-templates/ stays the source that `include: project:`
// and `remote:` users (and this repository's history) know; templates/ is generated from it.
//
//   node scripts/components.mjs          write templates/ and the README's inputs tables
//   node scripts/components.mjs --check  exit 1, one line per file or input that is out of
//                                        step or breaks a catalog rule (the test and CI run it)
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, isSeq, parseAllDocuments } from 'yaml';

export const SOURCE_DIR = 'ci-templates';
export const COMPONENT_DIR = 'templates';
/** GitLab publishes at most this many components per project. */
export const MAX_COMPONENTS = 30;
const TYPES = ['string', 'number', 'boolean', 'array'];
const INPUT_KEYS = ['description', 'type', 'default', 'options', 'regex'];

/** templates/<name>.yml: the source with a first line that says where to edit it. */
export function componentFile(name, source) {
  return `# Generated from ${SOURCE_DIR}/${name}.yml by scripts/components.mjs: edit that file, then run it.\n${source}`;
}

/** The spec:inputs of a template, in order; problems name the file and the input. */
export function readSpec(file, source) {
  const docs = parseAllDocuments(source);
  const problems = [];
  const fail = (where, what) => problems.push(`${file}${where ? `: ${where}` : ''}: ${what}`);
  if (!Array.isArray(docs) || docs.length !== 2) {
    fail('', 'a component is a `spec:` header, then `---`, then the jobs (2 YAML documents)');
    return { inputs: [], problems };
  }
  for (const doc of docs)
    for (const e of doc.errors) fail(`line ${e.linePos?.[0]?.line ?? '?'}`, e.message.split('\n')[0]);
  if (problems.length) return { inputs: [], problems };
  const header = docs[0].toJS();
  if (!header || typeof header !== 'object' || Object.keys(header).join() !== 'spec') {
    fail('', 'the first document must hold only `spec:`');
    return { inputs: [], problems };
  }
  if (!docs[1].contents || !isMap(docs[1].contents) || docs[1].contents.items.length === 0)
    fail('', 'no jobs after the `---`');
  const inputsNode = docs[0].getIn(['spec', 'inputs'], true);
  if (!isMap(inputsNode)) {
    fail('spec:inputs', 'missing or not a mapping');
    return { inputs: [], problems };
  }
  const inputs = [];
  for (const pair of inputsNode.items) {
    const name = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const where = `spec:inputs:${name}`;
    const spec = isMap(pair.value) ? pair.value.toJSON() : null;
    if (!spec) {
      fail(where, 'not a mapping');
      continue;
    }
    for (const key of Object.keys(spec))
      if (!INPUT_KEYS.includes(key)) fail(where, `unknown keyword \`${key}\` (${INPUT_KEYS.join(', ')})`);
    const type = spec.type ?? 'string';
    if (typeof spec.description !== 'string' || !spec.description.trim())
      fail(where, 'no `description` (the catalog shows it)');
    if (!TYPES.includes(type)) fail(where, `type \`${type}\` is not one of ${TYPES.join(', ')}`);
    if ('default' in spec) {
      const d = spec.default;
      const ok =
        type === 'array' ? Array.isArray(d) : type === 'number' ? typeof d === 'number' : typeof d === type;
      if (!ok) fail(where, `default \`${JSON.stringify(d)}\` is not a ${type}`);
    }
    if ('options' in spec) {
      if (!isSeq(pair.value.get('options', true)) || spec.options.length === 0)
        fail(where, '`options` must be a non-empty list');
      else if ('default' in spec && !spec.options.includes(spec.default))
        fail(where, `default \`${spec.default}\` is not one of the options`);
    }
    if ('regex' in spec) {
      if (type !== 'string') fail(where, '`regex` applies to string inputs only');
      else if ('default' in spec && !new RegExp(spec.regex).test(spec.default))
        fail(where, `default \`${spec.default}\` does not match regex \`${spec.regex}\``);
    }
    inputs.push({
      name,
      type,
      description: spec.description ?? '',
      default: spec.default,
      required: !('default' in spec),
      options: spec.options,
      regex: spec.regex,
    });
  }
  return { inputs, problems };
}

const cell = (text) => String(text).replaceAll('|', '\\|').replaceAll('\n', ' ');
const code = (value) => (value === '' ? '`""`' : `\`${value}\``);

/** The README's inputs table of one component: name, type, default, description. */
export function inputsTable(inputs) {
  const rows = inputs.map((i) => {
    const dflt = i.required
      ? '(required)'
      : Array.isArray(i.default)
        ? code(JSON.stringify(i.default))
        : code(i.default);
    const type = i.options ? `${i.type}: ${i.options.map(code).join(', ')}` : i.type;
    const description = i.regex ? `${i.description} Must match \`${i.regex}\`.` : i.description;
    return `| \`${i.name}\` | ${cell(type)} | ${cell(dflt)} | ${cell(description)} |`;
  });
  return ['| input | type | default | description |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

const marker = (name) => [`<!-- component-inputs: ${name} -->\n`, '\n<!-- /component-inputs -->'];

/** The README with each component's table replaced; names of components without markers. */
export function withTables(readme, tables) {
  const missing = [];
  for (const [name, table] of Object.entries(tables)) {
    const [open, close] = marker(name);
    const start = readme.indexOf(open);
    const end = start < 0 ? -1 : readme.indexOf(close, start);
    if (end < 0) {
      missing.push(name);
      continue;
    }
    readme = `${readme.slice(0, start + open.length)}${table}${readme.slice(end)}`;
  }
  return { readme, missing };
}

/**
 * What templates/ and the README must contain, from ci-templates/ and the README now; the
 * problems if a catalog rule is broken. Pure apart from reading `root`.
 */
export async function plan(root) {
  const names = (await readdir(join(root, SOURCE_DIR)))
    .filter((f) => f.endsWith('.yml'))
    .map((f) => f.slice(0, -4))
    .sort();
  const problems = [];
  if (names.length === 0) problems.push(`${SOURCE_DIR}/: no templates`);
  if (names.length > MAX_COMPONENTS)
    problems.push(`${SOURCE_DIR}/: ${names.length} templates, GitLab publishes at most ${MAX_COMPONENTS}`);
  const files = {};
  const tables = {};
  for (const name of names) {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(name))
      problems.push(`${SOURCE_DIR}/${name}.yml: component names are [a-z0-9_-]`);
    const source = await readFile(join(root, SOURCE_DIR, `${name}.yml`), 'utf8');
    const spec = readSpec(`${SOURCE_DIR}/${name}.yml`, source);
    problems.push(...spec.problems);
    files[`${COMPONENT_DIR}/${name}.yml`] = componentFile(name, source);
    tables[name] = inputsTable(spec.inputs);
  }
  const readmeNow = await readFile(join(root, 'README.md'), 'utf8');
  const { readme, missing } = withTables(readmeNow, tables);
  for (const name of missing)
    problems.push(
      `README.md: no "${marker(name)[0].trim()}" … "${marker(name)[1].trim()}" for the ${name} component's inputs`,
    );
  return { names, files, readme, readmeNow, problems };
}

/** What differs between the plan and the working tree, one line each. */
export async function drift(root, p) {
  const lines = [];
  const present = await readdir(join(root, COMPONENT_DIR), { withFileTypes: true }).catch(() => []);
  for (const entry of present) {
    const path = `${COMPONENT_DIR}/${entry.name}`;
    if (!(path in p.files))
      lines.push(`${path}: not generated from ${SOURCE_DIR}/ (remove it, or add the source)`);
  }
  for (const [path, content] of Object.entries(p.files)) {
    const now = await readFile(join(root, path), 'utf8').catch(() => null);
    if (now === null) lines.push(`${path}: missing`);
    else if (now !== content)
      lines.push(`${path}: differs from ${SOURCE_DIR}/${path.slice(COMPONENT_DIR.length + 1)}`);
  }
  if (p.readme !== p.readmeNow)
    lines.push('README.md: a component inputs table differs from its spec:inputs');
  return lines;
}

async function main(argv) {
  const root = fileURLToPath(new URL('../', import.meta.url));
  const p = await plan(root);
  if (argv.includes('--check')) {
    const lines = [...p.problems, ...(await drift(root, p))];
    for (const line of lines) process.stderr.write(`components: ${line}\n`);
    if (lines.length) {
      process.stderr.write(
        'components: run `node scripts/components.mjs` and commit templates/ and README.md\n',
      );
      process.exit(1);
    }
    process.stdout.write(`components: ${p.names.join(', ')} in step\n`);
    return;
  }
  if (p.problems.length) {
    for (const line of p.problems) process.stderr.write(`components: ${line}\n`);
    process.exit(1);
  }
  await mkdir(join(root, COMPONENT_DIR), { recursive: true });
  for (const entry of await readdir(join(root, COMPONENT_DIR)))
    if (!(`${COMPONENT_DIR}/${entry}` in p.files))
      await rm(join(root, COMPONENT_DIR, entry), { recursive: true });
  for (const [path, content] of Object.entries(p.files)) await writeFile(join(root, path), content);
  if (p.readme !== p.readmeNow) await writeFile(join(root, 'README.md'), p.readme);
  process.stdout.write(`components: wrote ${Object.keys(p.files).join(', ')}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main(process.argv.slice(2));
