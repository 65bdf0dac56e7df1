import { CommanderError } from 'commander';
import { ExitCode, ExitError } from '../model/exit-codes.js';

export { ExitCode };

/** An error the CLI reports as one line and turns into an exit code. */
export const CliError = ExitError;
export type CliError = ExitError;

/** How a command that threw ends: its exit code, its one line, and who prints that line. */
export interface Failure {
  exit: number;
  message: string;
  /** commander has already written its own message to stderr */
  printed: boolean;
}

/** The exit code and one-line message for whatever a command threw (pure: a table test). */
export function failureOf(e: unknown): Failure {
  if (e instanceof CommanderError) {
    // --help and --version end through here too, with code 0: that is no failure.
    const exit = e.exitCode === 0 ? 0 : ExitCode.USAGE;
    return { exit, message: e.message.replace(/^error: /, ''), printed: true };
  }
  if (e instanceof ExitError) return { exit: e.exitCode, message: e.message, printed: false };
  // GitLab errors are matched by name: importing the client here would slow every start.
  const gl = e as { name?: string; status?: number; message?: string };
  if (gl?.name === 'GitLabError' && (gl.status === 401 || gl.status === 403)) {
    const message =
      gl.status === 401
        ? 'GitLab rejected the token (401 Unauthorized): check GITOPS_BOT_TOKEN; it may be expired or revoked'
        : `the token lacks access: ${gl.message}`;
    return { exit: ExitCode.AUTH, message, printed: false };
  }
  return { exit: ExitCode.FAILURE, message: String(gl?.message ?? e), printed: false };
}

/** Whether the command line asks for JSON output (`--json` before any `--`). */
export function wantsJson(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--json');
}

/**
 * The line `--json` prints on stdout for a failure, so a pipeline parses every outcome:
 * `{"action":"error","exit":N,"message":"…"}` (the message is the stderr line's text).
 */
export function jsonFailureLine(f: Failure): string {
  return `${JSON.stringify({ action: 'error', exit: f.exit, message: f.message })}\n`;
}
