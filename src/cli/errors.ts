import { ExitCode } from '../model/exit-codes.js';

export { ExitCode };

/** An error the CLI reports as one line and turns into an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.FAILURE,
  ) {
    super(message);
  }
}
