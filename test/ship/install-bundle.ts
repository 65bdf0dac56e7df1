// The bundle as the image installs it: the loader (dist/gitops-bot.mjs) and its data file
// (dist/gitops-bot.data, the program and its V8 code cache) alone in a folder of their own.
import { chmod, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The installed loader's path; `readOnly`: files the process cannot write, as in the image. */
export async function installBundle(opts: { readOnly?: boolean } = {}): Promise<string> {
  const dir = await tempDir();
  for (const [file, mode] of [
    ['gitops-bot.mjs', 0o555],
    ['gitops-bot.data', 0o444],
  ] as const) {
    await copyFile(join(ROOT, 'dist', file), join(dir, file));
    if (opts.readOnly) await chmod(join(dir, file), mode);
  }
  return join(dir, 'gitops-bot.mjs');
}
