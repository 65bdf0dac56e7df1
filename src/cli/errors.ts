// Exit codes are part of the interface: CI jobs branch on them. Documented in --help and
// the README; keep the three in step.
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NOT_REFERENCED: 3,
  INVALID_YAML: 4,
  /** promote refused an older tag */
  REFUSED: 5,
  /** gate: the approval rules do not pass */
  GATE_PENDING: 6,
  /** the image tag is not in the registry, or the registry refused us */
  IMAGE: 7,
  /** the token was rejected (401) or lacks access (403) */
  AUTH: 8,
} as const;

/** An error the CLI reports as one line and turns into an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.FAILURE,
  ) {
    super(message);
  }
}
