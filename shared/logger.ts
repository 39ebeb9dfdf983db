import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** Structured JSON logs; every component gets a child logger with a `module` field. */
export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream): Logger {
  return destination
    ? pino({ level, base: { service: 'edgeplane' } }, destination)
    : pino({ level, base: { service: 'edgeplane' } });
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
