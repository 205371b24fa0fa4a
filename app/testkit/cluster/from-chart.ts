// What the local cluster takes from the chart and k8s/: the Ingress settings
// nginx is configured with, the drain timings, the PromQL that
// prometheus-adapter and KEDA would run, and the autoscaler the chart
// renders. Read from the files themselves (the autoscaler from helm's
// output), so the local proof cannot drift from what gets deployed.
import { join } from 'node:path';
import { one, render } from '../chart/helm.js';
import type { Manifest } from '../chart/k8s-schemas.js';
import { chartValues, readYaml } from '../chart/values.js';
import { k8sDir } from '../paths.js';
import type { AutoscalerSpec, Behavior, MetricSpec, ScalingPolicy, ScalingRules } from './autoscaler.js';
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

/** The two autoscalers the chart can render. */
export const AUTOSCALERS = ['hpa', 'keda'] as const;
export type AutoscalerKind = (typeof AUTOSCALERS)[number];

/** The autoscaler the chart renders, read from helm's output, as the stand-in (autoscaler.ts) runs it. */
export interface ChartAutoscaler {
  readonly kind: AutoscalerKind;
  /** The `helm template --set` values it was rendered with, besides turning it on. */
  readonly sets: readonly string[];
  /** The rendered HorizontalPodAutoscaler or ScaledObject, as helm printed it. */
  readonly rendered: Manifest;
  /** The HPA the stand-in runs: the chart's own, or the one KEDA creates from the ScaledObject. */
  readonly spec: AutoscalerSpec;
  /** KEDA: the trigger's query and what KEDA does with it. */
  readonly keda?: {
    readonly query: string;
    /** How often the KEDA operator checks the trigger itself: for activation (0 ↔ 1), and for the value it serves when useCachedMetrics is on. */
    readonly pollingIntervalSeconds: number;
    /** False: an empty answer is an error, and the HPA keeps its count. */
    readonly ignoreNullValues: boolean;
    /** The metrics server answers the HPA from the value of KEDA's last poll instead of querying Prometheus on each HPA sync. */
    readonly useCachedMetrics: boolean;
  };
}

interface RenderedRules {
  stabilizationWindowSeconds?: number;
  selectPolicy?: 'Max' | 'Min' | 'Disabled';
  policies?: { type: 'Pods' | 'Percent'; value: number; periodSeconds: number }[];
  tolerance?: string | number;
}

/**
 * Renders the chart with real helm, its autoscaler on (and the PodMonitor
 * that feeds it, which the local Prometheus stands in for) plus `sets`, and
 * reads the HPA the stand-in must run from the rendered object: for the
 * HPA, its own spec; for KEDA, the HPA that KEDA creates from the
 * ScaledObject (an External metric per trigger with an AverageValue target
 * of the threshold, minReplicaCount/maxReplicaCount, and
 * advanced.horizontalPodAutoscalerConfig.behavior).
 */
