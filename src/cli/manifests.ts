// `gitops-bot images` and `gitops-bot set-image`: the byte-exact edits on local files.

import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { createTwoFilesPatch } from 'diff';
import {
  findImages,
  InvalidReferenceError,
  NotReferencedError,
  type SetImageResult,
  SharedAnchorError,
  setImage,
  YamlSyntaxError,
} from '../manifests/index.js';
import { CliError, ExitCode } from './errors.js';

/** Larger files are refused rather than risking memory: manifests are kilobytes. */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** Reads a manifest as text, refusing what is not UTF-8 text, with the file named. */
export async function readManifest(file: string): Promise<string> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    throw new CliError(
      `${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  if (size > MAX_MANIFEST_BYTES) {
    throw new CliError(
      `${file}: ${size} bytes is over the ${MAX_MANIFEST_BYTES / 1024 / 1024} MiB limit for a manifest`,
    );
  }
  const bytes = await readFile(file);
  return decodeManifest(file, bytes);
}

export function decodeManifest(file: string, bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  if (nul >= 0)
    throw new CliError(`${file}: binary file (NUL byte at offset ${nul}), not YAML`, ExitCode.INVALID_YAML);
  if (!isUtf8(bytes)) {
    throw new CliError(
      `${file}: not valid UTF-8 (at byte ${firstInvalidUtf8(bytes)})`,
      ExitCode.INVALID_YAML,
    );
  }
  return bytes.toString('utf8');
}

function firstInvalidUtf8(bytes: Buffer): number {
  const decoded = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  const at = decoded.indexOf('\uFFFD');
  return at < 0 ? 0 : Buffer.byteLength(decoded.slice(0, at));
}

/** Maps the library's errors to the CLI's one-line messages and exit codes. */
export function manifestError(file: string, e: unknown): CliError {
  if (e instanceof CliError) return e;
  if (e instanceof YamlSyntaxError)
    return new CliError(`${file}:${e.line}:${e.column}: ${e.reason}`, ExitCode.INVALID_YAML);
  if (e instanceof InvalidReferenceError) return new CliError(e.message, ExitCode.USAGE);
  if (e instanceof NotReferencedError) return new CliError(`${file}: ${e.message}`, ExitCode.NOT_REFERENCED);
  if (e instanceof SharedAnchorError) return new CliError(`${file}: ${e.message}`, ExitCode.FAILURE);
  return new CliError(`${file}: ${(e as Error).message}`);
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.gitops-bot-${randomBytes(4).toString('hex')}`;
  const { mode } = await stat(file);
  await writeFile(tmp, text, { mode });
  await rename(tmp, file);
}

