// Run reports: JSON with every figure, a Markdown summary, and an SVG plot of
// connections per replica over time with the rollout events marked, drawn by
// Vega-Lite (rendered headless by Vega, no browser needed).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { Manifest } from '../chart/k8s-schemas.js';
import type { Place } from '../dashboard.js';
import { legendOf } from '../dashboard.js';
import type { LoadTotals } from '../load.js';
import type { LoadProfile } from '../load-profile.js';
import type { ScaleDownMove, StepReaction } from './autoscale-report.js';
import type { AutoscalerSpec } from './autoscaler.js';
import type { AutoscalerDecision } from './autoscaler-controller.js';
import type { AutoscalerKind, ChartAutoscaler } from './from-chart.js';
import type { ClusterEvent, ReplicaCount, Sample } from './local-cluster.js';
import type { ProxyCapacity } from './nginx.js';
import type { ProcessCost } from './resources.js';

export interface PromqlCheck {
  /** When in the run it was evaluated. */
  readonly when: string;
  readonly adapter: { readonly query: string; readonly perPod: Record<string, number>; readonly live: Record<string, number>; readonly ok: boolean };
  readonly keda: {
    readonly query: string;
    readonly value: number;
    readonly live: number;
    readonly threshold: number;
    readonly desiredReplicas: number;
    readonly ok: boolean;
  };
}

/** One query of a dashboard panel over the run, as Prometheus answered it. */
export interface PanelQuery {
  readonly panel: string;
  /** Grafana's unit of the panel (bytes, ops, …), for the plot's axis. */
  readonly unit: string;
  /** A state panel's states by value (0: serving, …); empty for other panels. */
  readonly states: string[];
  readonly refId: string;
  readonly legendFormat: string;
  /** The PromQL with the dashboard's variables filled in for this cluster. */
  readonly query: string;
  /** Points are [ms since the cluster started, value]. */
  readonly series: { readonly labels: Record<string, string>; readonly points: [number, number][] }[];
}

/** The dashboard's queries run over the whole run (chart/dashboards/ws-echo.json). */
export interface DashboardRun {
  /** What the template variables were filled with. */
  readonly place: Place;
  readonly stepSeconds: number;
  /** Each query variable's values (Grafana's label_values) as Prometheus listed them. */
  readonly variables: Record<string, string[]>;
  readonly queries: PanelQuery[];
}

/** Mode autoscale: the autoscaler stand-in, the load profile, and what followed. Times are ms since the cluster started. */
export interface AutoscaleRun {
  readonly autoscaler: AutoscalerKind;
  /** The helm --set values the autoscaler was rendered with. */
  readonly sets: readonly string[];
  /** The HorizontalPodAutoscaler or ScaledObject as helm rendered it. */
  readonly rendered: Manifest;
  /** The HPA the stand-in ran, read from it. */
  readonly spec: AutoscalerSpec;
  readonly keda?: ChartAutoscaler['keda'];
  readonly syncPeriodSeconds: number;
  readonly profile: LoadProfile;
  readonly profileStart: number;
  /** Clients the profile wanted and clients connected, every quarter second. */
  readonly load: readonly { readonly t: number; readonly target: number; readonly connected: number }[];
  /** Every sync of the stand-in. */
  readonly decisions: readonly AutoscalerDecision[];
  /** Pods per state after every change. */
  readonly counts: readonly ReplicaCount[];
  readonly steps: readonly StepReaction[];
  readonly scaleDowns: readonly ScaleDownMove[];
  /** Every close the clients saw over the run, by code. */
  readonly closesByCode: Readonly<Record<string, number>>;
  /** Every upgrade a client saw fail: when, and the HTTP status (0: no response). */
  readonly failedUpgrades: readonly { readonly t: number; readonly status: number }[];
  /** Of the messages lost, those of clients that left (the profile falling) before they could reconnect and resend. */
  readonly lostByLeavingClients: number;
  /** Closes and failed upgrades per 5 s: [ms since the cluster started at the bucket's start, what, count]. */
  readonly clientEvents: readonly (readonly [number, string, number])[];
  /** max / mean of the serving pods' connections at each sample. */
  readonly imbalance: readonly { readonly t: number; readonly ratio: number }[];
}

/** One check of a run made of steps (k8s/e2e-kind.sh): what was asserted and what was seen. */
export interface StepCheck {
  readonly step: string;
  readonly verdict: 'passed' | 'FAILED';
  readonly detail: string;
}

