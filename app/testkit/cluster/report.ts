// Run reports: JSON with every figure, a Markdown summary, and an SVG plot of
// connections per replica over time with the rollout events marked, drawn by
// Vega-Lite (rendered headless by Vega, no browser needed).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { Place } from '../dashboard.js';
import { legendOf } from '../dashboard.js';
import type { LoadTotals } from '../load.js';
import type { ClusterEvent, Sample } from './local-cluster.js';
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
  writeFileSync(svg, await connectionsPlot(report));
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
    ['clients', String(t.clients)],
    ['messages sent', String(t.sent)],
    ['echoed', String(t.echoed)],
    ['**lost**', `**${t.lost}**`],
    ["resent after a cut (lost without the client's resend)", String(t.resent)],
    ['duplicated', String(t.duplicated)],
    ['corrupted / out of order', `${t.corrupted} / ${t.outOfOrder}`],
    ['**abnormal closes** (1006)', `**${t.abnormalCloses}**`],
    ['**failed upgrades** seen by clients', `**${t.failedUpgrades}**`],
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
    ...(promql.length > 0 ? ['PromQL evaluated against the real Prometheus scraping the replicas:', '', ...promql, ''] : []),
    `![connections per replica](${plot})`,
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

/** The last two dash-separated parts of a pod name ("7d9f8c6b5a-x2k4q"): enough to tell replicas apart. */
function shortName(pod: string): string {
  return pod.split('-').slice(-2).join('-');
}

function ms(value: number): string {
  return `${Math.round(value)} ms`;
}
