// How the CLI ends a command that threw: the exit code, the one line, and --json's line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CommanderError } from 'commander';
import {
  CliError,
  ExitCode,
  type Failure,
  failureOf,
  jsonFailureLine,
  wantsJson,
} from '../../src/cli/errors.js';

const gitlabError = (status: number, message: string) =>
  Object.assign(new Error(message), { name: 'GitLabError', status });

test('failureOf: each kind of error, its exit code and message', () => {
  const cases: [string, unknown, Failure][] = [
    [
      'a CliError keeps its code',
      new CliError('deployment.yml: no such file', ExitCode.USAGE),
      { exit: 2, message: 'deployment.yml: no such file', printed: false },
    ],
    [
      'a CliError without a code is a failure',
      new CliError('boom'),
      { exit: 1, message: 'boom', printed: false },
    ],
    [
      'commander has printed its own message: usage',
      new CommanderError(1, 'commander.unknownOption', "error: unknown option '--bogus'"),
      { exit: 2, message: "unknown option '--bogus'", printed: true },
    ],
    [
      '--help is no failure',
      new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'),
      { exit: 0, message: '(outputHelp)', printed: true },
    ],
    [
      'GitLab 401: the token, in words',
      gitlabError(401, 'read project: 401 Unauthorized'),
      {
        exit: 8,
        message:
          'GitLab rejected the token (401 Unauthorized): check GITOPS_BOT_TOKEN; it may be expired or revoked',
        printed: false,
      },
    ],
    [
      'GitLab 403: lacks access',
      gitlabError(403, 'read project: 403 Forbidden'),
      { exit: 8, message: 'the token lacks access: read project: 403 Forbidden', printed: false },
    ],
    [
      'GitLab 500: a failure with its message',
      gitlabError(500, 'merge: 500 boom'),
      { exit: 1, message: 'merge: 500 boom', printed: false },
    ],
    [
      'anything else',
      new TypeError('x is undefined'),
      { exit: 1, message: 'x is undefined', printed: false },
    ],
    ['not even an Error', 'a string', { exit: 1, message: 'a string', printed: false }],
  ];
  for (const [name, e, want] of cases) assert.deepEqual(failureOf(e), want, name);
});

test('wantsJson: --json among the options, not after --', () => {
  const cases: [string[], boolean][] = [
    [['promote', '--json'], true],
    [['--json', 'images', 'a.yml'], true],
    [['promote'], false],
    [['sandbox', '--', '--json'], false],
    [['promote', '--jsonx'], false],
  ];
  for (const [args, want] of cases) assert.equal(wantsJson(args), want, args.join(' '));
});

test('jsonFailureLine: one line, action error, the exit code and message', () => {
  const line = jsonFailureLine({
    exit: 3,
    message: 'd.yml: image \'nginx\' is not referenced\n"quoted"',
    printed: false,
  });
  assert.equal(line.split('\n').length, 2, 'a newline in the message stays escaped');
  assert.deepEqual(JSON.parse(line), {
    action: 'error',
    exit: 3,
    message: 'd.yml: image \'nginx\' is not referenced\n"quoted"',
  });
});