export interface RunReport {
  readonly mode: string;
  readonly command: string;
  readonly settings: Record<string, unknown>;
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly totals: LoadTotals;
  readonly replicas: { readonly initial: string[]; readonly final: string[]; readonly allReplaced: boolean; readonly exitCodes: Record<string, number | null> };
  readonly events: ClusterEvent[];
  readonly connectionsPerReplica: Sample[];
  /** When the operation (rollout, scale-down, …) ran, in ms since the cluster started. */
  readonly operation: { readonly from: number; readonly to: number };
  readonly promql: PromqlCheck[];
  /** With Prometheus: every dashboard panel's queries over the run. */
  readonly dashboard?: DashboardRun;
  /** scale-up: max / mean of the replicas' connections over time, from the scale-up on. */
  readonly imbalance?: { readonly final: number; readonly series: { t: number; ratio: number }[]; readonly secondsToBelow1_25: number | undefined };
  /** kind runs: every check of every step, in order. */
  readonly steps?: readonly StepCheck[];
  /** What the run cost: the proxy's size, each process's peak RSS and CPU, the fastest a serving replica gained clients. */
  readonly capacity?: CapacityFigures;
  /** Mode autoscale. */
  readonly autoscale?: AutoscaleRun;
  readonly passed: boolean;
  readonly failures: string[];
}

/** Writes report.json, report.md, connections.svg and, with Prometheus, dashboard.svg into `dir`; returns their paths. */
export async function writeReport(report: RunReport, dir: string): Promise<{ json: string; markdown: string; svg: string; dashboard?: string }> {
  const json = join(dir, 'report.json');
  const markdown = join(dir, 'report.md');
  const svg = join(dir, 'connections.svg');
  // Pairs of numbers (the dashboard's [t, value] points) on one line each: a
  // run has thousands of them.
  writeFileSync(json, `${JSON.stringify(report, null, 2).replace(/\[\n\s*(-?[\d.e+-]+),\n\s*(-?[\d.e+-]+)\n\s*\]/g, '[$1, $2]')}\n`);
  writeFileSync(svg, report.autoscale ? await autoscalePlot(report) : await connectionsPlot(report));
  let dashboard: string | undefined;
  if (report.dashboard) {
    dashboard = join(dir, 'dashboard.svg');
    writeFileSync(dashboard, await dashboardPlot(report));
  }
  writeFileSync(markdown, summary(report, 'connections.svg', dashboard && 'dashboard.svg'));
  return { json, markdown, svg, ...(dashboard ? { dashboard } : {}) };
}

export interface CapacityFigures {
  readonly proxy: ProxyCapacity;
  /** Per replica, and "nginx" (master and workers together). */
  readonly processes: Record<string, ProcessCost>;
  readonly peakAbsorb: { replica: string; perSecond: number; t: number } | undefined;
}

function capacityRows(c: CapacityFigures): [string, string][] {
  const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;
  return [
    ['nginx workers × connections (worker_rlimit_nofile)', `${c.proxy.workerProcesses} × ${c.proxy.workerConnections} (${c.proxy.workerRlimitNofile})`],
    [
      'peak reconnects absorbed by a serving replica',
      c.peakAbsorb ? `${Math.round(c.peakAbsorb.perSecond)}/s (${shortName(c.peakAbsorb.replica)} at ${(c.peakAbsorb.t / 1000).toFixed(1)} s)` : 'none',
    ],
    ...Object.entries(c.processes).map(([name, p]): [string, string] => [
      `${name === 'nginx' ? 'nginx' : shortName(name)}: peak RSS / peak CPU / CPU time`,
      `${mb(p.peakRssBytes)} / ${p.peakCpuCores.toFixed(2)} cores / ${p.cpuSeconds.toFixed(1)} s`,
    ]),
  ];
}

