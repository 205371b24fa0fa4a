// One local run: start the cluster, put the reference clients on it, do the
// operation (rollout, scale-down, kill, naive rollout), check the PromQL of
// k8s/ against Prometheus, and build the report.
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import { LocalCluster, type App, type DrainTimings, type RebalanceSettings, type Sample } from './local-cluster.js';
import { Load, type LoadTotals } from '../load.js';
import type { DashboardRun, PromqlCheck, RunReport } from './report.js';
import { chartValues } from '../chart/values.js';
import { queryPanels, readDashboard, substitute, type Place } from '../dashboard.js';
import { adapterQuery, kedaTrigger, proxySettingsFromChart, type ProxyMode } from './from-chart.js';
import { SCRAPE_INTERVAL_SECONDS, type Prometheus } from './prometheus.js';
import { proxyCapacity } from './nginx.js';
import { peakAbsorbRate, ResourceSampler } from './resources.js';

export const MODES = ['rollout', 'scale-down', 'scale-up', 'kill', 'naive'] as const;
export type Mode = (typeof MODES)[number];

export interface RunOptions {
  readonly mode: Mode;
  readonly replicas: number;
  readonly clients: number;
  /** Messages per second per client. */
  readonly rate: number;
  /** The run lasts at least this long; longer if the operation needs it (plus a short tail). */
  readonly durationSeconds: number;
  readonly drain: DrainTimings;
  /** Replicas after scale-down or scale-up. */
  readonly scaleTo: number;
  /** Rebalancing with the fleet view (as the chart deploys it); undefined turns it off. */
  readonly rebalance: RebalanceSettings | undefined;
  readonly prometheus: boolean;
  /** What stands in front of the replicas (default: retrying, as ingress-nginx). */
  readonly proxy?: ProxyMode;
  /** What the replicas run (default ws-echo). */
  readonly app?: App;
  readonly progress: boolean;
  /** Without the bar (stdout not a terminal), a progress line this often; undefined prints none. */
  readonly progressLineSeconds?: number;
  readonly dir: string;
  readonly command: string;
  /** Called with the proxy's URL once the clients are connected, before the operation (the browser check opens its page here). */
  readonly onReady?: (proxyUrl: string) => Promise<void> | void;
  /** Called after the operation and its tail, while the cluster still serves (the browser check reads its page here). */
  readonly beforeFinish?: () => Promise<void> | void;
}

const TAIL_SECONDS = 3;

