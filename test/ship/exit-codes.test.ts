// One exit-code table: the README's is the one the CLI's --help prints (src/model/exit-codes.ts).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXIT_CODES } from '../../src/model/exit-codes.js';
import { run } from '../helpers.js';

test("the README's exit-code table and --help are the model's table", async () => {
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Exit codes'));
  const rows = [...section.slice(0, section.indexOf('\n## ')).matchAll(/^\| (\d+) \| (.*) \|$/gm)].map(
    (m) => [Number(m[1]), m[2]],
  );
  assert.deepEqual(
    rows,
    EXIT_CODES.map((e) => [e.code, e.meaning]),
  );
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  const { stdout } = await run(process.execPath, [cli, '--help']);
  for (const e of EXIT_CODES)
    assert.ok(stdout.includes(`  ${e.code}  ${e.meaning.replace(/`/g, '')}`), e.name);
});