/** The Markdown summary; `plot` and `dashboardPlot` are the plots' paths relative to where the Markdown will live. */
export function summary(report: RunReport, plot: string, dashboardPlot?: string): string {
  const t = report.totals;
  const rows: [string, string][] = [
    [report.autoscale ? 'clients (distinct, over the run)' : 'clients', String(t.clients)],
    ['messages sent', String(t.sent)],
    ['echoed', String(t.echoed)],
    ['**lost**', `**${t.lost}**`],
    ["resent after a cut (lost without the client's resend)", String(t.resent)],
    ['duplicated', String(t.duplicated)],
    ['corrupted / out of order', `${t.corrupted} / ${t.outOfOrder}`],
    ['**abnormal closes** (1006)', `**${t.abnormalCloses}**`],
    [
      '**failed upgrades** seen by clients',
      `**${t.failedUpgrades}**${
        t.failedUpgrades > 0 && t.failedUpgradeStatuses
          ? ` (HTTP ${Object.entries(t.failedUpgradeStatuses)
              .map(([status, n]) => `${status === '0' ? 'none' : status}×${n}`)
              .join(', ')})`
          : ''
      }`,
    ],
    [
      'close codes seen',
      Object.entries(t.closeCodes)
        .map(([code, n]) => `${code}×${n}`)
        .join(', ') || 'none',
    ],
    ['reconnects', String(t.reconnects)],
    ['reconnect gap p50 / p99 / max', `${ms(t.reconnectGapMs.p50)} / ${ms(t.reconnectGapMs.p99)} / ${ms(t.reconnectGapMs.max)}`],
    ['replicas before → after', `${report.replicas.initial.length} → ${report.replicas.final.length}${report.replicas.allReplaced ? ' (all replaced)' : ''}`],
    ...(report.capacity ? capacityRows(report.capacity) : []),
  ];
  if (report.imbalance) {
    rows.push(['imbalance (max / mean) at the end', report.imbalance.final.toFixed(2)]);
    rows.push([
      'time from scale-up to imbalance < 1.25 for good',
      report.imbalance.secondsToBelow1_25 === undefined ? 'never' : `${report.imbalance.secondsToBelow1_25.toFixed(1)} s`,
    ]);
  }
  const promql = report.promql.map(
    (p) =>
      `- ${p.when}: prometheus-adapter \`${p.adapter.query}\` → ${Object.entries(p.adapter.perPod)
        .map(([pod, v]) => `${shortName(pod)}=${v}`)
        .join(', ')} ` +
      `(live ${Object.values(p.adapter.live).join('/')}, ${p.adapter.ok ? 'match' : 'MISMATCH'}); ` +
      `KEDA \`${p.keda.query}\` → ${p.keda.value} (live ${p.keda.live}, ${p.keda.ok ? 'match' : 'MISMATCH'}; threshold ${p.keda.threshold} → ${p.keda.desiredReplicas} replica(s))`,
  );
  const steps = (report.steps ?? []).map((c) => `| ${c.step} | ${c.verdict} | ${c.detail.replaceAll('|', '\\|')} |`);
  return [
    `# ${report.settings.app === 'example' ? 'example app (examples/chat on ws-echo/graceful)' : 'ws-echo'} ${report.mode === 'kind' ? 'on kind' : `local ${report.mode}`}${report.settings.proxyMode === 'no-retry' ? ' through a proxy that does not retry' : ''}: ${report.passed ? 'PASSED' : 'FAILED'}`,
    '',
    `\`${report.command}\` — ${report.startedAt}, ${report.durationSeconds.toFixed(1)} s`,
    '',
    '| figure | value |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
    ...(report.failures.length > 0 ? ['Failures:', '', ...report.failures.map((f) => `- ${f}`), ''] : []),
    ...(steps.length > 0 ? ['| step | verdict | what was checked, what was seen |', '|---|---|---|', ...steps, ''] : []),
    ...(report.autoscale
      ? autoscaleSummary(
          report.autoscale,
          report.totals,
          Number(report.settings.ratePerClient),
          (report.settings.proxy as { nextUpstreamTries: number }).nextUpstreamTries,
        )
      : []),
    ...(promql.length > 0 ? ['PromQL evaluated against the real Prometheus scraping the replicas:', '', ...promql, ''] : []),
    report.autoscale ? `![load, replicas, connections per pod and imbalance over time](${plot})` : `![connections per replica](${plot})`,
    '',
    ...(dashboardPlot
      ? [
          "The dashboard's panels over the same run (chart/dashboards/ws-echo.json, each query run by the real Prometheus):",
          '',
          `![dashboard panels](${dashboardPlot})`,
          '',
        ]
      : []),
  ].join('\n');
}

/**
 * Vega-Lite: one line per replica, a vertical rule per SIGTERM/SIGKILL and
 * per replica added; for scale-up, the imbalance (max / mean) below it.
 */