export async function runScenario(options: RunOptions): Promise<RunReport> {
  const values = chartValues();
  const trigger = kedaTrigger();
  const cluster = await LocalCluster.start({
    replicas: options.replicas,
    release: trigger.deployment.replace(/-ws-echo$/, ''),
    namespace: trigger.namespace,
    drain: options.drain,
    proxy: proxySettingsFromChart(options.proxy ?? 'retry'),
    proxyCapacity: proxyCapacity(options.clients),
    naive: options.mode === 'naive',
    prometheus: options.prometheus,
    dir: options.dir,
    rebalance: options.rebalance,
    app: options.app ?? 'ws-echo',
  });
  const startedAt = new Date();
  const failures: string[] = [];
  const promql: PromqlCheck[] = [];
  let dashboard: DashboardRun | undefined;
  const operation = { from: 0, to: 0 };
  let load: Load | undefined;
  let bar: cliProgress.SingleBar | undefined;
  let phase = 'connecting';
  let totals: LoadTotals | undefined;
  /** ms since the cluster started when the clients stopped sending: later samples show them leaving. */
  let loadEnd = Infinity;
  const initial = cluster.serving.map((r) => r.name);
  // The proxy must not be what gives way: its own error ends the run at once, and says why.
  const proxyWatch = cluster.nginx.watchBottleneck();
  const orProxyError = <T>(work: Promise<T>): Promise<T> => Promise.race([work, proxyWatch.failed]);
  const resources = new ResourceSampler(() => ({
    ...Object.fromEntries(cluster.allReplicas.filter((r) => r.running && r.child.pid !== undefined).map((r) => [r.name, [r.child.pid!]])),
    nginx: cluster.nginx.pids(),
  }));
  let lines: NodeJS.Timeout | undefined;
  try {
    cluster.startSampling();
    // The example app relays within a room: a room per client makes it an echo the reference client can check.
    const path = options.app === 'example' ? '/rooms/{id}' : values.config.wsPath;
    load = new Load({ url: `${cluster.url}${path}`, clients: options.clients, rate: options.rate });
    if (options.progressLineSeconds !== undefined && !options.progress)
      lines = progressLines(options.progressLineSeconds, cluster, load, () => phase, Date.now());
    await orProxyError(load.open());
    load.startSending();
    const loadStart = Date.now();
    if (options.progress) bar = progressBar(options, cluster, load, () => phase, loadStart);

    phase = 'steady';
    await sleep(2500); // Prometheus scrapes every second: let it see the settled counts
    if (cluster.prometheus) promql.push(await checkPromql(cluster, 'before the operation'));
    await options.onReady?.(`http://127.0.0.1:${cluster.nginx.port}/`);

    phase = options.mode;
    operation.from = Date.now() - cluster.startedAt;
    if (options.mode === 'rollout' || options.mode === 'naive') await orProxyError(cluster.rolloutRestart());
    else if (options.mode === 'scale-down') await orProxyError(cluster.scaleDown(options.scaleTo));
    else if (options.mode === 'scale-up') await orProxyError(cluster.scaleUp(options.scaleTo));
    else await orProxyError(cluster.killOne());
    operation.to = Date.now() - cluster.startedAt;

    phase = 'tail';
    const remaining = options.durationSeconds * 1000 - (Date.now() - loadStart);
    await orProxyError(sleep(Math.max(TAIL_SECONDS * 1000, remaining)));
    if (cluster.prometheus) {
      promql.push(await checkPromql(cluster, `after the ${options.mode}`));
      dashboard = await dashboardQueries(cluster.prometheus, trigger.deployment, cluster.startedAt, Date.now());
    }
    await options.beforeFinish?.();
    loadEnd = Date.now() - cluster.startedAt;
    phase = 'settling';
    totals = await load.finish();
  } finally {
    bar?.stop();
    clearInterval(lines);
    proxyWatch.stop();
    resources.sample();
    resources.stop();
    if (totals === undefined) await load?.abort();
    await cluster.stop();
  }
  const proxyError = cluster.nginx.bottleneck();

  const final = cluster.serving.map((r) => r.name);
  const allReplaced = initial.every((name) => !final.includes(name));
  if (proxyError !== undefined) failures.push(`the proxy was the bottleneck: nginx says "${proxyError.trim()}"`);
  if (totals.lost > 0) failures.push(`${totals.lost} messages lost`);
  if (totals.abnormalCloses > 0) failures.push(`${totals.abnormalCloses} abnormal closes (1006)`);
  // Without retry a refused upgrade reaches the client by design: the promise there is that its backoff loses nothing.
  if (totals.failedUpgrades > 0 && options.proxy !== 'no-retry') failures.push(`${totals.failedUpgrades} failed upgrades seen by clients`);
  if (totals.duplicated + totals.corrupted + totals.outOfOrder > 0) failures.push('duplicated, corrupted or out-of-order echoes');
  if ((options.mode === 'rollout' || options.mode === 'naive') && !allReplaced) failures.push('not every replica was replaced');
  const samples = cluster.samples.filter((s) => s.t <= loadEnd);
  const imbalance = options.mode === 'scale-up' ? imbalanceAfter(cluster.events.find((e) => e.kind === 'added')?.t ?? 0, samples) : undefined;
  for (const check of promql) {
    if (!check.adapter.ok) failures.push(`prometheus-adapter query disagrees with the replicas ${check.when}`);
    if (!check.keda.ok) failures.push(`KEDA query disagrees with the replicas ${check.when}`);
  }
  const exitCodes = cluster.exitCodes;
  if (options.mode !== 'kill') {
    for (const [name, code] of Object.entries(exitCodes)) if (code !== 0) failures.push(`${name} exited with ${code}`);
  }
  return {
    mode: options.mode,
    command: options.command,
    settings: {
      app: options.app ?? 'ws-echo',
      proxyMode: options.proxy ?? 'retry',
      replicas: options.replicas,
      clients: options.clients,
      ratePerClient: options.rate,
      durationSeconds: options.durationSeconds,
      drain: options.drain,
      proxy: cluster.nginx.settings,
      scaleTo: options.mode === 'scale-down' || options.mode === 'scale-up' ? options.scaleTo : undefined,
      rebalance: options.rebalance ?? 'off',
    },
    startedAt: startedAt.toISOString(),
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    totals,
    replicas: { initial, final, allReplaced, exitCodes },
    events: cluster.events,
    connectionsPerReplica: samples,
    operation,
    promql,
    ...(dashboard ? { dashboard } : {}),
    ...(imbalance ? { imbalance } : {}),
    capacity: { proxy: cluster.nginx.capacity, processes: resources.costs, peakAbsorb: peakAbsorbRate(samples, operation.from) },
    passed: failures.length === 0,
    failures,
  };
}

