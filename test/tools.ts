// Tests that need a system tool (buildah, docker-registry, rsync…) skip when it is missing,
// with the exact install line, so `npm test` works on a fresh machine. Under CI=true a
// missing tool is a failure instead: CI installs them (.ci/run), so a skip there would hide
// a broken pipeline.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Debian package for each tool (`apt-get install -y <package>`). */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  buildah: 'buildah',
  'docker-registry': 'docker-registry',
  rsync: 'rsync',
  openssl: 'openssl',
  skopeo: 'skopeo',
  umoci: 'umoci',
  git: 'git',
  // crypt(3) for docker-registry's bcrypt htpasswd entries (test/registry/docker-registry.ts)
  perl: 'perl-base',
};

/** Whether `tool` is an executable file in one of PATH's directories. */
export function onPath(tool: string, path = process.env.PATH ?? ''): boolean {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** The install line for the tools (their Debian packages, in the order given). */
export function installLine(tools: readonly string[]): string {
  const packages = [...new Set(tools.map((tool) => TOOL_PACKAGES[tool] ?? tool))];
  return `apt-get install -y ${packages.join(' ')}`;
}

/**
 * The reason a test skips for missing tools, from the tools that are missing and whether it
 * runs in CI: false when none is missing; in CI an Error to throw.
 */
export function skipDecision(missing: readonly string[], ci: boolean): string | false | Error {
  if (missing.length === 0) return false;
  const what = `${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not installed`;
  if (ci) return new Error(`${what} (CI=true: a missing tool fails, never skips): ${installLine(missing)}`);
  return `${what}: ${installLine(missing)}`;
}

const noted = new Set<string>();

/**
 * `test(name, { skip: skipUnless('buildah') }, …)`: false when every tool is on PATH; else
 * the skip message with the install line. With CI=true a missing tool throws instead.
 * node:test's summary counts skips (`skipped N`) but does not repeat their reasons, so the
 * first skip per missing tool set in a file also prints a note (the runner shows a test
 * file's stderr in its output).
 */
export function skipUnless(...tools: string[]): string | false {
  const missing = tools.filter((tool) => !onPath(tool));
  const decision = skipDecision(missing, process.env.CI === 'true');
  if (decision instanceof Error) throw decision;
  if (decision && !noted.has(decision)) {
    noted.add(decision);
    process.stderr.write(`gitops-bot tests: skipping what needs it, ${decision}\n`);
  }
  return decision;
}
