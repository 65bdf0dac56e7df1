#!/usr/bin/env node
// gitops-bot, bundled by scripts/bundle.mjs: the program is the Brotli-compressed CommonJS below.
// (Comments of this template, but the line above, are dropped from the output.)
// `--version` answers without unpacking or compiling the program: most of a fresh
// process's start was V8 parsing it. (A V8 code cache in the temp directory was tried
// too: no measurable gain, so there is none.)
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { brotliDecompressSync } from 'node:zlib';

const VERSION = '%VERSION%';
const PROGRAM = '%PROGRAM%';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${VERSION}\n`);
} else {
  const filename = fileURLToPath(import.meta.url);
  const source = brotliDecompressSync(Buffer.from(PROGRAM, 'base64')).toString('utf8');
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname, __gitopsBotUrl) {${source}\n})`,
    { filename },
  );
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(filename), module, filename, dirname(filename), import.meta.url);
}
