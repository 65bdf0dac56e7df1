// Builds the bundles with esbuild: everything gitops-bot runs, dependencies included, for
// the container image (dist/gitops-bot.mjs with dist/gitops-bot.data) and the GitHub Action
// (action/dist/index.mjs), which have no node_modules. `npm run bundle`.
//
// dist/gitops-bot.mjs is a small loader (scripts/loader.mjs); the program and its V8 code
// cache are dist/gitops-bot.data beside it: `--version` answers without reading it, and
// other commands compile the program from the cache (see the loader).
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
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

/**
 * The program's V8 code cache: what V8 compiled in a promotion (a new MR) that the
 * bundle runs against its own sandbox (real git, like the tests). Compiling the program and
 * its functions from source was ~45 ms of a fresh promotion's ~230. The cache fits only the
 * Node (V8) that made it; the loader falls back to the source otherwise. Without git or a
 * free port here, the bundle is written without one (a warning says so).
 */
async function codeCache(loader, program) {
  const dir = mkdtempSync(join(tmpdir(), 'gitops-bot-bundle-'));
  const file = join(dir, 'gitops-bot.mjs');
  writeFileSync(file, loader);
  writeFileSync(join(dir, 'gitops-bot.data'), programData(program, Buffer.alloc(0)));
  const sandbox = spawn(process.execPath, [file, 'sandbox', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let said = '';
    const url = await new Promise((resolve, reject) => {
      const lines = (b) => {
        said += b;
        const ready = /sandbox ready: (\S+)/.exec(said);
        if (ready) resolve(ready[1]);
      };
      sandbox.stdout.on('data', lines);
      sandbox.stderr.on('data', lines);
      sandbox.on('exit', () => reject(new Error(`the sandbox did not start: ${said.trim()}`)));
      setTimeout(() => reject(new Error(`the sandbox did not start in 30 s: ${said.trim()}`)), 30_000).unref();
    });
    const cache = join(dir, 'code-cache');
    // V8 checks the cache against its flags: made without NODE_OPTIONS, as the image runs
    const { NODE_OPTIONS: _, ...env } = process.env;
    const promotion = ['promote', '--project', 'root/helloworld-ops', '--file', 'deployment.yml'];
    await promisify(execFile)(
      process.execPath,
      [file, ...promotion, '--image', 'registry.example.com/root/helloworld', '--tag', 'ci-34', '--assignee', 'operator', '--json'],
      { env: { ...env, GITLAB_URL: url, GITOPS_BOT_TOKEN: 'gitops-bot-token', GITOPS_BOT_CODE_CACHE_OUT: cache }, timeout: 60_000 },
    );
    return readFileSync(cache);
  } catch (e) {
    process.stderr.write(`bundle: warning: no V8 code cache (fresh processes start slower): ${e.message}\n`);
    return Buffer.alloc(0);
  } finally {
    if (sandbox.exitCode === null && sandbox.signalCode === null) {
      sandbox.kill('SIGTERM');
      await once(sandbox, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function write(file, text, mode = 0o755) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text, { mode });
  process.stderr.write(`bundle: ${file} (${(Buffer.byteLength(text) / 1024).toFixed(0)} KiB)\n`);
}

/** gitops-bot.data, as scripts/loader.mjs reads it: both lengths (uint32 LE), the program, the cache. */
function programData(program, cache) {
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32LE(program.length, 0);
  lengths.writeUInt32LE(cache.length, 4);
  return Buffer.concat([lengths, program, cache]);
}

// The CLI, also the container image's entry: the loader (dist/gitops-bot.mjs), and beside
// it dist/gitops-bot.data, the program as CommonJS (compiled with vm.Script: an ES module
// from a data: URL spent 65 ms parsing the URL) with its V8 code cache. The image copies
// both. `import.meta.url` in the program is the loader's URL, passed in.
const program = await bundle('src/bundle.ts', 'cjs', { 'import.meta.url': '__gitopsBotUrl' });
const loader = readFileSync(new URL('./loader.mjs', import.meta.url), 'utf8')
  .replace(/^\/\/( .*)?\n/gm, (line) => (line.startsWith('// gitops-bot,') ? line : ''))
  .replace("'%VERSION%'", JSON.stringify(pkg.version));
const cache = await codeCache(loader, program);
write(out('dist/gitops-bot.mjs'), loader);
write(out('dist/gitops-bot.data'), programData(program, cache), 0o644);

// The GitHub Action's entry: a plain ES module bundle (its start-up is the runner's, not ours).
write(out('action/dist/index.mjs'), `#!/usr/bin/env node\n${(await bundle('src/action/main.ts', 'esm')).toString('utf8')}`);

// tsc does not keep src/cli.ts's mode: `npx gitops-bot` in the repository needs dist/src/cli.js's x bits.
const cli = new URL('../dist/src/cli.js', import.meta.url);
if (existsSync(cli)) chmodSync(cli, 0o755);
