// Structured logs (pino, to stderr) for what a person debugging a run wants to see. Tokens
// never reach them: redact covers every place a token can sit in what we log.
import pino from 'pino';

export const REDACT_PATHS = [
  'token',
  '*.token',
  'privateToken',
  '*.privateToken',
  'headers.authorization',
  'headers["private-token"]',
  'headers["job-token"]',
  '*.headers.authorization',
  '*.headers["private-token"]',
  '*.headers["job-token"]',
];

export const log = pino(
  {
    name: 'gitops-bot',
    level: process.env.GITOPS_BOT_LOG_LEVEL ?? 'silent',
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
  },
  pino.destination(2),
);
