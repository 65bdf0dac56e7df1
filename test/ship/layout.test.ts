// Dependencies point one way: no folder of src/ imports, directly or not, a folder that
// imports it back. The README's Development section lists the order.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const folderOf = (rel: string) => (rel.includes('/') ? rel.split('/')[0] : '(entry points)');

/** Which folders of src/ each folder imports (entry points included). */
async function importEdges(): Promise<Map<string, Set<string>>> {
  const edges = new Map<string, Set<string>>();
  for (const file of await sources(SRC)) {
    const rel = relative(SRC, file);
    const from = folderOf(rel);
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/(?:from |import\()'(\.[^']+)'/g)) {
      const to = folderOf(normalize(join(dirname(rel), m[1])));
      if (to !== from) edges.set(from, (edges.get(from) ?? new Set()).add(to));
    }
  }
  return edges;
}

test('README "Development" lists every folder of src/, each importing only folders listed before it', async () => {
  const readme = await readFile(join(SRC, '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Development'));
  const order = [...section.matchAll(/^src\/([a-z-]+)\/ /gm)].map((m) => m[1]);
  const folders = (await readdir(SRC, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  assert.deepEqual([...order].sort(), [...folders].sort(), 'the folders listed are the folders there are');
  const edges = await importEdges();
  const wrong = order.flatMap((folder, i) =>
    [...(edges.get(folder) ?? [])]
      .filter((to) => order.indexOf(to) > i)
      .map((to) => `${folder} imports ${to}`),
  );
  assert.deepEqual(wrong, [], 'an import of a folder listed later');
});

test('no import cycle between the folders of src/', async () => {
  const edges = await importEdges();
  const reaches = (a: string, b: string, seen = new Set<string>()): boolean => {
    for (const n of edges.get(a) ?? []) {
      if (n === b) return true;
      if (!seen.has(n)) {
        seen.add(n);
        if (reaches(n, b, seen)) return true;
      }
    }
    return false;
  };
  const cycles = [...edges].flatMap(([a, tos]) =>
    [...tos].filter((b) => reaches(b, a)).map((b) => `${a} <-> ${b}`),
  );
  assert.deepEqual(cycles, []);
  // The leaves import no other folder of ours.
  for (const leaf of ['model', 'manifests']) assert.deepEqual([...(edges.get(leaf) ?? [])], [], leaf);
});
