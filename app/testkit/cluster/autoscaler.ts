// A STAND-IN for the HorizontalPodAutoscaler controller of
// kube-controller-manager, as the fake API server stands in for
// kube-apiserver: the documented algorithm (Kubernetes docs, "Horizontal Pod
// Autoscaling"), written after its source, pkg/controller/podautoscaler/
// replica_calculator.go and horizontal.go, for the two metric kinds the chart
// renders: a Pods metric with an AverageValue target (the chart's HPA, fed by
// prometheus-adapter) and an External metric with an AverageValue target (the
// HPA that KEDA creates from the chart's ScaledObject).
//
// Pure: no timer, no I/O. Each sync gets the time, the pods and the metric
// values from its caller, so the unit tests drive stabilization windows and
// policy periods on a made-up clock, and the local cluster drives it from
// the real Prometheus (autoscaler-controller.ts).

/** HPAScalingPolicy. */
export interface ScalingPolicy {
  readonly type: 'Pods' | 'Percent';
  readonly value: number;
  readonly periodSeconds: number;
}

/** HPAScalingRules: one direction of `spec.behavior`. */
export interface ScalingRules {
  readonly stabilizationWindowSeconds: number;
  readonly selectPolicy: 'Max' | 'Min' | 'Disabled';
  readonly policies: readonly ScalingPolicy[];
  /** Usage ratio tolerance (`behavior.*.tolerance`, Kubernetes 1.33+); the controller's --horizontal-pod-autoscaler-tolerance (0.1) when absent. */
  readonly tolerance?: number;
}

export interface Behavior {
  readonly scaleUp: ScalingRules;
  readonly scaleDown: ScalingRules;
}

/**
 * The metrics this stand-in computes: both with an AverageValue target, the
 * only kind the chart renders for connections. A CPU metric is refused when
 * the spec is read (from-chart.ts): nothing here measures CPU.
 */
export type MetricSpec =
  | { readonly type: 'Pods'; readonly name: string; readonly averageValue: number }
  | { readonly type: 'External'; readonly name: string; readonly averageValue: number };

export interface AutoscalerSpec {
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly metrics: readonly MetricSpec[];
  readonly behavior: Behavior;
}

/** What the HPA reads of a pod from its pod lister. */
export interface PodView {
  readonly name: string;
  readonly phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  readonly ready: boolean;
  /** metadata.deletionTimestamp is set: the pod is terminating (here: in its preStop or drain). */
  readonly deleting: boolean;
}

/** What the metrics API answered for one metric: per-pod values (Pods), one total (External, summed over its series), or an error. */
export type MetricReading = { readonly perPod: ReadonlyMap<string, number> } | { readonly total: number } | { readonly error: string };

export interface SyncInput {
  /** ms on the caller's clock. */
  readonly now: number;
  /** The scale subresource's spec.replicas: what the HPA (or anyone) last set. */
  readonly specReplicas: number;
  /** The scale subresource's status.replicas: the ReplicaSet's pods that are not terminating. */
  readonly statusReplicas: number;
  readonly pods: readonly PodView[];
  /** One reading per entry of spec.metrics, in order. */
  readonly readings: readonly MetricReading[];
}

/** One metric's proposal, as computeReplicasForMetric returns it. */
export interface MetricProposal {
  readonly metric: string;
  /** The replica count the metric asks for, before stabilization and policies; undefined when the metric failed. */
  readonly replicas: number | undefined;
  /** The metric's current value: average per pod, as the HPA's status shows it. */
  readonly current: number | undefined;
  readonly error?: string;
  /** How the pods were counted: ready, set aside as unready (Pending), missing a metric, ignored (terminating). */
  readonly pods?: { readonly ready: number; readonly unready: number; readonly missing: number; readonly ignored: number };
}

