#!/usr/bin/env node
// gitops-bot's command line. Each command lives in src/cli/<name>.ts; this file wires them
// up and turns errors into one line on stderr (and with --json one on stdout) and a
// documented exit code.
import './startup.js';
import { Command } from 'commander';
import { registerChain } from './cli/chain.js';
import { failureOf, jsonFailureLine, wantsJson } from './cli/errors.js';
import { registerGate } from './cli/gate.js';
import { registerManifestCommands } from './cli/manifests.js';
import { registerPromote } from './cli/promote.js';
import { registerRetag } from './cli/retag.js';
import { registerRollback } from './cli/rollback.js';
import { registerSandbox } from './cli/sandbox.js';
import { registerStatus } from './cli/status.js';
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
  registerRollback(program);
  registerChain(program);
  registerRetag(program);
  registerGate(program);
  registerManifestCommands(program);
  registerSandbox(program);
  registerStatus(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const failure = failureOf(e);
    process.exitCode = failure.exit;
    if (failure.exit === 0) return;
    if (!failure.printed) process.stderr.write(`gitops-bot: ${failure.message}\n`);
    // --json: every outcome is one JSON line on stdout, a failure too (stderr keeps its line).
    if (wantsJson(argv.slice(2))) process.stdout.write(jsonFailureLine(failure));
  }
}

// `gitops-bot --help | head`: a reader that stops early is no error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
// Not a top-level await: the bundle (scripts/bundle.mjs) is CommonJS. main() catches all.
void main(process.argv);
