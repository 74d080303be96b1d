import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/**
 * Every field that can carry a secret, at any depth pino can address. Values, tokens,
 * keys and authorization headers are replaced before a line is written.
 */
export const redactPaths = [
  'value',
  'token',
  'secret',
  'password',
  'rootKey',
  'key',
  'jwt',
  'authorization',
  '*.value',
  '*.token',
  '*.secret',
  '*.password',
  '*.rootKey',
  '*.key',
  '*.jwt',
  '*.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'body.value',
  'body.token',
  'body.jwt',
];

export interface LoggerConfig {
  level?: string;
  name?: string;
  /** Where lines go; defaults to stdout. Tests pass a stream to inspect output. */
  destination?: pino.DestinationStream;
}

export function createLogger(config: LoggerConfig = {}): Logger {
  const options: LoggerOptions = {
    level: config.level ?? 'info',
    redact: { paths: redactPaths, censor: '[redacted]' },
    base: config.name ? { name: config.name } : {},
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return config.destination ? pino(options, config.destination) : pino(options);
}

/** A logger that writes nothing, for library code whose caller passed none. */
export const silentLogger: Logger = pino({ level: 'silent' });
