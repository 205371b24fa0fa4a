// The judging half of k8s/e2e-kind.sh (the script orchestrates kind, helm
// and kubectl; this decides): what the reference clients of a step must have
// seen, answers of Prometheus and the metrics APIs read from their JSON, and
// the run's report in the format `npm run rollout` writes.
import { percentile } from '../../src/client.js';
import type { LoadTotals } from '../load.js';
import type { Sample } from './local-cluster.js';
import type { RunReport, StepCheck } from './report.js';

/** What `e2e-kind.js load` writes when its clients stop: one step's load. */
export interface LoadRecord {
  readonly url: string;
  readonly clients: number;
  readonly ratePerClient: number;
  /** ms since the epoch. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly totals: LoadTotals;
  /** Every reconnect gap of every client, so that runs merge exactly. */
  readonly reconnectGapsMs: number[];
  /** Connected clients per replica (X-Served-By) each second; `at` in ms since the epoch. */
  readonly samples: { readonly at: number; readonly connections: Record<string, number> }[];
}

/**
 * restart: pods were replaced or removed under the clients, so they may be
 * closed, but only by a drain (1012) or the rebalancer (1013), besides their
 * own 1000 at the end, and at least `minReconnects` of them reconnect.
 * steady: nothing but the rebalancer may close them, and no client
 * reconnects for any other reason (a cut would).
 */
export type Expectation = 'restart' | 'steady';
export const EXPECTATIONS: readonly Expectation[] = ['restart', 'steady'];

/** The client's own close when it stops; every client ends with one. */
const CLIENT_CLOSE = '1000';
const SERVICE_RESTART = '1012';
/** The rebalancer moving a client to an emptier pod (app/src/rebalance.ts). */
const TRY_AGAIN_LATER = '1013';

export interface Verdict {
  readonly ok: boolean;
  /** One line: every figure the promise is about. */
  readonly summary: string;
  readonly problems: string[];
}

export function checkTotals(t: LoadTotals, expect: Expectation, minReconnects: number): Verdict {
  const problems: string[] = [];
  if (t.sent === 0) problems.push('no message was sent');
  if (t.lost > 0) problems.push(`${t.lost} messages lost`);
  if (t.echoed + t.lost !== t.sent) problems.push(`sent ${t.sent} but echoed ${t.echoed} and lost ${t.lost}`);
  if (t.corrupted > 0) problems.push(`${t.corrupted} corrupted echoes`);
  if (t.outOfOrder > 0) problems.push(`${t.outOfOrder} echoes out of order`);
  if (t.duplicated > 0) problems.push(`${t.duplicated} duplicated echoes`);
  if (t.abnormalCloses > 0) problems.push(`${t.abnormalCloses} abnormal closes (1006)`);
  if (t.failedUpgrades > 0) problems.push(`${t.failedUpgrades} failed upgrades seen by clients`);
  const allowed = expect === 'restart' ? [CLIENT_CLOSE, SERVICE_RESTART, TRY_AGAIN_LATER] : [CLIENT_CLOSE, TRY_AGAIN_LATER];
  const other = Object.entries(t.closeCodes).filter(([code, n]) => n > 0 && !allowed.includes(code));
  if (other.length > 0) problems.push(`closes other than ${allowed.join('/')}: ${codes(Object.fromEntries(other))}`);
  if (expect === 'restart' && t.reconnects < minReconnects) problems.push(`${t.reconnects} reconnects, fewer than the ${minReconnects} expected`);
  const shed = t.closeCodes[TRY_AGAIN_LATER] ?? 0;
  if (expect === 'steady' && t.reconnects > shed) problems.push(`${t.reconnects} reconnects for ${shed} rebalancer closes (1013): connections were cut`);
  const gaps = t.reconnectGapMs;
  const summary =
    `${t.clients} clients sent ${t.sent}, echoed ${t.echoed}, lost ${t.lost}, corrupted ${t.corrupted}, out of order ${t.outOfOrder}, ` +
    `duplicated ${t.duplicated}, abnormal closes ${t.abnormalCloses}, failed upgrades ${t.failedUpgrades}, ` +
    `reconnects ${t.reconnects}${expect === 'restart' ? ` (≥ ${minReconnects})` : ''}, closes ${codes(t.closeCodes) || 'none'}, ` +
    `reconnect gap p50 ${Math.round(gaps.p50)} ms / p99 ${Math.round(gaps.p99)} ms / max ${Math.round(gaps.max)} ms`;
  return { ok: problems.length === 0, summary, problems };
}

function codes(closeCodes: Record<string, number>): string {
  return Object.entries(closeCodes)
    .map(([code, n]) => `${code}×${n}`)
    .join(' ');
}