export async function connectionsPlot(report: RunReport): Promise<string> {
  const points = report.connectionsPerReplica.flatMap((s) =>
    Object.entries(s.connections).map(([replica, connections]) => ({ t: s.t / 1000, replica: shortName(replica), connections })),
  );
  const marks = report.events
    .filter((e) => e.kind === 'sigterm' || e.kind === 'sigkill' || e.kind === 'added')
    .map((e) => ({ t: e.t / 1000, event: `${e.kind} ${shortName(e.replica)}`, kind: e.kind }));
  const seconds = { field: 't', type: 'quantitative', title: 'seconds since start' } as const;
  const connections = {
    width: 760,
    height: 300,
    layer: [
      {
        data: { values: marks },
        mark: { type: 'rule', strokeDash: [4, 3] },
        encoding: {
          x: seconds,
          color: {
            field: 'kind',
            type: 'nominal',
            scale: { domain: ['added', 'sigterm', 'sigkill'], range: ['#9ab', '#d62728', '#000'] },
            legend: { title: 'event' },
          },
        },
      },
      {
        data: { values: points },
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x: seconds,
          y: { field: 'connections', type: 'quantitative', title: 'open connections' },
          stroke: { field: 'replica', type: 'nominal', legend: { title: 'replica', labelLimit: 400 } },
        },
      },
    ],
    resolve: { scale: { color: 'independent' } },
  };
  const imbalance = report.imbalance && {
    width: 760,
    height: 120,
    layer: [
      {
        data: { values: report.imbalance.series.map((p) => ({ t: p.t / 1000, ratio: p.ratio })) },
        mark: { type: 'line', color: '#444' },
        encoding: { x: seconds, y: { field: 'ratio', type: 'quantitative', title: 'max / mean', scale: { domainMin: 1 } } },
      },
      {
        data: { values: [{ goal: 1.25 }] },
        mark: { type: 'rule', color: '#2ca02c', strokeDash: [2, 2] },
        encoding: { y: { field: 'goal', type: 'quantitative' } },
      },
    ],
  };
  const t = report.totals;
  const head = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Connections per replica: ${report.mode}`,
      subtitle: `${t.clients} clients, lost ${t.lost}, abnormal closes ${t.abnormalCloses}, failed upgrades ${t.failedUpgrades}`,
    },
    config: { background: 'white' },
  };
  // Object literals above widen their string literals; the shapes are Vega-Lite's, checked by compile().
  const spec = (
    imbalance ? { ...head, vconcat: [connections, imbalance], resolve: { scale: { x: 'shared' } } } : { ...head, ...connections }
  ) as vegaLite.TopLevelSpec;
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/**
 * The dashboard's panels over the run, one small plot per panel in the
 * dashboard's order, each query's series as Grafana's legend names them,
 * with the SIGTERMs, SIGKILLs and added replicas marked as on the
 * connections plot.
 */
export async function dashboardPlot(report: RunReport): Promise<string> {
  const dashboard = report.dashboard;
  if (!dashboard) throw new Error('the report has no dashboard queries (run with Prometheus)');
  const marks = report.events.filter((e) => e.kind === 'sigterm' || e.kind === 'sigkill' || e.kind === 'added').map((e) => ({ t: e.t / 1000, kind: e.kind }));
  const seconds = { field: 't', type: 'quantitative', title: 'seconds since start' } as const;
  const panels = [...new Set(dashboard.queries.map((q) => q.panel))].map((title) => {
    const queries = dashboard.queries.filter((q) => q.panel === title);
    const first = queries[0]!;
    const points = queries.flatMap((q) =>
      q.series.flatMap((s) => {
        const series = legendOf(q.legendFormat, s.labels, shortName) || q.refId;
        // Lines are drawn step-after: a point that repeats the one before adds nothing but bytes.
        const changes = s.points.filter(([, value], i, all) => i === 0 || i === all.length - 1 || value !== all[i - 1]![1]);
        return changes.map(([t, value]) => ({ t: t / 1000, series, value }));
      }),
    );
    const states = first.states.map((state, value) => `${value} ${state}`).join(', ');
    return {
      title: { text: states ? `${title} (${states})` : title, fontSize: 11 },
      width: 300,
      height: 110,
      layer: [
        {
          data: { values: marks },
          mark: { type: 'rule', strokeDash: [4, 3], color: '#bbb' },
          encoding: { x: seconds },
        },
        {
          data: { values: points },
          mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.2 },
          encoding: {
            x: seconds,
            y: {
              field: 'value',
              type: 'quantitative',
              title: states ? 'state' : first.unit,
              axis: { format: '~s' },
              // A panel whose values are all 0 gets an axis from 0 to 1, not an empty one.
              scale: points.some((p) => p.value !== 0) ? { zero: true } : { domain: [0, 1] },
            },
            stroke: {
              field: 'series',
              type: 'nominal',
              legend: { title: null, orient: 'bottom', columns: 2, labelLimit: 150, symbolSize: 40, labelFontSize: 9 },
            },
          },
        },
      ],
    };
  });
  const t = report.totals;
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Dashboard panels: ${report.mode}`,
      subtitle: `${t.clients} clients; queries of chart/dashboards/ws-echo.json with namespace=${dashboard.place.namespace}, pod=~${dashboard.place.pod}, rate interval ${dashboard.place.rateInterval}; dashed: SIGTERM, SIGKILL, replica added`,
    },
    config: { background: 'white', axisX: { grid: false } },
    columns: 3,
    concat: panels,
    resolve: { scale: { stroke: 'independent', y: 'independent' } },
  } as vegaLite.TopLevelSpec;
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** The Markdown of an autoscale run: the stand-in and what it ran, then how the replica count followed the load. */
function autoscaleSummary(run: AutoscaleRun, totals: LoadTotals, ratePerClient: number, tries: number): string[] {
  const metric = run.spec.metrics[0]!;
  const target = metric.averageValue;
  const seconds = (value: number | undefined): string => (value === undefined ? '–' : `${value.toFixed(1)} s`);
  const since = (t: number): string => `${(t / 1000).toFixed(1)} s`;
  const rules = (name: string, r: AutoscalerSpec['behavior']['scaleUp']): string =>
    `| ${name} | ${r.stabilizationWindowSeconds} s | ${r.policies.map((p) => `${p.value}${p.type === 'Percent' ? ' %' : ' pod(s)'} per ${p.periodSeconds} s`).join(', ')} | ${r.selectPolicy} | ${((r.tolerance ?? 0.1) * 100).toFixed(0)} % |`;
  const source =
    run.autoscaler === 'hpa'
      ? `the chart's HorizontalPodAutoscaler: Pods metric \`${metric.name}\`, AverageValue target ${target} per pod, read through the prometheus-adapter rule of \`k8s/prometheus-adapter-values.yaml\` from the real Prometheus`
      : `the HPA KEDA creates from the chart's ScaledObject: External metric \`${metric.name}\` = \`${run.keda!.query}\`, AverageValue target ${target} (the threshold; the HPA divides the value by status.replicas); KEDA's pollingInterval ${run.keda!.pollingIntervalSeconds} s governs its own checks (activation, 0 ↔ 1, which minReplicaCount ≥ 1 rules out)${run.keda!.useCachedMetrics ? ' and the cached value the HPA gets' : ', while the HPA asks its metrics server at every sync and, useCachedMetrics being off, KEDA queries Prometheus each time'}; ignoreNullValues ${String(run.keda!.ignoreNullValues)}`;
  const { options, plateaus } = run.profile;
  const levels = plateaus.map((p) => p.clients).join(' → ');
  const stepRows = run.steps.map(
    (s) =>
      `| ${since(s.changeAt)} | ${s.direction} to ${s.clients} | ${s.replicasBefore} → ${s.replicasAfter} | ${seconds(s.firstDecisionSeconds)} | ${seconds(s.desiredSeconds)} | ${seconds(s.servingSeconds)} | ${seconds(s.drainedSeconds)} | ${s.settled ? 'yes' : '**no**'} | ${s.closes['1012'] ?? 0} / ${s.closes['1013'] ?? 0} / ${s.closes['1000'] ?? 0} |`,
  );
  const downRows = run.scaleDowns.map(
    (d) =>
      `| ${since(d.t)} | ${d.from} → ${d.to} | ${d.victims.map((v) => `${shortName(v.pod)} (cost ${v.cost}, ${v.connections} open)`).join(', ')} | ${d.moved} | ${d.drained ?? '–'} | ${d.fewestPossible} | ${d.moved - d.fewestPossible} |`,
  );
  const moved = run.scaleDowns.reduce((n, d) => n + d.moved, 0);
  const fewest = run.scaleDowns.reduce((n, d) => n + d.fewestPossible, 0);
  const rescales = run.decisions.filter((d) => d.rescaled);
  const decisionRows = rescales.map((d) => {
    const p = d.proposals[0];
    const pods = p?.pods ? ` (${p.pods.ready} counted, ${p.pods.unready} pending, ${p.pods.missing} without a value, ${p.pods.ignored} terminating)` : '';
    return `| ${since(d.t)} | ${p?.current?.toFixed(1) ?? p?.error ?? '–'}${pods} | ${d.metricReplicas ?? '–'} | ${d.stabilized ?? '–'} | ${d.currentReplicas} → ${d.desiredReplicas} | ${d.ableToScale}, ${d.scalingLimited} |`;
  });
  const codes = Object.entries(run.closesByCode)
    .map(([code, n]) => `${code}×${n}`)
    .join(', ');
  return [
    '## The autoscaler',
    '',
    `A **stand-in** for kube-controller-manager's HorizontalPodAutoscaler controller (as the fake API server stands in for kube-apiserver): the documented algorithm (desired = ceil(current × value / target) over the pods' values, the tolerance, pods set aside when pending, missing a value or terminating, the behavior's stabilization windows and policies, minReplicas and maxReplicas), written after \`pkg/controller/podautoscaler\` (\`app/testkit/cluster/autoscaler.ts\`). It runs ${source}. It syncs every **${run.syncPeriodSeconds} s** (kube-controller-manager's --horizontal-pod-autoscaler-sync-period; 15 s by default) and sets spec.replicas; a ReplicaSet stand-in creates pods (they join nginx once ready) or deletes them in the ReplicaSet's order (not ready first, then the lowest pod-deletion-cost), each with its preStop and drain.`,
    '',
    `Rendered by \`helm template\` with \`${run.autoscaler === 'hpa' ? 'autoscaling.enabled=true' : 'keda.enabled=true'}\`, \`metrics.podMonitor.enabled=true\` and ${run.sets.map((v) => `\`${v}\``).join(', ')}: min ${run.spec.minReplicas}, max ${run.spec.maxReplicas} replicas.`,
    '',
    '| behavior | stabilization window | policies | select | tolerance |',
    '|---|---|---|---|---|',
    rules('scale-up', run.spec.behavior.scaleUp),
    rules('scale-down', run.spec.behavior.scaleDown),
    '',
    `Load profile: ${options.shape}, ${levels} clients, each sending ${ratePerClient} message(s) a second; ${options.startSeconds ?? options.holdSeconds} s at the start, ${options.holdSeconds} s at each level up, ${options.holdDownSeconds} s at each level down${options.shape === 'ramp' ? `, ramps of ${options.rampSeconds} s` : ''}: ${run.profile.durationSeconds} s.`,
    '',
    '## How the replica count followed the load',
    '',
    `Times are seconds from the moment the load began to change: to the first decision that changed spec.replicas, to the decision that set the count the level ended with, to the moment the Service had that many endpoints (and kept them to the end of the level), and, going down, to the exit of the last removed pod after its drain. The first decision comes at the first sync after Prometheus has scraped the new counts (up to one sync period, ${run.syncPeriodSeconds} s, plus a scrape), or, going down, after the scale-down window (${run.spec.behavior.scaleDown.stabilizationWindowSeconds} s) has let go of the higher recommendations; then the policies pace the rest.`,
    '',
    '| load change at | level | serving pods before → spec at the end | first decision | count set | endpoints reached | last drain over | settled | closes 1012 / 1013 / 1000 |',
    '|---|---|---|---|---|---|---|---|---|',
    ...stepRows,
    '',
    '## Clients moved by each scale-down',
    '',
    'A scale-down that must delete k of the n pods that are not terminating moves at least the clients of the k emptiest: **fewest possible** is the sum of the k smallest connection counts among the n, each read from the pod\'s own /metrics at the moment the ReplicaSet stand-in chose (a pod not yet serving counts 0). **Moved** is what the deleted pods held at that moment; **drain closed** is what their drains then closed with 1012 (their "drain started" count). The choice itself is made on the pod-deletion-cost annotations, which the pods refresh at most once a second here (30 s in the chart) and only on a 5 % change.',
    '',
    '| at | pods | deleted (pod-deletion-cost, open connections) | moved | drain closed | fewest possible | above the fewest |',
    '|---|---|---|---|---|---|---|',
    ...(downRows.length > 0 ? downRows : ['| – | no scale-down | | | | | |']),
    '',
    `Over the run: ${moved} clients moved by scale-downs, against ${fewest} at the fewest possible. Closes the clients saw: ${codes || 'none'} (1012: drains of removed pods; 1013: the rebalancer moving clients onto new pods; 1000: clients leaving as the profile falls); reconnects ${totals.reconnects}.`,
    ...failedUpgradesNote(run, totals, tries),
    '',
    '## Every decision that changed the count',
    '',
    `| at | metric (average per pod) | metric asks for | after the windows | spec.replicas | conditions |`,
    '|---|---|---|---|---|---|',
    ...rescales.map((_, i) => decisionRows[i]!),
    '',
  ];
}

/** When upgrades failed: when they did, what the pods were doing, and what was lost because of it. */
function failedUpgradesNote(run: AutoscaleRun, totals: LoadTotals, tries: number): string[] {
  if (run.failedUpgrades.length === 0) return [];
  const buckets = run.clientEvents.filter(([, what]) => what.startsWith('failed upgrade'));
  const spans: [number, number, number][] = [];
  for (const [t, , count] of buckets) {
    const last = spans.at(-1);
    if (last && t <= last[1]) {
      last[1] = t + 5000;
      last[2] += count;
    } else spans.push([t, t + 5000, count]);
  }
  const when = spans.map(([from, to, count]) => `${count} between ${(from / 1000).toFixed(0)} s and ${(to / 1000).toFixed(0)} s`).join(', ');
  const statuses = Object.entries(totals.failedUpgradeStatuses ?? {})
    .map(([status, n]) => `HTTP ${status === '0' ? 'none' : status}×${n}`)
    .join(', ');
  return [
    '',
    `**Failed upgrades: ${run.failedUpgrades.length}** (${statuses}): ${when}. A client whose upgrade fails retries with backoff and resends; ${run.lostByLeavingClients} of the ${totals.lost} messages lost belonged to clients that left (the profile falling) before they could reconnect. A shedding pod answers upgrades with 503 for nginx to retry another pod, but nginx tries at most ${tries} pods per upgrade (\`proxy_next_upstream_tries\`, the chart's \`ingress.nextUpstreamTries\`), so when ${tries} or more pods shed at once an upgrade can find only shedding pods. Here nginx hashes the affinity cookie consistently, so a client tries the same pods in the same order every time, and one whose first ${tries} pods all shed is refused at every attempt until the shedding ends; ingress-nginx draws its retries at random among the pods not yet tried (\`balancer/sticky_balanced.lua\`), so there each attempt fails with a probability instead (a client shed by one of 3 shedding pods out of 4, with 3 tries: 1 in 3).`,
  ];
}