export interface SyncResult {
  readonly now: number;
  readonly currentReplicas: number;
  readonly proposals: readonly MetricProposal[];
  /** The largest proposal (computeReplicasForMetrics), or undefined when the metrics failed and nothing changes. */
  readonly metricReplicas: number | undefined;
  /** After the stabilization windows. */
  readonly stabilized: number | undefined;
  /** After the min/max bounds and the scaling policies: what the HPA sets. */
  readonly desiredReplicas: number;
  /** The condition reasons the HPA would report: ScalingActive, AbleToScale, ScalingLimited. */
  readonly scalingActive: string;
  readonly ableToScale: string;
  readonly scalingLimited: string;
  readonly rescaled: boolean;
}

/** The controller's default --horizontal-pod-autoscaler-tolerance. */
export const DEFAULT_TOLERANCE = 0.1;

interface Recommendation {
  recommendation: number;
  timestamp: number;
}

interface ScaleEvent {
  replicaChange: number;
  timestamp: number;
  outdated: boolean;
}

/**
 * One HorizontalPodAutoscaler object and the controller's memory of it: the
 * unstabilized recommendations of past syncs and the scale events the
 * policies count.
 */
export class HorizontalPodAutoscaler {
  readonly #recommendations: Recommendation[] = [];
  #scaleUpEvents: ScaleEvent[] = [];
  #scaleDownEvents: ScaleEvent[] = [];

  constructor(readonly spec: AutoscalerSpec) {
    if (spec.metrics.length === 0) throw new Error('an HPA needs at least one metric');
  }

