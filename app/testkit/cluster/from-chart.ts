// What the local cluster takes from the chart and k8s/: the Ingress settings
// nginx is configured with, the drain timings, and the PromQL that
// prometheus-adapter and KEDA would run. Read from the files themselves, so
// the local proof cannot drift from what gets deployed.
import { join } from 'node:path';
import { chartValues, readYaml } from '../chart/values.js';
import { k8sDir } from '../paths.js';
import type { ProxySettings } from './nginx.js';

export const CONTROLLER_VALUES = join(k8sDir, 'ingress-nginx-values.yaml');
export const ADAPTER_VALUES = join(k8sDir, 'prometheus-adapter-values.yaml');
export const KEDA_SCALED_OBJECT = join(k8sDir, 'keda-scaledobject.yaml');

/** nginx settings from chart/values.yaml `ingress.*` and the controller's worker-shutdown-timeout. */
/**
 * What stands in front of the replicas. `retry`: ingress-nginx as the chart's
 * Ingress configures it (and a Gateway whose HTTPRoute has `retry` on 503).
 * `no-retry`: a Gateway data plane that does not retry a refused upgrade
 * (the chart's HTTPRoute without `retry`, as on implementations without
 * HTTPRouteRetry) and keeps no session persistence: a refusal reaches the
 * client, which reconnects with backoff.
 */
export const PROXY_MODES = ['retry', 'no-retry'] as const;
export type ProxyMode = (typeof PROXY_MODES)[number];

export function proxySettingsFromChart(mode: ProxyMode = 'retry'): ProxySettings {
  const { ingress } = chartValues();
  const controller = readYaml<{ controller: { config: Record<string, string> } }>(CONTROLLER_VALUES);
  const shutdown = /^(\d+)s$/.exec(controller.controller.config['worker-shutdown-timeout'] ?? '');
  if (!shutdown) throw new Error(`${CONTROLLER_VALUES}: controller.config.worker-shutdown-timeout must look like "3600s"`);
  const retry = mode === 'retry';
  return {
    proxyTimeoutSeconds: ingress.proxyTimeoutSeconds,
    nextUpstream: retry ? ingress.nextUpstream : 'off',
    nextUpstreamTries: ingress.nextUpstreamTries,
    affinity: retry ? ingress.affinity : 'none',
    cookieName: ingress.sessionCookie.name,
    cookieMaxAgeSeconds: ingress.sessionCookie.maxAgeSeconds,
    hashBy: ingress.hashBy,
    workerShutdownTimeoutSeconds: Number(shutdown[1]),
  };
}

/**
 * prometheus-adapter's metricsQuery with its template filled in the way the
 * adapter does for an HPA asking about `pods` in `namespace`.
 */
export function adapterQuery(namespace: string, pods: readonly string[]): { template: string; query: string } {
  const values = readYaml<{ rules: { custom: { seriesQuery: string; metricsQuery: string }[] } }>(ADAPTER_VALUES);
  const rule = values.rules.custom[0];
  if (!rule) throw new Error(`${ADAPTER_VALUES}: no rules.custom entry`);
  const series = /^(\w+)\{/.exec(rule.seriesQuery)?.[1];
  if (!series) throw new Error(`${ADAPTER_VALUES}: cannot read the metric name from seriesQuery ${rule.seriesQuery}`);
  const query = rule.metricsQuery
    .replaceAll('<<.Series>>', series)
    .replaceAll('<<.LabelMatchers>>', `namespace="${namespace}",pod=~"${pods.join('|')}"`)
    .replaceAll('<<.GroupBy>>', 'pod');
  return { template: rule.metricsQuery, query };
}

/** The KEDA ScaledObject's Prometheus trigger: its query and its threshold (the target per pod). */
export function kedaTrigger(): { query: string; threshold: number; namespace: string; deployment: string } {
  const scaledObject = readYaml<{
    metadata: { namespace: string };
    spec: { scaleTargetRef: { name: string }; triggers: { type: string; metadata: { query: string; threshold: string } }[] };
  }>(KEDA_SCALED_OBJECT);
  const trigger = scaledObject.spec.triggers.find((t) => t.type === 'prometheus');
  if (!trigger) throw new Error(`${KEDA_SCALED_OBJECT}: no prometheus trigger`);
  return {
    query: trigger.metadata.query,
    threshold: Number(trigger.metadata.threshold),
    namespace: scaledObject.metadata.namespace,
    deployment: scaledObject.spec.scaleTargetRef.name,
  };
}
