#!/usr/bin/env node
// gitops-bot, bundled by scripts/bundle.mjs: the program (CommonJS) and its V8 code cache are in gitops-bot.data beside this file.
// (Comments of this template, but the line above, are dropped from the output.)
//
// This file is the loader only (~3 KB): the program and its code cache are raw bytes in the
// data file beside it (the same name, `.data` for `.mjs`), read in one call and handed to
// V8 as they are. When they were base64 on a comment line of this file, V8 scanned 2.3 MB
// of module source and the loader decoded it: ~12 ms of every fresh process.
// `--version` answers without reading it. Other commands compile the program with its
// code cache: V8 checks that the cache fits (same V8, same flags, same source) and
// compiles from source when not, so another Node works, only slower.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';

const VERSION = '%VERSION%';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${VERSION}\n`);
} else {
  // A V8 flag set at run time changes the flag hash every code cache is checked against,
  // Node's own for its modules too. So, in this order: load the Node modules a promotion
  // needs while Node's cache still fits (from source, after the flag, Node's fetch took
  // ~25 ms more and these four ~10 ms): fetch (undici and what it loads: touching a global
  // it defines loads them all), and those the program or fetch's first request load besides
  // (process.moduleLoadList shows them); then set the flag src/startup.ts sets (why: there)
  // before compiling the program, so that our cache, made in a run with the flag set, fits.
  void globalThis.Response;
  void globalThis.TransformStream;
  for (const builtin of ['node:child_process', 'node:dns', 'node:fs/promises', 'node:os']) createRequire(import.meta.url)(builtin);
  setFlagsFromString('--liftoff-only');
  const filename = fileURLToPath(import.meta.url);
  // gitops-bot.data: program length, cache length (uint32 LE each), the program, the cache
  const data = readFileSync(`${filename.replace(/\.mjs$/, '')}.data`);
  const programEnd = 8 + data.readUInt32LE(0);
  const program = data.subarray(8, programEnd);
  const cache = data.readUInt32LE(4) ? data.subarray(programEnd) : undefined;
  // A cached script keeps the file name of the run that made the cache: one fixed name
  // keeps stack traces alike with and without it.
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname, __gitopsBotUrl) {${program.toString('utf8')}\n})`,
    { filename: 'gitops-bot.mjs', cachedData: cache },
  );
  // V8 says nothing when it rejects a cache: GITOPS_BOT_CODE_CACHE=report says (test/ship).
  if (process.env.GITOPS_BOT_CODE_CACHE === 'report')
    process.stderr.write(`gitops-bot: code cache ${cache ? (script.cachedDataRejected ? 'rejected' : 'used') : 'absent'}\n`);
  // scripts/bundle.mjs makes the cache from a promotion run with this set: what V8 compiled
  // by the end of the run, the functions a promotion calls included.
  const cacheOut = process.env.GITOPS_BOT_CODE_CACHE_OUT;
  if (cacheOut) process.on('exit', () => writeFileSync(cacheOut, script.createCachedData()));
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(filename), module, filename, dirname(filename), import.meta.url);
}