/**
 * Imbalance (max / mean of the replicas' connections) at every sample from
 * `since` (ms) on, the time it first fell under 1.25 and stayed there, and
 * its value at the end (mean of the last three samples).
 */
export function imbalanceAfter(since: number, samples: readonly Sample[]): NonNullable<RunReport['imbalance']> {
  const series = samples
    .filter((s) => s.t >= since && Object.keys(s.connections).length > 0)
    .map((s) => {
      const counts = Object.values(s.connections);
      const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
      return { t: s.t, ratio: mean > 0 ? Math.max(...counts) / mean : 1 };
    });
  const last = series.slice(-3);
  const final = last.reduce((a, b) => a + b.ratio, 0) / Math.max(1, last.length);
  let settledAt: number | undefined;
  for (const point of series) {
    if (point.ratio < 1.25) settledAt ??= point.t;
    else settledAt = undefined;
  }
  return { final, series, secondsToBelow1_25: settledAt === undefined ? undefined : (settledAt - since) / 1000 };
}

/**
 * Runs every query of the dashboard's panels over [from, to] (ms since the
 * epoch) as Grafana would with this cluster selected: namespace and the
 * chart's "All pods" of the release, the chart's autoscaling target, and
 * $__rate_interval as Grafana derives it from the scrape interval and the
 * step. The query variables (label_values) are listed the same way.
 */
async function dashboardQueries(prometheus: Prometheus, deployment: string, from: number, to: number): Promise<DashboardRun> {
  const stepSeconds = SCRAPE_INTERVAL_SECONDS;
  const place: Place = {
    namespace: prometheus.namespace,
    pod: `${deployment}-.*`,
    hpaTarget: chartValues().autoscaling.targetConnectionsPerPod,
    rateInterval: `${Math.max(4 * SCRAPE_INTERVAL_SECONDS, stepSeconds + SCRAPE_INTERVAL_SECONDS)}s`,
  };
  const file = readDashboard();
  const variables: Record<string, string[]> = {};
  for (const variable of file.templating.list) {
    const call = /^label_values\((.+),\s*(\w+)\)$/.exec(variable.definition ?? '');
    if (variable.type !== 'query' || !call) continue;
    variables[variable.name] = await prometheus.labelValues(call[2]!, substitute(call[1]!, place), from, to);
  }
  const queries: DashboardRun['queries'] = [];
  for (const panel of queryPanels(file)) {
    const states = Object.entries(panel.fieldConfig?.defaults.mappings?.[0]?.options ?? {})
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([, mapping]) => mapping.text);
    for (const target of panel.targets ?? []) {
      const query = substitute(target.expr, place);
      const series = await prometheus.queryRange(query, from, to, stepSeconds);
      queries.push({
        panel: panel.title,
        unit: panel.fieldConfig?.defaults.unit ?? '',
        states,
        refId: target.refId,
        legendFormat: target.legendFormat,
        query,
        series: series.map((s) => ({ labels: s.labels, points: s.points.map(([t, value]) => [t - from, value] as [number, number]) })),
      });
    }
  }
  return { place, stepSeconds, variables, queries };
}

