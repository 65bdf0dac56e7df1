// Structured logs (pino, JSON lines on stderr) for what a person debugging a run wants to
// see. Tokens never reach them: redact covers every place a token can sit in what we log.
//
// Quiet by default: promote, gate, set-image and the others print their own human output,
// and log lines would only clutter it (GITOPS_BOT_LOG_LEVEL=warn shows retries). `serve`
// has no other output, so it logs at `info` unless GITOPS_BOT_LOG_LEVEL says otherwise
// (useDefaultLevel), alerts at `error`.
import pino from 'pino';

export const REDACT_PATHS = [
  'token',
  '*.token',
  'privateToken',
  '*.privateToken',
  'secret',
  '*.secret',
  'signingToken',
  '*.signingToken',
  'password',
  '*.password',
  'headers.authorization',
  'headers["private-token"]',
  'headers["job-token"]',
  'headers["x-gitlab-token"]',
  '*.headers.authorization',
  '*.headers["private-token"]',
  '*.headers["job-token"]',
  '*.headers["x-gitlab-token"]',
];

const LEVELS = new Set([...Object.keys(pino.levels.values), 'silent']);
const fromEnv = process.env.GITOPS_BOT_LOG_LEVEL?.trim().toLowerCase() || undefined;
const badEnv = fromEnv !== undefined && !LEVELS.has(fromEnv);

export const log = pino(
  {
    name: 'gitops-bot',
    level: fromEnv && !badEnv ? fromEnv : 'silent',
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
  },
  pino.destination(2),
);

let warned = false;
/**
 * The level of a command that logs by default (serve: `info`). GITOPS_BOT_LOG_LEVEL, when set
 * to a level, still wins; an unknown one is reported once and the default used.
 */
export function useDefaultLevel(level: pino.LevelWithSilent): void {
  if (badEnv && !warned) {
    warned = true;
    process.stderr.write(
      `gitops-bot: GITOPS_BOT_LOG_LEVEL='${fromEnv}' is not a level (${[...LEVELS].join(', ')}); using ${level}\n`,
    );
  }
  if (!fromEnv || badEnv) log.level = level;
}
