import { readFileSync } from 'node:fs';

// Set by the bundler (scripts/bundle.mjs), which has no package.json beside its output.
declare const GITOPS_BOT_VERSION: string | undefined;

/** The package version: from the bundler, or read once from package.json (two levels above dist/src). */
export const VERSION: string = (() => {
  if (typeof GITOPS_BOT_VERSION === 'string') return GITOPS_BOT_VERSION;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    return String(pkg.version);
  } catch {
    return '0.0.0';
  }
})();