/**
 * Vega-Lite, one time axis: the clients the profile wanted and those
 * connected; spec.replicas, the metric's proposal and the serving pods;
 * connections per pod against the target; the closes that moved clients
 * (1012 drains, 1013 rebalancing) and failed upgrades per 5 s; the
 * imbalance between serving pods.
 */
export async function autoscalePlot(report: RunReport): Promise<string> {
  const run = report.autoscale;
  if (!run) throw new Error('the report has no autoscale run');
  const end = report.connectionsPerReplica.at(-1)?.t ?? run.counts.at(-1)?.t ?? 0;
  const seconds = { field: 't', type: 'quantitative', title: 'seconds since start' } as const;
  const width = 760;
  const load = run.load.flatMap((p) => [
    { t: p.t / 1000, series: 'clients the profile wants', clients: p.target },
    { t: p.t / 1000, series: 'clients connected', clients: p.connected },
  ]);
  const counts = [...run.counts, ...(run.counts.length > 0 ? [{ ...run.counts.at(-1)!, t: end }] : [])];
  const replicas = counts.flatMap((c) => [
    { t: c.t / 1000, series: 'spec.replicas (set by the autoscaler)', replicas: c.spec },
    { t: c.t / 1000, series: 'serving (endpoints)', replicas: c.serving },
  ]);
  const proposals = run.decisions.filter((d) => d.metricReplicas !== undefined).map((d) => ({ t: d.t / 1000, proposal: d.metricReplicas }));
  const points = report.connectionsPerReplica.flatMap((s) =>
    Object.entries(s.connections).map(([replica, connections]) => ({ t: s.t / 1000, replica: shortName(replica), connections })),
  );
  const target = run.spec.metrics[0]!.averageValue;
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Autoscaling on connections (${run.autoscaler === 'hpa' ? 'HPA' : 'KEDA'} stand-in, target ${target} per pod, sync every ${run.syncPeriodSeconds} s)`,
      subtitle: `${report.totals.clients} clients over the run, lost ${report.totals.lost}, abnormal closes ${report.totals.abnormalCloses}, failed upgrades ${report.totals.failedUpgrades}`,
    },
    config: { background: 'white' },
    resolve: { scale: { x: 'shared', stroke: 'independent', strokeDash: 'independent', color: 'independent' } },
    vconcat: [
      {
        width,
        height: 110,
        data: { values: load },
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x: seconds,
          y: { field: 'clients', type: 'quantitative', title: 'clients' },
          stroke: { field: 'series', type: 'nominal', legend: { title: null, labelLimit: 300 } },
        },
      },
      {
        width,
        height: 110,
        layer: [
          {
            data: { values: replicas },
            mark: { type: 'line', interpolate: 'step-after' },
            encoding: {
              x: seconds,
              y: { field: 'replicas', type: 'quantitative', title: 'pods', axis: { tickMinStep: 1 } },
              stroke: { field: 'series', type: 'nominal', scale: { range: ['#d62728', '#1f77b4'] }, legend: { title: null, labelLimit: 300 } },
              strokeDash: {
                field: 'series',
                type: 'nominal',
                scale: {
                  range: [
                    [1, 0],
                    [4, 2],
                  ],
                },
                legend: null,
              },
            },
          },
          {
            data: { values: proposals },
            mark: { type: 'point', color: '#444', size: 18 },
            encoding: { x: seconds, y: { field: 'proposal', type: 'quantitative' } },
          },
        ],
        resolve: { scale: { stroke: 'independent' } },
      },
      {
        width,
        height: 220,
        layer: [
          {
            data: { values: points },
            mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.2 },
            encoding: {
              x: seconds,
              y: { field: 'connections', type: 'quantitative', title: 'open connections per pod' },
              stroke: { field: 'replica', type: 'nominal', legend: { title: 'pod', labelLimit: 300, columns: 2 } },
            },
          },
          {
            data: { values: [{ target }] },
            mark: { type: 'rule', color: '#2ca02c', strokeDash: [2, 2] },
            encoding: { y: { field: 'target', type: 'quantitative' } },
          },
        ],
      },
      {
        width,
        height: 90,
        data: { values: stacked(run.clientEvents) },
        mark: { type: 'rect', opacity: 0.85 },
        encoding: {
          x: seconds,
          x2: { field: 't2' },
          y: { field: 'top', type: 'quantitative', title: 'clients per 5 s' },
          y2: { field: 'bottom' },
          color: {
            field: 'what',
            type: 'nominal',
            legend: { title: null, labelLimit: 300 },
          },
        },
      },
      {
        width,
        height: 100,
        layer: [
          {
            data: { values: run.imbalance.map((p) => ({ t: p.t / 1000, ratio: p.ratio })) },
            mark: { type: 'line', color: '#444' },
            encoding: { x: seconds, y: { field: 'ratio', type: 'quantitative', title: 'max / mean (serving)', scale: { domainMin: 1 } } },
          },
          {
            data: { values: [{ goal: 1.25 }] },
            mark: { type: 'rule', color: '#2ca02c', strokeDash: [2, 2] },
            encoding: { y: { field: 'goal', type: 'quantitative' } },
          },
        ],
      },
    ],
  } as vegaLite.TopLevelSpec;
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** Per-bucket counts as stacked rectangles: each kind on top of the ones before it in the same bucket. */
function stacked(events: AutoscaleRun['clientEvents']): { t: number; t2: number; what: string; bottom: number; top: number }[] {
  const heights = new Map<number, number>();
  return events.map(([t, what, count]) => {
    const bottom = heights.get(t) ?? 0;
    heights.set(t, bottom + count);
    return { t: t / 1000, t2: t / 1000 + 5, what, bottom, top: bottom + count };
  });
}

/** The last two dash-separated parts of a pod name ("7d9f8c6b5a-x2k4q"): enough to tell replicas apart. */
function shortName(pod: string): string {
  return pod.split('-').slice(-2).join('-');
}

function ms(value: number): string {
  return `${Math.round(value)} ms`;
}
