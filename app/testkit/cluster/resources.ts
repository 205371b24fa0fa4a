// What each process of a local run costs: peak RSS and CPU (cores, over each
// sampling interval) of every replica and of nginx (master and workers
// together), read from /proc, and the fastest a replica gained connections,
// the reconnects a surviving pod absorbed while a neighbour drained.
import { CLOCK_TICKS_PER_SECOND, cpuTicks, rssBytes } from '../proc.js';
import type { Sample } from './local-cluster.js';

export interface ProcessCost {
  readonly peakRssBytes: number;
  /** The most CPU used over one sampling interval, in cores (1 = one core busy). */
  readonly peakCpuCores: number;
  readonly cpuSeconds: number;
}

/** Samples groups of processes (a replica, or nginx's master and workers) every `intervalMs`. */
export class ResourceSampler {
  readonly costs: Record<string, ProcessCost> = {};
  #last: Record<string, { at: number; ticks: Map<number, number> }> = {};
  #timer: NodeJS.Timeout;

  constructor(
    private readonly groups: () => Record<string, number[]>,
    intervalMs = 1000,
  ) {
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  sample(): void {
    const now = performance.now();
    for (const [name, pids] of Object.entries(this.groups())) {
      let rss = 0;
      const ticks = new Map<number, number>();
      for (const pid of pids) {
        try {
          rss += rssBytes(pid);
          ticks.set(pid, cpuTicks(pid));
        } catch {
          // the process exited between the listing and the read
        }
      }
      const previous = this.#last[name];
      // Only processes seen both times count, so a worker that left or came takes no jump with it.
      let delta = 0;
      for (const [pid, t] of ticks) delta += t - (previous?.ticks.get(pid) ?? t);
      const seconds = previous ? (now - previous.at) / 1000 : 0;
      const cost = this.costs[name] ?? { peakRssBytes: 0, peakCpuCores: 0, cpuSeconds: 0 };
      this.costs[name] = {
        peakRssBytes: Math.max(cost.peakRssBytes, rss),
        peakCpuCores: seconds > 0 ? Math.max(cost.peakCpuCores, delta / CLOCK_TICKS_PER_SECOND / seconds) : cost.peakCpuCores,
        cpuSeconds: cost.cpuSeconds + delta / CLOCK_TICKS_PER_SECOND,
      };
      this.#last[name] = { at: now, ticks };
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/**
 * The fastest any replica gained connections over `windowMs` from `since` on
 * (ms since the cluster started): during a rollout, the reconnects of a
 * draining pod's clients that one surviving pod absorbed.
 */
export function peakAbsorbRate(samples: readonly Sample[], since: number, windowMs = 1000): { replica: string; perSecond: number; t: number } | undefined {
  let best: { replica: string; perSecond: number; t: number } | undefined;
  const after = samples.filter((s) => s.t >= since);
  for (let i = 0; i < after.length; i++) {
    const end = after[i]!;
    // The latest sample at least `windowMs` before this one.
    let j = i;
    while (j > 0 && end.t - after[j]!.t < windowMs) j--;
    const start = after[j]!;
    if (start === end || end.t - start.t < windowMs) continue;
    for (const [replica, count] of Object.entries(end.connections)) {
      const before = start.connections[replica];
      if (before === undefined) continue; // a new replica's first clients are not reconnects it absorbed while serving
      const perSecond = ((count - before) * 1000) / (end.t - start.t);
      if (best === undefined || perSecond > best.perSecond) best = { replica, perSecond, t: end.t };
    }
  }
  return best;
}
