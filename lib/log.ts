/** Logger factory: pino, JSON lines on stdout, level from LOG_LEVEL (default info). */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Pure: the level to use for a LOG_LEVEL value; an unknown value is an error naming the choices. */
export function logLevelFromEnv(value: string | undefined): (typeof LEVELS)[number] {
  const level = (value ?? 'info').trim().toLowerCase();
  if ((LEVELS as readonly string[]).includes(level)) return level as (typeof LEVELS)[number];
  throw new Error(`LOG_LEVEL=${value} is not a log level; use one of ${LEVELS.join(', ')}`);
}

export function createLogger(name: string, env: NodeJS.ProcessEnv = process.env): Logger {
  return pino({ name, level: logLevelFromEnv(env.LOG_LEVEL) });
}
