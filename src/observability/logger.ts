import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Paths that may hold secrets are censored wherever they appear, as a second line of defence:
 * code logs identities (iss, sub, namespace, role, jti), never tokens, PINs or keys.
 */
const REDACT = [
  'token',
  'subject_token',
  'actor_token',
  'access_token',
  'pin',
  'password',
  'privateKey',
  'authorization',
  '*.token',
  '*.subject_token',
  '*.actor_token',
  '*.access_token',
  '*.pin',
  '*.password',
  '*.privateKey',
  '*.authorization',
  'req.headers.authorization',
];

/**
 * The structured logger. Tests pass a `destination` to read what was logged.
 *
 * @example const logger = createLogger({ level: 'info' });
 */
export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'tessera' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination,
  );
}

/** A logger that drops everything, for library callers and tests that do not read logs. */
export const silentLogger = (): Logger => pino({ level: 'silent' });
