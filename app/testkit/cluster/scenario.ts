// One local run: start the cluster, put the reference clients on it, do the
// operation (rollout, scale-down, kill, naive rollout, or a load profile
// under the autoscaler stand-in), check the PromQL of k8s/ against
// Prometheus, and build the report.
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import { LocalCluster, podLabels, type App, type DrainTimings, type RebalanceSettings, type Sample } from './local-cluster.js';
import { Load, type LoadTotals } from '../load.js';
import { clientsAt, loadProfile, type LoadProfile, type ProfileOptions } from '../load-profile.js';
import type { AutoscaleRun, DashboardRun, PromqlCheck, RunReport } from './report.js';
import { chartValues } from '../chart/values.js';
import { queryPanels, readDashboard, substitute, type Place } from '../dashboard.js';
import {
  adapterQuery,
  autoscalerFromChart,
  kedaTrigger,
  proxySettingsFromChart,
  type AutoscalerKind,
  type ChartAutoscaler,
  type ProxyMode,
} from './from-chart.js';
import { AutoscalerController } from './autoscaler-controller.js';
import { scaleDownMoves, servingImbalance, stepReactions } from './autoscale-report.js';
import { SCRAPE_INTERVAL_SECONDS, type Prometheus } from './prometheus.js';
import { proxyCapacity } from './nginx.js';
import { peakAbsorbRate, ResourceSampler } from './resources.js';

export const MODES = ['rollout', 'scale-down', 'scale-up', 'kill', 'naive', 'autoscale'] as const;
export type Mode = (typeof MODES)[number];

/** The autoscale mode: the chart's autoscaler, run by the stand-in, under a load profile. */
export interface AutoscaleOptions {
  readonly autoscaler: AutoscalerKind;
  /** helm --set values for the render (target per pod, replica bounds, windows, …); the run's drain timings are added to them. */
  readonly sets: readonly string[];
  /** kube-controller-manager's --horizontal-pod-autoscaler-sync-period: seconds between the stand-in's syncs (15 in a real cluster). */
  readonly syncPeriodSeconds: number;
  readonly profile: ProfileOptions;
}

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
  /** Mode autoscale: the autoscaler and the load profile. */
  readonly autoscale?: AutoscaleOptions;
}

const TAIL_SECONDS = 3;