interface SetImageCliOptions {
  image: string;
  tag?: string;
  digest?: string;
  container?: string;
  inPlace?: boolean;
  diff?: boolean;
  followAnchor?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export function registerManifestCommands(program: Command): void {
  program
    .command('images')
    .description('list the image references in YAML files (manifests, kustomizations, Helm values)')
    .argument('<file...>', 'YAML files')
    .option('--json', 'print JSON: one object per reference, with file, kind, line, column, ranges')
    .addHelpText(
      'after',
      `
Kinds: container (pod template containers, initContainers, ephemeralContainers),
image (any other image: string), kustomize (kustomization images: entries),
helm (image: {registry, repository, tag} maps), flux (# {"$imagepolicy": ...} markers).

Example:
  $ gitops-bot images deployment.yml kustomization.yaml
`,
    )
    .action(async (files: string[], opts: { json?: boolean }) => {
      const all = [];
      for (const file of files) {
        const text = await readManifest(file);
        try {
          for (const ref of findImages(text, file)) all.push({ file, ...ref });
        } catch (e) {
          throw manifestError(file, e);
        }
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
        return;
      }
      for (const r of all) {
        const where = `${r.file}:${r.line}:${r.column}`;
        const extra = [r.container ? `container=${r.container}` : '', r.viaAlias ? `via *${r.viaAlias}` : '']
          .filter(Boolean)
          .join(' ');
        process.stdout.write(`${where}\t${r.kind}\t${r.value}${extra ? `\t${extra}` : ''}\n`);
      }
    });

  program
    .command('set-image')
    .description("set an image's tag and/or digest, changing only the bytes of those values")
    .argument('<file...>', 'YAML files')
    .requiredOption(
      '--image <repo>',
      'repository to change, without tag (e.g. registry.example.com/root/helloworld)',
    )
    .option('--tag <tag>', 'new tag (e.g. ci-34)')
    .option('--digest <digest>', 'pin a digest too: writes repo:tag@sha256:...')
    .option('--container <name>', 'only the container with this name')
    .option('--in-place', 'rewrite the files (atomically; nothing is written if any file fails)')
    .option('--diff', 'print a unified diff instead of the new content')
    .option('--dry-run', 'with --in-place: report what would change, write nothing')
    .option('--follow-anchor', 'also edit a value whose YAML anchor feeds other values')
    .option('--json', 'print the changes as JSON instead of content')
    .addHelpText(
      'after',
      `
With one FILE and neither --in-place nor --diff, the new content goes to stdout.
A tag-only bump of a reference pinned by digest removes the stale digest (and says so).

Exit codes: 0 changed or already at the target; 2 bad arguments; 3 the image is not
referenced in any FILE; 4 a FILE is not valid YAML; 1 anything else.

Examples:
  $ gitops-bot set-image deployment.yml --image registry.example.com/root/helloworld --tag ci-34 --diff
  $ gitops-bot set-image k8s/*.yml --image nginx --tag 1.27.3 --in-place
  $ gitops-bot set-image values.yaml --image ghcr.io/acme/api --tag 2.0.0 --digest sha256:... > values.new.yaml
`,
    )
    .action(async (files: string[], opts: SetImageCliOptions) => {
      if (opts.inPlace && opts.diff)
        throw new CliError('--in-place and --diff exclude each other', ExitCode.USAGE);
      if (files.length > 1 && !opts.inPlace && !opts.diff && !opts.json) {
        throw new CliError('with several files, pass --in-place, --diff or --json', ExitCode.USAGE);
      }
      if (opts.tag === undefined && opts.digest === undefined) {
        throw new CliError('give --tag, --digest or both', ExitCode.USAGE);
      }
      // Compute every file first: a failure in one leaves all of them untouched.
      const results: Array<{ file: string; before: string; result: SetImageResult | null }> = [];
      const notReferenced: NotReferencedError[] = [];
      for (const file of files) {
        const before = await readManifest(file);
        try {
          results.push({ file, before, result: setImage(before, { ...opts, path: file }) });
        } catch (e) {
          if (e instanceof NotReferencedError) {
            notReferenced.push(e);
            results.push({ file, before, result: null });
            continue;
          }
          throw manifestError(file, e);
        }
      }
      if (results.every((r) => r.result === null)) {
        const found = [...new Set(notReferenced.flatMap((e) => e.found.map((r) => r.repository)))];
        throw new CliError(
          `image '${opts.image}' is not referenced in ${files.join(', ')}; ${found.length ? `found: ${found.join(', ')}` : 'no image references found'}`,
          ExitCode.NOT_REFERENCED,
        );
      }
      const changed = results.filter((r) => r.result && r.result.text !== r.before);
      if (opts.json) {
        const out = results.map((r) => ({
          file: r.file,
          referenced: r.result !== null,
          changes: r.result?.changes ?? [],
          alreadyAtTarget: (r.result?.unchanged.length ?? 0) > 0 && !r.result?.changes.length,
        }));
        process.stdout.write(`${JSON.stringify({ changed: changed.length > 0, files: out }, null, 2)}\n`);
      } else if (opts.diff) {
        for (const r of changed) {
          process.stdout.write(
            createTwoFilesPatch(
              `a/${r.file.replace(/^\/+/, '')}`,
              `b/${r.file.replace(/^\/+/, '')}`,
              r.before,
              r.result!.text,
              '',
              '',
              {
                context: 3,
              },
            ),
          );
        }
      } else if (!opts.inPlace) {
        process.stdout.write(results[0].result?.text ?? results[0].before);
      }
      if (opts.inPlace && !opts.dryRun)
        for (const r of changed) await writeAtomically(r.file, r.result!.text);
      if (!opts.json) {
        for (const r of results) {
          for (const c of r.result?.changes ?? []) {
            const note = c.note ? ` (${c.note})` : '';
            process.stderr.write(`${r.file}:${c.line}: ${c.before} -> ${c.after}${note}\n`);
          }
          if (r.result && !r.result.changes.length)
            process.stderr.write(`${r.file}: already at ${opts.image}:${opts.tag ?? opts.digest}\n`);
        }
        if (opts.inPlace && opts.dryRun) process.stderr.write('dry run: no file written\n');
      }
    });
}
