// The service's metrics as tests read them: a sample from Prometheus text by
// name and labels, and the names and types the registry exports.
import { DrainProgress } from '../src/drain.js';
import { Counters, createRegistry } from '../src/metrics.js';
import { OverloadStatus } from '../src/overload.js';
import { RebalanceStatus } from '../src/rebalance.js';

/** The value of one sample in Prometheus text, e.g. sampleOf(text, 'websocket_closes_total', { code: '1009' }). */
export function sampleOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = (match[2] ?? '').split(',').filter(Boolean);
    if (wanted.every((w) => present.includes(w)) && present.length === wanted.length) return Number(match[3]);
  }
  return undefined;
}

/** Metric names and types the service exports (name → 'gauge', 'counter', …), from the real registry. */
export async function exportedMetrics(): Promise<Map<string, string>> {
  const registry = createRegistry({
    counters: new Counters(),
    connections: { bufferedBytes: () => 0, pausedConnections: () => 0 },
    maxConnections: 1,
    drain: new DrainProgress(),
    rebalance: new RebalanceStatus(),
    overload: new OverloadStatus(),
    memoryLimitBytes: 0,
  });
  const metrics = await registry.getMetricsAsJSON();
  return new Map(metrics.map((m) => [m.name, String(m.type)]));
}
