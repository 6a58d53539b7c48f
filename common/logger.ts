// Structured JSON logs (pino). Secrets are redacted by path; prompts and completions are never
// passed to the logger unless `logging.logContent` is on (callers check `contentLoggingEnabled`).
import { pino, type Logger } from 'pino';

export type { Logger };

const REDACT = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'headers["api-key"]',
  'req.headers["api-key"]',
  'headers["x-api-key"]',
  'req.headers["x-api-key"]',
  'apiKey',
  '*.apiKey',
  'token',
  '*.token',
  'adminToken',
  '*.adminToken',
  'secret',
  '*.secret',
];

/** `LOG_LEVEL` in the environment overrides the configured level. */
export function createLogger(service: string, configured = 'info'): Logger {
  const level = process.env.LOG_LEVEL || configured;
  return pino({
    level,
    base: { service, pid: process.pid },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A logger that drops everything: for tests that construct parts directly. */
export const silentLogger: Logger = pino({ level: 'silent' });
