// How promote and rollback end, alike: progress on stderr (none with --json), the MR's URL
// or one JSON line on stdout, exit 5 for a refusal, a PromoteError as its own exit code.
import type { PromoteResult } from '../promote/types.js';
import { CliError } from './errors.js';

/** commander's parser for a repeatable, comma-separating option (`--assignee a,b --assignee c`) */
export const list = (value: string, previous: string[] = []) => [
  ...previous,
  ...value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

export const progressTo = (json: boolean | undefined) => (line: string) => {
  if (!json) process.stderr.write(`gitops-bot: ${line}\n`);
};

export async function reportProposal(
  command: string,
  json: boolean | undefined,
  run: () => Promise<PromoteResult>,
): Promise<void> {
  const [{ log }, { PromoteError, PromoteExit }] = await Promise.all([
    import('../base/log.js'),
    import('../promote/types.js'),
  ]);
  try {
    const result = await run();
    log.info({ result: { ...result, changes: result.changes.length } }, `${command} finished`);
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else if (result.mr) process.stdout.write(`${result.mr.url}\n`);
    if (result.action === 'refused') process.exitCode = PromoteExit.REFUSED;
  } catch (e) {
    if (e instanceof PromoteError) throw new CliError(e.message, e.exitCode);
    throw e;
  }
}
