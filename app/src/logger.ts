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
      // Stack traces are for debugging: unless LOG_LEVEL is debug or trace, an
      // error is logged by its type, message and fields only, so the log
      // pipeline never receives file paths and library internals.
      serializers: { err: level === 'debug' || level === 'trace' ? pino.stdSerializers.err : (err: Error) => withoutStacks(pino.stdSerializers.err(err)) },
    },
    // Synchronous writes: we log rarely (never per message), and the last
    // lines before exit(0) must arrive whole and in order. With pino's async
    // default, the exit-time flush overtook a write still in flight.
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** A serialised error without its `stack` (nor those of the errors inside it). */
function withoutStacks(value: unknown, seen = new WeakSet<object>()): unknown {
  if (value === null || typeof value !== 'object' || seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => withoutStacks(v, seen));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) if (key !== 'stack') out[key] = withoutStacks(v, seen);
  return out;
}
