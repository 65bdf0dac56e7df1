// Exit codes are part of the interface: CI jobs branch on them. This table is the only
// place they are defined: the CLI, the GitHub Action, `--help` and (checked by a test) the
// README's table read it.

export const EXIT_CODES = [
  { name: 'OK', code: 0, meaning: 'done: changed, or nothing to do (already at the target)' },
  { name: 'FAILURE', code: 1, meaning: 'anything else that failed' },
  {
    name: 'USAGE',
    code: 2,
    meaning:
      'bad arguments or configuration: invalid tag, digest or repository (the message names the rule), missing file, unknown user, no token, an invalid --policy file',
  },
  {
    name: 'NOT_REFERENCED',
    code: 3,
    meaning: 'the image is not referenced in a given file (the message lists what is)',
  },
  {
    name: 'INVALID_YAML',
    code: 4,
    meaning:
      "a file is not valid YAML (`FILE:LINE:COL` and the parser's reason), not UTF-8 text, or over 16 MiB",
  },
  {
    name: 'REFUSED',
    code: 5,
    meaning:
      'promote refused: the tag is older than the one deployed or proposed, or it was rolled back from the environment (rejected there)',
  },
  { name: 'GATE_PENDING', code: 6, meaning: 'gate: the approval rules do not pass (yet)' },
  {
    name: 'IMAGE',
    code: 7,
    meaning:
      'the image tag is not in the registry (promote, retag), or it could not be verified with `--verify-image` / `--pin-digest`',
  },
  { name: 'AUTH', code: 8, meaning: 'GitLab rejected the token, or it lacks access to the ops project' },
] as const;

type Entry = (typeof EXIT_CODES)[number];

export const ExitCode = Object.fromEntries(EXIT_CODES.map((e) => [e.name, e.code])) as {
  readonly [E in Entry as E['name']]: E['code'];
};

/** The table for `--help`: one line a code, plain text. */
export function exitCodeHelp(): string {
  return `Exit codes:\n${EXIT_CODES.map((e) => `  ${e.code}  ${e.meaning.replace(/`/g, '')}`).join('\n')}\n`;
}

/** An error reported as one line, with the exit code it ends the command with. */
export class ExitError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.FAILURE,
  ) {
    super(message);
  }
}
