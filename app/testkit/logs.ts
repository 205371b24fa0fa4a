// A logger whose JSON lines land in an array, for tests that assert what the
// service logs (and what it must never log).
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../src/logger.js';
import type { LogLevel } from '../src/settings.js';

export function capturingLogger(level: LogLevel = 'info'): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger(level, 'test', stream), lines };
}