  /** One reconcileAutoscaler pass: what the HPA reads, decides and would write to the scale subresource. */
  sync(input: SyncInput): SyncResult {
    const { now, specReplicas: current } = input;
    const { minReplicas, maxReplicas } = this.spec;
    // recordInitialRecommendation: the first sync remembers the current count,
    // so a scale-down right after the HPA appears still waits out its window.
    if (this.#recommendations.length === 0) this.#recommendations.push({ recommendation: current, timestamp: now });
    const base = { now, currentReplicas: current, proposals: [] as MetricProposal[], metricReplicas: undefined, stabilized: undefined };
    if (current === 0) {
      // The chart's minReplicas is at least 1; a target scaled to 0 by hand is left alone.
      return { ...base, desiredReplicas: 0, scalingActive: 'ScalingDisabled', ableToScale: 'SucceededGetScale', scalingLimited: '', rescaled: false };
    }
    if (current > maxReplicas || current < minReplicas) {
      const desired = current > maxReplicas ? maxReplicas : minReplicas;
      this.#storeScaleEvent(now, current, desired);
      return {
        ...base,
        desiredReplicas: desired,
        scalingActive: 'ValidMetricFound',
        ableToScale: 'SucceededRescale',
        scalingLimited: current > maxReplicas ? 'TooManyReplicas' : 'TooFewReplicas',
        rescaled: true,
      };
    }

    const proposals = this.spec.metrics.map((metric, i) => this.#proposal(metric, input.readings[i] ?? { error: 'no reading' }, input));
    // computeReplicasForMetrics: the largest valid proposal; when every
    // metric failed, or some failed and the rest would scale down, nothing
    // changes (the HPA never scales down on partial information).
    const valid = proposals.filter((p) => p.replicas !== undefined).map((p) => p.replicas!);
    const invalid = proposals.length - valid.length;
    const largest = valid.length > 0 ? Math.max(...valid) : 0;
    if (invalid >= proposals.length || (invalid > 0 && largest < current)) {
      const failed = proposals.find((p) => p.error !== undefined);
      return {
        ...base,
        proposals,
        desiredReplicas: current,
        scalingActive: `FailedGet${this.spec.metrics[proposals.indexOf(failed!)]?.type ?? 'Pods'}Metric`,
        ableToScale: 'SucceededGetScale',
        scalingLimited: '',
        rescaled: false,
      };
    }
    const stabilized = this.#stabilize(now, current, largest);
    const { replicas: desired, reason } = this.#applyPolicies(now, current, stabilized);
    const rescaled = desired !== current;
    if (rescaled) this.#storeScaleEvent(now, current, desired);
    return {
      now,
      currentReplicas: current,
      proposals,
      metricReplicas: largest,
      stabilized,
      desiredReplicas: desired,
      scalingActive: 'ValidMetricFound',
      ableToScale:
        stabilized !== largest ? (largest >= current ? 'ScaleUpStabilized' : 'ScaleDownStabilized') : rescaled ? 'SucceededRescale' : 'ReadyForNewScale',
      scalingLimited: reason,
      rescaled,
    };
  }

  #proposal(metric: MetricSpec, reading: MetricReading, input: SyncInput): MetricProposal {
    const tolerances = { up: this.spec.behavior.scaleUp.tolerance ?? DEFAULT_TOLERANCE, down: this.spec.behavior.scaleDown.tolerance ?? DEFAULT_TOLERANCE };
    if ('error' in reading) return { metric: metric.name, replicas: undefined, current: undefined, error: reading.error };
    if (metric.type === 'Pods') {
      if (!('perPod' in reading)) return { metric: metric.name, replicas: undefined, current: undefined, error: 'a Pods metric needs per-pod values' };
      return { metric: metric.name, ...podsMetricReplicas(input.specReplicas, metric.averageValue, input.pods, reading.perPod, tolerances) };
    }
    if (!('total' in reading)) return { metric: metric.name, replicas: undefined, current: undefined, error: 'an External metric needs a value' };
    return { metric: metric.name, ...externalPerPodReplicas(input.statusReplicas, metric.averageValue, reading.total, tolerances) };
  }

  // stabilizeRecommendationWithBehaviors: the result stays between the
  // lowest recommendation of the scale-up window and the highest of the
  // scale-down window (the current count when it is already in between).
  #stabilize(now: number, current: number, desired: number): number {
    const { scaleUp, scaleDown } = this.spec.behavior;
    const upCutoff = now - scaleUp.stabilizationWindowSeconds * 1000;
    const downCutoff = now - scaleDown.stabilizationWindowSeconds * 1000;
    let up = desired;
    let down = desired;
    let oldIndex = -1;
    this.#recommendations.forEach((rec, i) => {
      if (rec.timestamp > upCutoff) up = Math.min(rec.recommendation, up);
      if (rec.timestamp > downCutoff) down = Math.max(rec.recommendation, down);
      if (rec.timestamp < upCutoff && rec.timestamp < downCutoff) oldIndex = i;
    });
    let recommendation = current;
    if (recommendation < up) recommendation = up;
    if (recommendation > down) recommendation = down;
    // The controller reuses one expired slot per sync rather than pruning them all.
    const fresh = { recommendation: desired, timestamp: now };
    if (oldIndex >= 0) this.#recommendations[oldIndex] = fresh;
    else this.#recommendations.push(fresh);
    return recommendation;
  }

  // convertDesiredReplicasWithBehaviorRate: the policies limit how far from
  // the count at the start of each policy's period the HPA may go; then
  // minReplicas and maxReplicas.
  #applyPolicies(now: number, current: number, desired: number): { replicas: number; reason: string } {
    const { minReplicas, maxReplicas, behavior } = this.spec;
    if (desired > current) {
      const limit = Math.max(current, scaleUpLimit(now, current, this.#scaleUpEvents, this.#scaleDownEvents, behavior.scaleUp));
      const allowed = Math.min(maxReplicas, limit);
      const reason = maxReplicas > limit ? 'ScaleUpLimit' : 'TooManyReplicas';
      return desired > allowed ? { replicas: allowed, reason } : { replicas: desired, reason: 'DesiredWithinRange' };
    }
    if (desired < current) {
      const limit = Math.min(current, scaleDownLimit(now, current, this.#scaleUpEvents, this.#scaleDownEvents, behavior.scaleDown));
      const allowed = Math.max(minReplicas, limit);
      const reason = minReplicas < limit ? 'ScaleDownLimit' : 'TooFewReplicas';
      return desired < allowed ? { replicas: allowed, reason } : { replicas: desired, reason: 'DesiredWithinRange' };
    }
    return { replicas: desired, reason: 'DesiredWithinRange' };
  }

  // storeScaleEvent: events older than the direction's longest policy period
  // are marked outdated and their slot reused.
  #storeScaleEvent(now: number, previous: number, next: number): void {
    const up = next > previous;
    const rules = up ? this.spec.behavior.scaleUp : this.spec.behavior.scaleDown;
    const events = up ? this.#scaleUpEvents : this.#scaleDownEvents;
    const longest = Math.max(0, ...rules.policies.map((p) => p.periodSeconds));
    let outdated = -1;
    events.forEach((event, i) => {
      if (event.timestamp < now - longest * 1000) event.outdated = true;
      if (event.outdated) outdated = i;
    });
    const fresh = { replicaChange: Math.abs(next - previous), timestamp: now, outdated: false };
    if (outdated >= 0) events[outdated] = fresh;
    else events.push(fresh);
    if (up) this.#scaleUpEvents = events;
    else this.#scaleDownEvents = events;
  }
}

/**
 * calcPlainMetricReplicas for a Pods metric with an AverageValue target.
 * Terminating and finished pods are ignored; Pending pods are set aside as
 * unready (for a metric other than CPU, readiness itself does not matter);
 * Running pods without a value are missing. When pods were set aside or
 * missing, the ratio is computed again with the conservative assumption
 * (missing pods at the target on a scale-down, at 0 on a scale-up; unready
 * pods at 0 on a scale-up), and the HPA keeps its count if that reverses the
 * direction or falls within the tolerance.
 */
export function podsMetricReplicas(
  currentReplicas: number,
  target: number,
  pods: readonly PodView[],
  values: ReadonlyMap<string, number>,
  tolerances: { readonly up: number; readonly down: number } = { up: DEFAULT_TOLERANCE, down: DEFAULT_TOLERANCE },
): Omit<MetricProposal, 'metric'> {
  const metrics = new Map([...values].map(([pod, value]) => [pod, milli(value)]));
  const targetMilli = milli(target);
  let ready = 0;
  const unready: string[] = [];
  const missing: string[] = [];
  const ignored: string[] = [];
  for (const pod of pods) {
    if (pod.deleting || pod.phase === 'Succeeded' || pod.phase === 'Failed') ignored.push(pod.name);
    else if (pod.phase === 'Pending') unready.push(pod.name);
    else if (!metrics.has(pod.name)) missing.push(pod.name);
    else ready++;
  }
  for (const name of [...ignored, ...unready]) metrics.delete(name);
  const counted = { ready, unready: unready.length, missing: missing.length, ignored: ignored.length };
  if (metrics.size === 0)
    return { replicas: undefined, current: undefined, error: 'did not receive metrics for targeted pods (pods might be unready)', pods: counted };

  const { ratio, usage } = usageRatio(metrics, targetMilli);
  const current = usage / 1000;
  const within = (r: number): boolean => 1 - tolerances.down <= r && r <= 1 + tolerances.up;
  const scaleUpWithUnready = unready.length > 0 && ratio > 1;
  if (!scaleUpWithUnready && missing.length === 0) {
    return { replicas: within(ratio) ? currentReplicas : Math.ceil(ratio * ready), current, pods: counted };
  }
  if (missing.length > 0) {
    if (ratio < 1) for (const name of missing) metrics.set(name, targetMilli);
    else if (ratio > 1) for (const name of missing) metrics.set(name, 0);
  }
  if (scaleUpWithUnready) for (const name of unready) metrics.set(name, 0);
  const { ratio: newRatio } = usageRatio(metrics, targetMilli);
  if (within(newRatio) || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1)) return { replicas: currentReplicas, current, pods: counted };
  const replicas = Math.ceil(newRatio * metrics.size);
  if ((newRatio < 1 && replicas > currentReplicas) || (newRatio > 1 && replicas < currentReplicas))
    return { replicas: currentReplicas, current, pods: counted };
  return { replicas, current, pods: counted };
}

