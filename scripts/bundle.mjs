// Builds the single-file bundles with esbuild: everything gitops-bot runs, dependencies
// included, for the container image (dist/gitops-bot.mjs) and the GitHub Action
// (action/dist/index.mjs), which have no node_modules. `npm run bundle`.
//
// dist/gitops-bot.mjs is a small loader (scripts/loader.mjs) with the program inside it,
// Brotli-compressed: most of a fresh process's start was V8 parsing ~750 KiB of JavaScript,
// and `--version` now answers without that. Other commands unpack it (~5 ms) first.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { brotliCompressSync, constants } from 'node:zlib';
import { build } from 'esbuild';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
// Where the bundles go (default: this checkout): GITOPS_BOT_BUNDLE_OUT=dir writes dir/dist/...
// and dir/action/dist/..., so a benchmark or test can build without replacing dist.
const out = (file) => join(process.env.GITOPS_BOT_BUNDLE_OUT ?? '.', file);

async function bundle(entry, format, define = {}) {
  const result = await build({
    entryPoints: [entry],
    write: false,
    outfile: 'out.js',
    bundle: true,
    platform: 'node',
    target: 'node20',
    format,
    minify: true,
    legalComments: 'eof',
    define: { GITOPS_BOT_BUNDLED: 'true', GITOPS_BOT_VERSION: JSON.stringify(pkg.version), ...define },
    alias: {
      // gitbeaker's client-side rate limiter, switched off by us: see the stub.
      'rate-limiter-flexible': './scripts/stubs/rate-limiter.mjs',
      'picomatch-browser': './scripts/stubs/rate-limiter.mjs',
    },
    // In ESM, CommonJS dependencies (pino, prom-client, semver) need a require() for Node's modules.
    banner:
      format === 'esm'
        ? {
            js: "import { createRequire as __gitopsBotRequire } from 'node:module';\nconst require = __gitopsBotRequire(import.meta.url);",
          }
        : {},
    logLevel: 'warning',
  });
  return Buffer.from(result.outputFiles[0].contents);
}

function write(file, text) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text, { mode: 0o755 });
  process.stderr.write(`bundle: ${file} (${(Buffer.byteLength(text) / 1024).toFixed(0)} KiB)\n`);
}

// The CLI, also the container image's entry: the loader, and the program as CommonJS
// compiled with vm.Script (an ES module from a data: URL spent 65 ms parsing the URL).
// `import.meta.url` in the program is the loader's URL, passed in.
const program = await bundle('src/bundle.ts', 'cjs', { 'import.meta.url': '__gitopsBotUrl' });
const packed = brotliCompressSync(program, {
  params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: program.length },
}).toString('base64');
const loader = readFileSync(new URL('./loader.mjs', import.meta.url), 'utf8')
  .replace(/^\/\/ .*\n/gm, (line) => (line.startsWith('// gitops-bot,') ? line : ''))
  .replace("'%VERSION%'", JSON.stringify(pkg.version))
  .replace("'%PROGRAM%'", JSON.stringify(packed));
write(out('dist/gitops-bot.mjs'), loader);

// The GitHub Action's entry: a plain ES module bundle (its start-up is the runner's, not ours).
write(out('action/dist/index.mjs'), `#!/usr/bin/env node\n${(await bundle('src/action/main.ts', 'esm')).toString('utf8')}`);

// tsc does not keep src/cli.ts's mode: `npx gitops-bot` in the repository needs dist/src/cli.js's x bits.
const cli = new URL('../dist/src/cli.js', import.meta.url);
if (existsSync(cli)) chmodSync(cli, 0o755);
