#!/usr/bin/env node
// gitops-bot's command line. Each command lives in src/cli/<name>.ts; this file wires them
// up and turns errors into one line on stderr and a documented exit code.
import './startup.js';
import { Command, CommanderError } from 'commander';
import { CliError, ExitCode } from './cli/errors.js';
import { registerGate } from './cli/gate.js';
import { registerManifestCommands } from './cli/manifests.js';
import { registerPromote } from './cli/promote.js';
import { registerRetag } from './cli/retag.js';
import { registerSandbox } from './cli/sandbox.js';
import { exitCodeHelp } from './model/exit-codes.js';
import { VERSION } from './version.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('gitops-bot')
    .description(
      'GitOps image promotion for GitLab: byte-exact manifest edits, merge requests, approval rules',
    )
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText('after', `\n${exitCodeHelp()}`);
  registerPromote(program);
  registerRetag(program);
  registerGate(program);
  registerManifestCommands(program);
  registerSandbox(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : ExitCode.USAGE;
      return;
    }
    if (e instanceof CliError) {
      process.stderr.write(`gitops-bot: ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    // GitLab errors are matched by name: importing the client here would slow every start.
    const gl = e as { name?: string; status?: number; message: string };
    if (gl.name === 'GitLabError' && (gl.status === 401 || gl.status === 403)) {
      process.stderr.write(
        gl.status === 401
          ? 'gitops-bot: GitLab rejected the token (401 Unauthorized): check GITOPS_BOT_TOKEN; it may be expired or revoked\n'
          : `gitops-bot: the token lacks access: ${gl.message}\n`,
      );
      process.exitCode = ExitCode.AUTH;
      return;
    }
    process.stderr.write(`gitops-bot: ${gl.message}\n`);
    process.exitCode = ExitCode.FAILURE;
  }
}

// `gitops-bot --help | head`: a reader that stops early is no error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
// Not a top-level await: the bundle (scripts/bundle.mjs) is CommonJS. main() catches all.
void main(process.argv);
