// The Grafana dashboard (chart/dashboards/ws-echo.json) as the tests and the
// local cluster read it: its panels and their PromQL, with the dashboard's
// template variables filled in the way Grafana fills them, so the same
// queries run against a real Prometheus.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chartDir } from './paths.js';

export const DASHBOARD_FILE = join(chartDir, 'dashboards', 'ws-echo.json');

export interface DashboardTarget {
  readonly refId: string;
  readonly expr: string;
  readonly legendFormat: string;
}

export interface DashboardPanel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly description?: string;
  readonly datasource?: { type: string; uid: string };
  readonly gridPos: { h: number; w: number; x: number; y: number };
  readonly targets?: DashboardTarget[];
  readonly fieldConfig?: { defaults: { unit?: string; mappings?: { type: string; options: Record<string, { text: string }> }[] } };
}

export interface DashboardVariable {
  readonly type: string;
  readonly name: string;
  readonly query?: string | { query: string };
  readonly definition?: string;
  readonly allValue?: string;
  readonly regex?: string;
  readonly current?: unknown;
  readonly options?: unknown[];
}

export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: DashboardPanel[];
  readonly templating: { list: DashboardVariable[] };
  readonly [field: string]: unknown;
}

/** The repository's dashboard file, parsed. */
export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** Panels that query Prometheus (rows hold none). */
export function queryPanels(dashboard: Dashboard): DashboardPanel[] {
  return dashboard.panels.filter((p) => p.type !== 'row');
}

/** Where the queries run: what Grafana would put for each template variable. */
export interface Place {
  readonly namespace: string;
  /** A regular expression for the pod names, as Grafana puts the pod variable's "All". */
  readonly pod: string;
  /** The hpa_target variable: autoscaling.targetConnectionsPerPod. */
  readonly hpaTarget: number;
  /**
   * $__rate_interval: Grafana makes it max(4 × scrape interval, query step
   * + scrape interval), so that a rate always has two samples.
   */
  readonly rateInterval: string;
}

/** `expr` with every template variable replaced; throws on a variable Grafana would not know here. */
export function substitute(expr: string, place: Place): string {
  const values: Record<string, string> = {
    namespace: place.namespace,
    pod: place.pod,
    hpa_target: String(place.hpaTarget),
    __rate_interval: place.rateInterval,
  };
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    const value = values[name];
    if (value === undefined) throw new Error(`dashboard query uses $${name}, which is not one of its variables (${Object.keys(values).join(', ')}): ${expr}`);
    return value;
  });
}

/** Grafana's legend: `{{label}}` replaced by the series' label value (pods shortened by `short`). */
export function legendOf(format: string, labels: Record<string, string>, short: (pod: string) => string = (pod) => pod): string {
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_whole, name: string) => {
    const value = labels[name] ?? '';
    return name === 'pod' ? short(value) : value;
  });
}