export async function autoscalerFromChart(kind: AutoscalerKind, sets: readonly string[] = []): Promise<ChartAutoscaler> {
  const on = kind === 'hpa' ? 'autoscaling.enabled=true' : 'keda.enabled=true';
  const docs = await render({ set: [on, 'metrics.podMonitor.enabled=true', ...sets] });
  if (kind === 'hpa') {
    const hpa = one(docs, 'HorizontalPodAutoscaler');
    const spec = hpa.spec as {
      minReplicas?: number;
      maxReplicas: number;
      metrics: { type: string; pods?: { metric: { name: string }; target: { type: string; averageValue?: string | number } } }[];
      behavior?: { scaleUp?: RenderedRules; scaleDown?: RenderedRules };
    };
    const metrics = spec.metrics.map((m): MetricSpec => {
      if (m.type !== 'Pods' || m.pods?.target.type !== 'AverageValue' || m.pods.target.averageValue === undefined) {
        throw new Error(
          `the chart's HPA has a ${m.type} metric: the autoscaler stand-in measures connections only (render with autoscaling.targetCPUUtilizationPercentage=0)`,
        );
      }
      return { type: 'Pods', name: m.pods.metric.name, averageValue: quantity(m.pods.target.averageValue) };
    });
    return {
      kind,
      sets,
      rendered: hpa,
      spec: { minReplicas: spec.minReplicas ?? 1, maxReplicas: spec.maxReplicas, metrics, behavior: behaviorWithDefaults(spec.behavior) },
    };
  }
  const scaledObject = one(docs, 'ScaledObject');
  const spec = scaledObject.spec as {
    minReplicaCount?: number;
    maxReplicaCount?: number;
    pollingInterval?: number;
    advanced?: { horizontalPodAutoscalerConfig?: { behavior?: { scaleUp?: RenderedRules; scaleDown?: RenderedRules } } };
    triggers: { type: string; metricType?: string; useCachedMetrics?: boolean; metadata: { query?: string; threshold?: string; ignoreNullValues?: string } }[];
  };
  const triggers = spec.triggers.map((trigger, i) => {
    if (trigger.type !== 'prometheus' || (trigger.metricType ?? 'AverageValue') !== 'AverageValue' || !trigger.metadata.query || !trigger.metadata.threshold) {
      throw new Error(
        `the chart's ScaledObject has a ${trigger.type} trigger (metricType ${trigger.metricType ?? 'default'}): the autoscaler stand-in runs Prometheus triggers with AverageValue only (render with autoscaling.targetCPUUtilizationPercentage=0)`,
      );
    }
    return { trigger, metric: { type: 'External', name: `s${i}-prometheus`, averageValue: quantity(trigger.metadata.threshold) } as const };
  });
  const first = triggers[0]!.trigger;
  return {
    kind,
    sets,
    rendered: scaledObject,
    spec: {
      // KEDA's defaults for the HPA it creates: minReplicaCount 0, maxReplicaCount 100.
      minReplicas: spec.minReplicaCount ?? 0,
      maxReplicas: spec.maxReplicaCount ?? 100,
      metrics: triggers.map((t) => t.metric),
      behavior: behaviorWithDefaults(spec.advanced?.horizontalPodAutoscalerConfig?.behavior),
    },
    keda: {
      query: first.metadata.query!,
      pollingIntervalSeconds: spec.pollingInterval ?? 30,
      // The Prometheus scaler's ignoreNullValues defaults to true.
      ignoreNullValues: (first.metadata.ignoreNullValues ?? 'true') === 'true',
      useCachedMetrics: first.useCachedMetrics ?? false,
    },
  };
}

// What the API server fills in for a behavior the object leaves out
// (autoscaling/v2 defaults), and the controller's default 300 s scale-down
// window (--horizontal-pod-autoscaler-downscale-stabilization).
function behaviorWithDefaults(behavior: { scaleUp?: RenderedRules; scaleDown?: RenderedRules } | undefined): Behavior {
  const rules = (given: RenderedRules | undefined, window: number, policies: ScalingPolicy[]): ScalingRules => ({
    stabilizationWindowSeconds: given?.stabilizationWindowSeconds ?? window,
    selectPolicy: given?.selectPolicy ?? 'Max',
    policies: given?.policies && given.policies.length > 0 ? given.policies : policies,
    ...(given?.tolerance !== undefined ? { tolerance: quantity(given.tolerance) } : {}),
  });
  return {
    scaleUp: rules(behavior?.scaleUp, 0, [
      { type: 'Percent', value: 100, periodSeconds: 15 },
      { type: 'Pods', value: 4, periodSeconds: 15 },
    ]),
    scaleDown: rules(behavior?.scaleDown, 300, [{ type: 'Percent', value: 100, periodSeconds: 15 }]),
  };
}

/** A resource.Quantity as a number: "250", "0.05", "50m", "5k". */
export function quantity(value: string | number): number {
  if (typeof value === 'number') return value;
  const match = /^([+-]?\d+(?:\.\d+)?)(m|k|M|G)?$/.exec(value.trim());
  if (!match) throw new Error(`cannot read the quantity ${JSON.stringify(value)}`);
  const scale = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9 }[match[2] ?? ''] ?? 1;
  return Number(match[1]) * scale;
}
