// bench/manifests: a 10 MB multi-document file with 5,000 image references. Prints, from
// the same run, the time to set one image's tag divided by the time yaml's
// parseAllDocuments takes on the same text (target: at most 1.5), and peak memory over
// the input size (target: at most 10), measured in a fresh process.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { setImage } from '../src/manifests/index.js';

const REFS = 5000;
const TARGET_BYTES = 10 * 1024 * 1024;

export function generate(): string {
  const docs: string[] = [];
  const env = (i: number) =>
    Array.from(
      { length: 12 },
      (_, k) => `            - name: SETTING_${k}\n              value: "value-${i}-${k}" # why ${k}\n`,
    ).join('');
  let size = 0;
  for (let i = 0; i < REFS; i++) {
    const doc = `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-${i}
  labels: {app: app-${i}, tier: "backend", team: 'platform'}
  annotations:
    description: >-
      Service number ${i}, generated for the benchmark.
spec:
  replicas: ${(i % 5) + 1}
  selector:
    matchLabels:
      app: app-${i}
  template:
    metadata:
      labels:
        app: app-${i}
    spec:
      containers:
        - name: app
          image: registry.example.com/team-${i % 100}/app:ci-${i}
          ports:
            - containerPort: 8080
          env:
${env(i)}`;
    docs.push(doc);
    size += doc.length;
  }
  // Pad with comments to reach 10 MB without adding references.
  const pad = Math.max(0, Math.floor((TARGET_BYTES - size) / REFS));
  return docs.map((d) => `${d}# ${'-'.repeat(Math.max(0, pad - 3))}\n`).join('');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** Runs in a child: prints peak RSS growth while setting one tag. */
function memoryChild(file: string): void {
  const text = readFileSync(file, 'utf8');
  globalThis.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  setImage(text, { image: 'registry.example.com/team-42/app', tag: 'ci-new' });
  clearInterval(timer);
  const maxRss = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ base, peak: Math.max(peak, maxRss) }));
}

export async function benchManifests(): Promise<Record<string, number | string>> {
  const text = generate();
  const bytes = Buffer.byteLength(text);
  const parse: number[] = [];
  const set: number[] = [];
  let changes = 0;
  for (let i = 0; i < 5; i++) {
    parse.push(time(() => parseAllDocuments(text)));
    set.push(
      time(() => {
        changes = setImage(text, { image: 'registry.example.com/team-42/app', tag: 'ci-new' }).changes.length;
      }),
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-manifests-'));
  const file = join(dir, 'big.yaml');
  writeFileSync(file, text);
  const self = fileURLToPath(import.meta.url);
  const out = execFileSync(process.execPath, ['--expose-gc', self, '--memory-child', file], {
    encoding: 'utf8',
  });
  rmSync(dir, { recursive: true, force: true });
  const { base, peak } = JSON.parse(out) as { base: number; peak: number };
  const growth = peak - base;
  return {
    'input MB': (bytes / 1024 / 1024).toFixed(1),
    'image references': (text.match(/image: /g) ?? []).length,
    'references changed': changes,
    'parseAllDocuments ms (median of 5)': Math.round(median(parse)),
    'setImage ms (median of 5)': Math.round(median(set)),
    'ratio setImage/parseAllDocuments (target <= 1.5)': (median(set) / median(parse)).toFixed(2),
    'peak memory growth MB': (growth / 1024 / 1024).toFixed(1),
    'peak memory / input size (target <= 10)': (growth / bytes).toFixed(2),
  };
}

if (process.argv[2] === '--memory-child') memoryChild(process.argv[3]);