export async function runScenario(options: RunOptions): Promise<RunReport> {
  const values = chartValues();
  const trigger = kedaTrigger();
  let autoscaler: ChartAutoscaler | undefined;
  let profile: LoadProfile | undefined;
  if (options.mode === 'autoscale') {
    if (!options.autoscale || !options.prometheus)
      throw new Error('mode autoscale needs its autoscale options and Prometheus (the autoscaler reads its metric there)');
    const { drain } = options;
    autoscaler = await autoscalerFromChart(options.autoscale.autoscaler, [
      // The chart derives the scale-down period from the grace period, which these make.
      `drain.preStop.seconds=${drain.preStopSeconds}`,
      `drain.windowSeconds=${drain.windowSeconds}`,
      `drain.closeTimeoutSeconds=${drain.closeTimeoutSeconds}`,
      ...options.autoscale.sets,
    ]);
    profile = loadProfile(options.autoscale.profile);
  }
  const cluster = await LocalCluster.start({
    // A Deployment under an autoscaler runs minReplicas (the chart renders no count at the first install; the HPA raises it at once).
    replicas: autoscaler ? Math.max(1, autoscaler.spec.minReplicas) : options.replicas,
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
  let recording: AutoscaleRecording | undefined;
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
  // The autoscaler exists as soon as the release does: its syncs keep their own phase, unrelated to the load's steps.
  const controller =
    autoscaler &&
    new AutoscalerController({ cluster, autoscaler, syncPeriodSeconds: options.autoscale!.syncPeriodSeconds, selector: podLabels(cluster.options.release) });
  controller?.start();
  try {
    // A long profile is sampled less often: the report keeps every sample.
    cluster.startSampling(profile ? Math.min(1000, Math.max(250, (profile.durationSeconds * 1000) / 400)) : 250);
    // The example app relays within a room: a room per client makes it an echo the reference client can check.
    const path = options.app === 'example' ? '/rooms/{id}' : values.config.wsPath;
    load = new Load({ url: `${cluster.url}${path}`, clients: profile ? profile.options.from : options.clients, rate: options.rate });
    if (options.progressLineSeconds !== undefined && !options.progress)
      lines = progressLines(options.progressLineSeconds, cluster, load, () => phase, Date.now());
    await orProxyError(load.open());
    load.startSending();
    const loadStart = Date.now();
    if (options.progress)
      bar = progressBar(profile ? { ...options, durationSeconds: profile.durationSeconds } : options, cluster, load, () => phase, loadStart);

    phase = 'steady';
    await sleep(2500); // Prometheus scrapes every second: let it see the settled counts
    if (cluster.prometheus) promql.push(await checkPromql(cluster, 'before the operation'));
    await options.onReady?.(`http://127.0.0.1:${cluster.nginx.port}/`);

    phase = options.mode;
    operation.from = Date.now() - cluster.startedAt;
    if (options.mode === 'rollout' || options.mode === 'naive') await orProxyError(cluster.rolloutRestart());
    else if (options.mode === 'scale-down') await orProxyError(cluster.scaleDown(options.scaleTo));
    else if (options.mode === 'scale-up') await orProxyError(cluster.scaleUp(options.scaleTo));
    else if (options.mode === 'autoscale') recording = await orProxyError(runProfile(cluster, load, controller!, profile!));
    else await orProxyError(cluster.killOne());
    operation.to = Date.now() - cluster.startedAt;

    phase = 'tail';
    const remaining = options.durationSeconds * 1000 - (Date.now() - loadStart);
    await orProxyError(sleep(Math.max(TAIL_SECONDS * 1000, remaining)));
    if (cluster.prometheus) {
      promql.push(await checkPromql(cluster, `after the ${options.mode}`));
      // An autoscale run lasts minutes: its report plots the autoscaler's own figures instead of every panel.
      if (options.mode !== 'autoscale') dashboard = await dashboardQueries(cluster.prometheus, trigger.deployment, cluster.startedAt, Date.now());
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
    await controller?.stop().catch(() => {});
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
  const autoscale = recording && autoscaleRun(recording, autoscaler!, options.autoscale!, cluster, load, initial, samples);
  return {
    mode: options.mode,
    command: options.command,
    settings: {
      app: options.app ?? 'ws-echo',
      proxyMode: options.proxy ?? 'retry',
      replicas: autoscaler ? Math.max(1, autoscaler.spec.minReplicas) : options.replicas,
      clients: profile ? `${profile.options.from} → ${profile.options.peak} → ${profile.options.from} (${profile.options.shape})` : options.clients,
      ratePerClient: options.rate,
      durationSeconds: profile ? profile.durationSeconds : options.durationSeconds,
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
    ...(autoscale ? { autoscale } : {}),
    passed: failures.length === 0,
    failures,
  };
}

/** What an autoscale run recorded besides what the cluster keeps. */
interface AutoscaleRecording {
  readonly profile: LoadProfile;
  /** ms since the cluster started when the profile (and the autoscaler) started. */
  readonly profileStart: number;
  readonly load: { t: number; target: number; connected: number }[];
  readonly controller: AutoscalerController;
}

/**
 * Runs the load profile while the autoscaler stand-in syncs: the clients
 * follow clientsAt(t), the stand-in follows the clients. Returns once the
 * profile is over, the stand-in stopped, and every pod it started or
 * deleted is serving or gone.
 */
async function runProfile(cluster: LocalCluster, load: Load, controller: AutoscalerController, profile: LoadProfile): Promise<AutoscaleRecording> {
  const series: AutoscaleRecording['load'] = [];
  const started = Date.now();
  for (let elapsed = 0; elapsed < profile.durationSeconds; elapsed = (Date.now() - started) / 1000) {
    const target = clientsAt(profile, elapsed);
    series.push({ t: Date.now() - cluster.startedAt, target, connected: load.connected });
    if (target !== load.size) await load.resize(target);
    await sleep(250);
  }
  await controller.stop();
  await cluster.settled();
  return { profile, profileStart: started - cluster.startedAt, load: series, controller };
}

/** The autoscale section of the report, from the recording and the cluster's own records. */
function autoscaleRun(
  recording: AutoscaleRecording,
  autoscaler: ChartAutoscaler,
  options: AutoscaleOptions,
  cluster: LocalCluster,
  load: Load,
  initial: readonly string[],
  samples: readonly Sample[],
): AutoscaleRun {
  const closes = load.closes.map((c) => ({ t: c.at - cluster.startedAt, code: c.code }));
  const drainedBy = (pod: string): number | undefined => {
    const started = cluster.allReplicas.find((r) => r.name === pod)?.logs.find((l) => l.msg === 'drain started');
    return typeof started?.connections === 'number' ? started.connections : undefined;
  };
  const closesByCode: Record<string, number> = {};
  for (const close of closes) closesByCode[close.code] = (closesByCode[close.code] ?? 0) + 1;
  return {
    autoscaler: autoscaler.kind,
    sets: autoscaler.sets,
    rendered: autoscaler.rendered,
    spec: autoscaler.spec,
    ...(autoscaler.keda ? { keda: autoscaler.keda } : {}),
    syncPeriodSeconds: options.syncPeriodSeconds,
    profile: recording.profile,
    profileStart: recording.profileStart,
    load: recording.load,
    decisions: recording.controller.decisions,
    counts: cluster.counts,
    steps: stepReactions(recording.profile.plateaus, recording.profileStart, recording.controller.decisions, cluster.counts, cluster.events, closes),
    scaleDowns: scaleDownMoves(cluster.scaleDownChoices, drainedBy),
    closesByCode,
    failedUpgrades: load.failedUpgrades.map((f) => ({ t: f.at - cluster.startedAt, status: f.status })),
    lostByLeavingClients: load.lostByLeavingClients,
    clientEvents: perBucket([
      ...closes.filter((c) => c.code !== 1000).map((c) => ({ t: c.t, what: `close ${c.code}` })),
      ...load.failedUpgrades.map((f) => ({ t: f.at - cluster.startedAt, what: `failed upgrade (HTTP ${f.status || 'none'})` })),
    ]),
    imbalance: servingImbalance(samples, cluster.events, initial),
  };
}

/** Counts per 5 s bucket and kind: [bucket start (ms), kind, count], in time order. */
function perBucket(events: readonly { t: number; what: string }[], bucketMs = 5000): [number, string, number][] {
  const counts = new Map<string, [number, string, number]>();
  for (const event of events) {
    const start = Math.floor(event.t / bucketMs) * bucketMs;
    const key = `${start} ${event.what}`;
    const entry = counts.get(key) ?? [start, event.what, 0];
    entry[2]++;
    counts.set(key, entry);
  }
  return [...counts.values()].sort((a, b) => a[0] - b[0]);
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
