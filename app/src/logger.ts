// Logging: pino JSON lines on stdout, one child logger per module.
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger };

/** The root logger; modules take `logger.child({ module: '<name>' })`. */
export function createLogger(level: LogLevel, podName: string): Logger {
  return pino({
    level,
    base: { pod: podName },
    // Level as a word ("info"), not pino's number, so log queries read naturally.
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