/**
 * Evaluates the adapter rule and the KEDA trigger and compares them with the
 * replicas' own counts, retrying for a few scrape intervals while Prometheus
 * catches up (a new target is scraped within a second or two of appearing).
 */
async function checkPromql(cluster: LocalCluster, when: string): Promise<PromqlCheck> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const check = await evaluatePromql(cluster, when);
    if ((check.adapter.ok && check.keda.ok) || Date.now() > deadline) return check;
    await sleep(500);
  }
}

async function evaluatePromql(cluster: LocalCluster, when: string): Promise<PromqlCheck> {
  const prometheus = cluster.prometheus!;
  const pods = cluster.serving.map((r) => r.name);
  const live: Record<string, number> = {};
  for (const replica of cluster.serving) live[replica.name] = (await replica.connections()) ?? -1;
  const adapter = adapterQuery(prometheus.namespace, pods);
  const perPod: Record<string, number> = {};
  for (const sample of await prometheus.query(adapter.query)) perPod[sample.labels.pod ?? '?'] = sample.value;
  const trigger = kedaTrigger();
  const kedaValue = (await prometheus.query(trigger.query))[0]?.value ?? NaN;
  const liveTotal = Object.values(live).reduce((a, b) => a + b, 0);
  return {
    when,
    adapter: { query: adapter.query, perPod, live, ok: pods.every((pod) => perPod[pod] === live[pod]) },
    keda: {
      query: trigger.query,
      value: kedaValue,
      live: liveTotal,
      threshold: trigger.threshold,
      // KEDA's HPA with metricType AverageValue: ceil(total / threshold).
      desiredReplicas: Math.ceil(kedaValue / trigger.threshold),
      ok: kedaValue === liveTotal,
    },
  };
}

/** One line every `seconds` for logs and pipes, where the bar cannot redraw itself. */
function progressLines(seconds: number, cluster: LocalCluster, load: Load, phase: () => string, since: number): NodeJS.Timeout {
  const timer = setInterval(() => {
    const totals = load.totals();
    const last = cluster.samples.at(-1);
    const replicas = last ? Object.entries(last.connections).map(([name, n]) => `${name.split('-').at(-1)}:${n}`) : [];
    console.log(
      `[${Math.round((Date.now() - since) / 1000)} s] ${phase()}: connected ${load.clients.filter((c) => c.connected).length}/${load.clients.length}, ` +
        `sent ${totals.sent}, echoed ${totals.echoed}, waiting ${totals.lost}, failed upgrades ${totals.failedUpgrades} | ${replicas.join(' ')}`,
    );
  }, seconds * 1000);
  timer.unref();
  return timer;
}

function progressBar(options: RunOptions, cluster: LocalCluster, load: Load, phase: () => string, since: number): cliProgress.SingleBar {
  const bar = new cliProgress.SingleBar(
    {
      format: '{bar} {elapsed}s/{durationSec}s {phase} | sent {sent} echoed {echoed} waiting {waiting} | {replicas}',
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(options.durationSeconds, 0, { phase: phase(), sent: 0, echoed: 0, waiting: 0, replicas: '', durationSec: options.durationSeconds });
  const timer = setInterval(() => {
    const totals = load.totals();
    const last = cluster.samples.at(-1);
    const replicas = last
      ? Object.entries(last.connections)
          .map(([name, n]) => `${name.split('-').at(-1)}:${n}`)
          .join(' ')
      : '';
    const elapsed = Math.round((Date.now() - since) / 1000);
    bar.setTotal(Math.max(options.durationSeconds, elapsed));
    bar.update(elapsed, { phase: phase(), sent: totals.sent, echoed: totals.echoed, waiting: totals.lost, replicas });
  }, 250);
  timer.unref();
  const stop = bar.stop.bind(bar);
  bar.stop = () => {
    clearInterval(timer);
    stop();
  };
  return bar;
}
