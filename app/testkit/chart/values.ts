// The one reader of chart/values.yaml (and of the YAML files beside it):
// the chart's defaults, a scenario's values merged over them as helm merges
// them, and a value by its dotted path.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { chartDir } from '../paths.js';

export type Values = Record<string, unknown>;

/** The parts of chart/values.yaml the tools read by name. */
export interface ChartValues extends Values {
  config: { wsPath: string; heartbeatIntervalSeconds: number; maxConnections: number };
  drain: { preStop: { seconds: number }; windowSeconds: number; closeTimeoutSeconds: number };
  ingress: {
    affinity: 'cookie' | 'hash' | 'none';
    sessionCookie: { name: string; maxAgeSeconds: number };
    hashBy: string;
    proxyTimeoutSeconds: number;
    nextUpstream: string;
    nextUpstreamTries: number;
  };
  resources: { limits: { memory: string } };
  autoscaling: { targetConnectionsPerPod: number };
}

export function readYaml<T>(path: string): T {
  return parse(readFileSync(path, 'utf8')) as T;
}

/** chart/values.yaml, the chart's defaults. */
export function chartValues(): ChartValues {
  return readYaml<ChartValues>(join(chartDir, 'values.yaml'));
}

/** chart/values.yaml with chart/ci/<scenario>-values.yaml merged over it, as helm does. */
export function scenarioValues(scenario: string): Values {
  return mergeValues(chartValues(), readYaml<Values | null>(join(chartDir, 'ci', `${scenario}-values.yaml`)) ?? {});
}

/** Helm's merge of values files: maps merge key by key, anything else (lists included) is replaced. */
export function mergeValues(base: Values, over: Values): Values {
  const out: Values = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isMap(value) && isMap(current) ? mergeValues(current, value) : value;
  }
  return out;
}

/** The value at a dotted path ('drain.preStop.seconds'), undefined where the path ends early. */
export function valueAt(values: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (isMap(node) ? node[key] : undefined), values);
}

function isMap(value: unknown): value is Values {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