/**
 * GetExternalPerPodMetricReplicas: an External metric with an AverageValue
 * target (what KEDA's HPA uses) divides the metric by status.replicas, the
 * ReplicaSet's non-terminating pods whether ready or not; past the
 * tolerance the answer is ceil(total / target), whatever the pods' state.
 */
export function externalPerPodReplicas(
  statusReplicas: number,
  target: number,
  total: number,
  tolerances: { readonly up: number; readonly down: number } = { up: DEFAULT_TOLERANCE, down: DEFAULT_TOLERANCE },
): Omit<MetricProposal, 'metric'> {
  const usage = milli(total);
  const targetMilli = milli(target);
  const ratio = usage / (targetMilli * statusReplicas);
  const within = 1 - tolerances.down <= ratio && ratio <= 1 + tolerances.up;
  return {
    replicas: within ? statusReplicas : Math.ceil(usage / targetMilli),
    current: statusReplicas === 0 ? 0 : Math.ceil(usage / statusReplicas) / 1000,
  };
}

// Metric values travel as resource.Quantity and are compared in
// milli-units; GetMetricUsageRatio averages them with an integer division.
function milli(value: number): number {
  return Math.round(value * 1000);
}

function usageRatio(metrics: ReadonlyMap<string, number>, targetMilli: number): { ratio: number; usage: number } {
  let total = 0;
  for (const value of metrics.values()) total += value;
  const usage = Math.trunc(total / metrics.size);
  return { ratio: usage / targetMilli, usage };
}

