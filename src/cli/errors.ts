import { ExitCode, ExitError } from '../model/exit-codes.js';

export { ExitCode };

/** An error the CLI reports as one line and turns into an exit code. */
export const CliError = ExitError;
export type CliError = ExitError;
