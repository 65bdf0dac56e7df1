// The work behind `gitops-bot images` and `set-image`, loaded only when one of them runs.

import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
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
import type { SetImageCliOptions } from './manifests.js';

/**
 * Larger files are refused rather than risking memory: manifests are kilobytes. The same
 * limit as promote's (src/promote/observe.ts, not imported: it would load the GitLab client
 * into every `images` run) and the README's; a test checks the two agree.
 */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

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
      ExitCode.INVALID_YAML,
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

export async function imagesAction(files: string[], opts: { json?: boolean }): Promise<void> {
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
}

export async function setImageAction(files: string[], opts: SetImageCliOptions): Promise<void> {
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
    // every file threw NotReferencedError here, in order
    const invalid = notReferenced.flatMap((e, i) =>
      e.invalid.map((v) => `'${v.value}' (${results[i].file}:${v.line})`),
    );
    throw new CliError(
      `image '${opts.image}' is not referenced in ${files.join(', ')}; ${found.length ? `found: ${found.join(', ')}` : 'no image references found'}${invalid.length ? `; not valid references: ${invalid.join(', ')}` : ''}`,
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
  if (opts.inPlace && !opts.dryRun) for (const r of changed) await writeAtomically(r.file, r.result!.text);
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
}
