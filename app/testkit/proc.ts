// What Linux's /proc says about a process: the benchmark and the reliability
// suite measure servers by these.
import { readFileSync } from 'node:fs';

/** getconf CLK_TCK on Linux: the unit of cpuTicks. */
export const CLOCK_TICKS_PER_SECOND = 100;

/** utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** VmRSS of a process in bytes; throws once the process is gone (no /proc entry, or a zombie without VmRSS). */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`process ${pid} has no VmRSS: it has exited`);
  return Number(match[1]) * 1024;
}