interface PrometheusAnswer {
  status?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

/** Prometheus /api/v1/query JSON → its samples; throws on an error answer. */
export function promqlSamples(json: string): { labels: Record<string, string>; value: number }[] {
  const answer = JSON.parse(json) as PrometheusAnswer;
  if (answer.status !== 'success' || answer.data === undefined) throw new Error(`Prometheus answered ${answer.error ?? json.slice(0, 200)}`);
  const { resultType, result } = answer.data;
  if (resultType === 'scalar') return [{ labels: {}, value: Number((result as [number, string])[1]) }];
  if (resultType !== 'vector') throw new Error(`expected an instant vector, got ${resultType}`);
  return (result as { metric: Record<string, string>; value: [number, string] }[]).map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
}

/** The sum of an instant query's samples (0 for an empty vector: no series matched). */
export function promqlValue(json: string): number {
  return promqlSamples(json).reduce((sum, s) => sum + s.value, 0);
}

/**
 * Whether the pods share the connections: at least `pods` of them, each with
 * at least `minShare` of the mean. `perPod` is websocket_connections_active by pod.
 */
export function balance(perPod: Record<string, number>, pods: number, minShare: number): { ok: boolean; text: string } {
  const counts = Object.values(perPod);
  const mean = counts.length === 0 ? 0 : counts.reduce((a, b) => a + b, 0) / counts.length;
  const text = `${Object.entries(perPod)
    .map(([pod, n]) => `${pod.split('-').slice(-2).join('-')}=${n}`)
    .join(', ')} (mean ${mean.toFixed(1)})`;
  return { ok: counts.length >= pods && mean > 0 && counts.every((n) => n >= minShare * mean), text };
}

/** Totals of several loads as if one: sums, and percentiles over every gap. */
export function mergeTotals(records: readonly LoadRecord[]): LoadTotals {
  const sum = (key: keyof LoadTotals & ('clients' | 'sent' | 'echoed' | 'lost' | 'resent' | 'duplicated' | 'corrupted' | 'outOfOrder')): number =>
    records.reduce((total, r) => total + r.totals[key], 0);
  const sumOf = (key: 'abnormalCloses' | 'failedUpgrades' | 'reconnects'): number => records.reduce((total, r) => total + r.totals[key], 0);
  const closeCodes: Record<string, number> = {};
  for (const r of records) for (const [code, n] of Object.entries(r.totals.closeCodes)) closeCodes[code] = (closeCodes[code] ?? 0) + n;
  const gaps = records.flatMap((r) => r.reconnectGapsMs);
  return {
    clients: sum('clients'),
    sent: sum('sent'),
    echoed: sum('echoed'),
    lost: sum('lost'),
    resent: sum('resent'),
    duplicated: sum('duplicated'),
    corrupted: sum('corrupted'),
    outOfOrder: sum('outOfOrder'),
    abnormalCloses: sumOf('abnormalCloses'),
    failedUpgrades: sumOf('failedUpgrades'),
    reconnects: sumOf('reconnects'),
    closeCodes,
    reconnectGapMs: { p50: percentile(gaps, 50), p99: percentile(gaps, 99), max: gaps.length ? Math.max(...gaps) : 0, count: gaps.length },
    slowestEchoMs: Math.max(0, ...records.map((r) => r.totals.slowestEchoMs)),
  };
}

/** checks.tsv (step, verdict, detail per line) as the script writes it. */
export function parseChecks(tsv: string): StepCheck[] {
  return tsv
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [step = '', verdict = '', ...detail] = line.split('\t');
      return { step, verdict: verdict === 'passed' ? 'passed' : 'FAILED', detail: detail.join('\t') };
    });
}

export function parseSettings(tsv: string): Record<string, string> {
  return Object.fromEntries(
    tsv
      .split('\n')
      .filter((line) => line.includes('\t'))
      .map((line) => [line.slice(0, line.indexOf('\t')), line.slice(line.indexOf('\t') + 1)]),
  );
}

export interface KindRun {
  readonly command: string;
  /** ISO time the run started. */
  readonly startedAt: string;
  /** What the script's exit said: it may fail without a FAILED check (an unexpected command failure). */
  readonly exitedCleanly: boolean;
  readonly settings: Record<string, string>;
  readonly checks: StepCheck[];
  /** Each step's load, by step name. */
  readonly loads: ReadonlyMap<string, LoadRecord>;
  readonly now?: number;
}

/** The run as a RunReport: totals over every step, clients per replica over time, each check. */
export function kindReport(run: KindRun): RunReport {
  const started = Date.parse(run.startedAt);
  const records = [...run.loads.values()].sort((a, b) => a.startedAt - b.startedAt);
  const failed = run.checks.filter((c) => c.verdict === 'FAILED');
  const failures = failed.map((c) => `${c.step}: ${c.detail}`);
  if (!run.exitedCleanly && failed.length === 0) failures.push('the script stopped before its last step without a FAILED check: see its output');
  // Loads of one step can overlap (autoscale: base and surge): add them up per second.
  const perSecond = new Map<number, Record<string, number>>();
  for (const r of records) {
    for (const s of r.samples) {
      const second = Math.round((s.at - started) / 1000);
      const bucket = perSecond.get(second) ?? {};
      for (const [replica, n] of Object.entries(s.connections)) bucket[replica] = (bucket[replica] ?? 0) + n;
      perSecond.set(second, bucket);
    }
  }
  const connectionsPerReplica: Sample[] = [...perSecond.entries()]
    .sort(([a], [b]) => a - b)
    .map(([second, connections]) => ({ t: second * 1000, connections }));
  const initial = Object.keys(connectionsPerReplica[0]?.connections ?? {});
  const final = Object.keys(connectionsPerReplica.at(-1)?.connections ?? {});
  return {
    mode: 'kind',
    command: run.command,
    settings: run.settings,
    startedAt: run.startedAt,
    durationSeconds: ((run.now ?? Date.now()) - started) / 1000,
    totals: mergeTotals(records),
    replicas: { initial, final, allReplaced: initial.length > 0 && initial.every((name) => !final.includes(name)), exitCodes: {} },
    events: [],
    connectionsPerReplica,
    promql: [],
    // A kind run is a sequence of steps, each its own operation: the whole run is shown as one.
    operation: { from: 0, to: connectionsPerReplica.at(-1)?.t ?? 0 },
    steps: run.checks,
    passed: run.exitedCleanly && failed.length === 0,
    failures,
  };
}
