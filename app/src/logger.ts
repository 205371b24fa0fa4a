// Logging: pino JSON lines on stdout, one child logger per module.
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger };

/**
 * The root logger; modules take `logger.child({ module: '<name>' })`.
 * `destination` defaults to stdout; tests pass a stream to read the lines.
 */
export function createLogger(level: LogLevel, podName: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { pod: podName },
      // Level as a word ("info"), not pino's number, so log queries read naturally.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    // Synchronous writes: we log rarely (never per message), and the last
    // lines before exit(0) must arrive whole and in order. With pino's async
    // default, the exit-time flush overtook a write still in flight.
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