/** Replicas added (or removed) by events within the last `periodSeconds`. */
function changeInPeriod(now: number, periodSeconds: number, events: readonly ScaleEvent[]): number {
  const cutoff = now - periodSeconds * 1000;
  return events.filter((e) => e.timestamp > cutoff).reduce((sum, e) => sum + e.replicaChange, 0);
}

/** calculateScaleUpLimitWithScalingRules: each policy allows its change over the count at the start of its period. */
function scaleUpLimit(now: number, current: number, upEvents: readonly ScaleEvent[], downEvents: readonly ScaleEvent[], rules: ScalingRules): number {
  if (rules.selectPolicy === 'Disabled') return current;
  const pick = rules.selectPolicy === 'Min' ? Math.min : Math.max;
  let result = rules.selectPolicy === 'Min' ? Infinity : -Infinity;
  for (const policy of rules.policies) {
    const periodStart = current - changeInPeriod(now, policy.periodSeconds, upEvents) + changeInPeriod(now, policy.periodSeconds, downEvents);
    // Percent rounds up, so that a small count can still grow.
    const proposed = policy.type === 'Pods' ? periodStart + policy.value : Math.ceil(periodStart * (1 + policy.value / 100));
    result = pick(result, proposed);
  }
  return result;
}

/** calculateScaleDownLimitWithBehaviors: the mirror image; Percent rounds down (truncates). */
function scaleDownLimit(now: number, current: number, upEvents: readonly ScaleEvent[], downEvents: readonly ScaleEvent[], rules: ScalingRules): number {
  if (rules.selectPolicy === 'Disabled') return current;
  const pick = rules.selectPolicy === 'Min' ? Math.max : Math.min;
  let result = rules.selectPolicy === 'Min' ? -Infinity : Infinity;
  for (const policy of rules.policies) {
    const periodStart = current - changeInPeriod(now, policy.periodSeconds, upEvents) + changeInPeriod(now, policy.periodSeconds, downEvents);
    const proposed = policy.type === 'Pods' ? periodStart - policy.value : Math.trunc(periodStart * (1 - policy.value / 100));
    result = pick(result, proposed);
  }
  return result;
}
