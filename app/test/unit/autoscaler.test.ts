// The autoscaler stand-in (testkit/cluster/autoscaler.ts), the HPA
// controller's algorithm, on a made-up clock: every sync gets its `now`.
// The replica calculation (ratio, tolerance, pods set aside, missing values,
// terminating pods, the External per-pod target), then the controller's
// memory over time (stabilization windows, the scaling policies' periods,
// the replica bounds, failed metrics). The expected numbers are worked out
// by hand in the comments from the documented rules; the real-process run
// is e2e/autoscale.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  externalPerPodReplicas,
  HorizontalPodAutoscaler,
  podsMetricReplicas,
  type AutoscalerSpec,
  type Behavior,
  type MetricReading,
  type PodView,
} from '../../testkit/cluster/autoscaler.js';

const running = (name: string, extra: Partial<PodView> = {}): PodView => ({ name, phase: 'Running', ready: true, deleting: false, ...extra });
const values = (entries: Record<string, number>): Map<string, number> => new Map(Object.entries(entries));

/** The behavior the chart renders (chart/templates/_helpers.tpl ws-echo.hpaBehavior), with a 60 s scale-down window and a 20 s grace period. */
const CHART_BEHAVIOR: Behavior = {
  scaleUp: {
    stabilizationWindowSeconds: 0,
    selectPolicy: 'Max',
    policies: [
      { type: 'Percent', value: 100, periodSeconds: 15 },
      { type: 'Pods', value: 4, periodSeconds: 15 },
    ],
  },
  scaleDown: { stabilizationWindowSeconds: 60, selectPolicy: 'Min', policies: [{ type: 'Pods', value: 1, periodSeconds: 20 }] },
};

const SPEC: AutoscalerSpec = {
  minReplicas: 3,
  maxReplicas: 20,
  metrics: [{ type: 'Pods', name: 'websocket_connections_active', averageValue: 250 }],
  behavior: CHART_BEHAVIOR,
};

/** A fleet of `replicas` ready pods holding `total` connections evenly, as one sync's input at `seconds`. */
function fleet(seconds: number, replicas: number, total: number) {
  const pods = Array.from({ length: replicas }, (_, i) => running(`p${i}`));
  const perPod: MetricReading = { perPod: new Map(pods.map((p) => [p.name, total / replicas])) };
  return { now: seconds * 1000, specReplicas: replicas, statusReplicas: replicas, pods, readings: [perPod] };
}

describe('the replica calculation for a Pods metric (calcPlainMetricReplicas)', () => {
  it('asks for ceil(current × average / target) over the pods', () => {
    // 3 pods at 400: ratio 1.6, ceil(1.6 × 3) = 5.
    const result = podsMetricReplicas(3, 250, [running('a'), running('b'), running('c')], values({ a: 400, b: 400, c: 400 }));
    assert.equal(result.replicas, 5);
    assert.equal(result.current, 400);
    // 4 pods at 100: ratio 0.4, ceil(1.6) = 2.
    assert.equal(
      podsMetricReplicas(
        4,
        250,
        ['a', 'b', 'c', 'd'].map((n) => running(n)),
        values({ a: 100, b: 100, c: 100, d: 100 }),
      ).replicas,
      2,
    );
  });

  it('keeps the count within the 10 % tolerance on either side, and scales just outside it', () => {
    const pods = [running('a'), running('b'), running('c')];
    const at = (average: number): number | undefined => podsMetricReplicas(3, 250, pods, values({ a: average, b: average, c: average })).replicas;
    assert.equal(at(275), 3, 'ratio 1.10 is within');
    assert.equal(at(276), 4, 'ratio 1.104: ceil(3.31) = 4');
    assert.equal(at(225), 3, 'ratio 0.90 is within');
    assert.equal(at(224), 3, 'ratio 0.896: ceil(2.69) = 3, the count it has');
    assert.equal(at(160), 2, 'ratio 0.64: ceil(1.92) = 2');
  });

  it('averages with an integer division in milli-units, as GetMetricUsageRatio does', () => {
    // 1000 / 3 = 333.333 connections: 333333 milli after the division, ratio 1.333332, ceil(3.999996) = 4.
    const result = podsMetricReplicas(3, 250, [running('a'), running('b'), running('c')], values({ a: 334, b: 333, c: 333 }));
    assert.equal(result.current, 333.333);
    assert.equal(result.replicas, 4);
  });

  it('on a scale-up, counts a Running pod without a value as 0, and keeps the count when that reverses the direction', () => {
    const pods = [running('a'), running('b'), running('new')];
    // a and b at 500: ratio 2; with `new` at 0, (500 + 500 + 0) / 3 = 333.3, ratio 1.33, ceil(1.33 × 3) = 4.
    const up = podsMetricReplicas(3, 250, pods, values({ a: 500, b: 500 }));
    assert.equal(up.replicas, 4);
    assert.deepEqual(up.pods, { ready: 2, unready: 0, missing: 1, ignored: 0 });
    // a and b at 400: ratio 1.6, but with `new` at 0 it is 1.067, within the tolerance: the count stays (not ceil(1.6 × 2) = 4).
    assert.equal(podsMetricReplicas(3, 250, pods, values({ a: 400, b: 400 })).replicas, 3);
    // a and b at 300 with the count at 4: ratio 1.2, but with `new` at 0 it is 0.8, a reversal: the count stays 4 (not ceil(0.8 × 3) = 3).
    assert.equal(podsMetricReplicas(4, 250, pods, values({ a: 300, b: 300 })).replicas, 4);
  });

  it('on a scale-down, counts a pod without a value at the target', () => {
    // a and b at 100: ratio 0.4; with the missing pod at 250, (100 + 100 + 250) / 3 = 150, ratio 0.6, ceil(1.8) = 2 (not ceil(0.4 × 2) = 1).
    const result = podsMetricReplicas(3, 250, [running('a'), running('b'), running('gone-quiet')], values({ a: 100, b: 100 }));
    assert.equal(result.replicas, 2);
  });

  it('sets Pending pods aside: 0 on a scale-up, left out on a scale-down; a Running pod that is not ready counts with its value', () => {
    const pending = running('starting', { phase: 'Pending', ready: false });
    // Up: a and b at 500, the Pending pod at 0: ratio 1.33 over 3 pods, ceil(4) = 4.
    assert.equal(podsMetricReplicas(3, 250, [running('a'), running('b'), pending], values({ a: 500, b: 500 })).replicas, 4);
    // a and b at 400, the Pending pod at 0: ratio 1.067, within the tolerance (not ceil(1.6 × 2) = 4).
    assert.equal(podsMetricReplicas(3, 250, [running('a'), running('b'), pending], values({ a: 400, b: 400 })).replicas, 3);
    // Down: the Pending pod is left out: ratio 0.4 over 2 ready pods, ceil(0.8) = 1.
    assert.equal(podsMetricReplicas(3, 250, [running('a'), running('b'), pending], values({ a: 100, b: 100 })).replicas, 1);
    // Not ready but Running (readiness matters only for CPU): its 500 counts, ratio 2, ceil(2 × 2) = 4.
    const unready = running('b', { ready: false });
    assert.equal(podsMetricReplicas(2, 250, [running('a'), unready], values({ a: 500, b: 500 })).replicas, 4);
  });

  it('ignores terminating pods and their values', () => {
    // The draining pod's 400 is dropped: a and b at 100, ratio 0.4, ceil(0.8) = 1.
    const result = podsMetricReplicas(3, 250, [running('a'), running('b'), running('draining', { deleting: true })], values({ a: 100, b: 100, draining: 400 }));
    assert.equal(result.replicas, 1);
    assert.deepEqual(result.pods, { ready: 2, unready: 0, missing: 0, ignored: 1 });
  });

  it('fails when no counted pod has a value', () => {
    const result = podsMetricReplicas(2, 250, [running('a', { phase: 'Pending' }), running('b', { deleting: true })], values({ b: 10 }));
    assert.equal(result.replicas, undefined);
    assert.match(result.error ?? '', /did not receive metrics/);
  });
});

describe('the replica calculation for an External metric with an AverageValue target (KEDA)', () => {
  it('divides the total by status.replicas for the tolerance, and asks for ceil(total / target)', () => {
    // 900 over 3 pods: 300 each, ratio 1.2: ceil(900 / 250) = 4.
    assert.deepEqual(externalPerPodReplicas(3, 250, 900), { replicas: 4, current: 300 });
    // 800 over 3: ratio 1.067, within the tolerance: stays 3.
    assert.equal(externalPerPodReplicas(3, 250, 800).replicas, 3);
    // 300 over 6: ratio 0.2: ceil(300 / 250) = 2, whatever the pods' state.
    assert.equal(externalPerPodReplicas(6, 250, 300).replicas, 2);
    // 1000 over 2: exactly 4.
    assert.equal(externalPerPodReplicas(2, 250, 1000).replicas, 4);
  });
});

describe('the controller over time (stabilization windows, policies, bounds)', () => {
  it('scales up at once, by the larger of 100 % and 4 pods per 15 s, counting from the start of the period', () => {
    const hpa = new HorizontalPodAutoscaler(SPEC);
    // 3 pods, 4200 connections: 1400 each, ratio 5.6, ceil(16.8) = 17 wanted.
    const first = hpa.sync(fleet(0, 3, 4200));
    assert.equal(first.metricReplicas, 17);
    assert.equal(first.desiredReplicas, 7, 'max(3 × 2, 3 + 4) = 7');
    assert.equal(first.scalingLimited, 'ScaleUpLimit');
    // 10 s later, still inside the 15 s period that began at 3 pods: the limit is still 7.
    assert.equal(hpa.sync(fleet(10, 7, 4200)).desiredReplicas, 7);
    // At 15.001 s the first event has left the period: max(7 × 2, 7 + 4) = 14.
    assert.equal(hpa.sync(fleet(15.001, 7, 4200)).desiredReplicas, 14);
    // Then 17, the metric's answer, within maxReplicas and the limit of 28.
    const last = hpa.sync(fleet(30.002, 14, 4200));
    assert.equal(last.desiredReplicas, 17);
    assert.equal(last.scalingLimited, 'DesiredWithinRange');
  });

  it('scales down only when every recommendation of the 60 s window allows it, then one pod per 20 s', () => {
    const hpa = new HorizontalPodAutoscaler(SPEC);
    const decisions: [number, number][] = [];
    // Six pods with 1500 connections until t = 30 s, then 600 (wanted: ceil(600 / 250) = 3).
    let replicas = 6;
    for (let t = 0; t <= 150; t += 5) {
      const result = hpa.sync(fleet(t, replicas, t < 30 ? 1500 : 600));
      if (result.rescaled) decisions.push([t, result.desiredReplicas]);
      replicas = result.desiredReplicas;
    }
    // The last recommendation of 6 was made at t = 25 s: it holds the count until 25 + 60 = 85 s (the window
    // keeps recommendations strictly younger than 60 s, so at t = 85 it has gone). Then 1 pod per 20 s.
    assert.deepEqual(decisions, [
      [85, 5],
      [105, 4],
      [125, 3],
    ]);
  });

  it('remembers the count it found at its first sync: a scale-down waits out the window even then', () => {
    const hpa = new HorizontalPodAutoscaler(SPEC);
    assert.equal(hpa.sync(fleet(0, 6, 300)).desiredReplicas, 6, 'the initial recommendation is the current count');
    assert.equal(hpa.sync(fleet(59, 6, 300)).desiredReplicas, 6);
    assert.equal(hpa.sync(fleet(61, 6, 300)).desiredReplicas, 5);
  });

  it('with a scale-up window, takes the lowest recommendation of the window', () => {
    const hpa = new HorizontalPodAutoscaler({
      ...SPEC,
      behavior: { ...CHART_BEHAVIOR, scaleUp: { ...CHART_BEHAVIOR.scaleUp, stabilizationWindowSeconds: 30 } },
    });
    assert.equal(hpa.sync(fleet(0, 3, 750)).desiredReplicas, 3, 'at the target');
    const burst = hpa.sync(fleet(10, 3, 1500));
    assert.equal(burst.metricReplicas, 6);
    assert.equal(burst.desiredReplicas, 3, 'the window still holds the recommendation of 3 from t = 0');
    assert.equal(burst.ableToScale, 'ScaleUpStabilized');
    assert.equal(hpa.sync(fleet(31, 3, 1500)).desiredReplicas, 6, 'the 3 has left the window');
  });

  it('keeps within minReplicas and maxReplicas, and brings a count outside them back without reading the metric', () => {
    const hpa = new HorizontalPodAutoscaler({
      ...SPEC,
      behavior: { ...CHART_BEHAVIOR, scaleDown: { ...CHART_BEHAVIOR.scaleDown, stabilizationWindowSeconds: 0 } },
    });
    const floor = hpa.sync(fleet(0, 4, 10));
    assert.equal(floor.metricReplicas, 1);
    assert.equal(floor.desiredReplicas, 3);
    assert.equal(floor.scalingLimited, 'TooFewReplicas');
    const ceiling = new HorizontalPodAutoscaler({ ...SPEC, maxReplicas: 5 }).sync(fleet(0, 4, 2500));
    assert.equal(ceiling.desiredReplicas, 5);
    assert.equal(ceiling.scalingLimited, 'TooManyReplicas');
    const below = new HorizontalPodAutoscaler(SPEC).sync(fleet(0, 1, 100_000));
    assert.equal(below.desiredReplicas, 3);
    assert.deepEqual(below.proposals, [], 'no metric was computed');
  });

  it('never scales on a failed metric, and never scales down when one of two metrics failed', () => {
    const hpa = new HorizontalPodAutoscaler(SPEC);
    const failed = hpa.sync({ ...fleet(0, 4, 0), readings: [{ error: 'the adapter is down' }] });
    assert.equal(failed.desiredReplicas, 4);
    assert.equal(failed.rescaled, false);
    assert.equal(failed.scalingActive, 'FailedGetPodsMetric');
    const two = new HorizontalPodAutoscaler({
      ...SPEC,
      behavior: { ...CHART_BEHAVIOR, scaleDown: { ...CHART_BEHAVIOR.scaleDown, stabilizationWindowSeconds: 0 } },
      metrics: [...SPEC.metrics, { type: 'External', name: 's0-prometheus', averageValue: 250 }],
    });
    const quiet = fleet(0, 6, 300);
    assert.equal(two.sync({ ...quiet, readings: [quiet.readings[0]!, { error: 'KEDA is down' }] }).desiredReplicas, 6, 'no scale-down on half the information');
    const busy = fleet(1, 3, 1500);
    assert.equal(two.sync({ ...busy, readings: [busy.readings[0]!, { error: 'KEDA is down' }] }).desiredReplicas, 6, 'a scale-up on the metric that works');
  });

  it('takes the largest proposal of several metrics', () => {
    const hpa = new HorizontalPodAutoscaler({ ...SPEC, metrics: [...SPEC.metrics, { type: 'External', name: 's0-prometheus', averageValue: 100 }] });
    const input = fleet(0, 3, 750);
    // Pods: at the target, 3. External: ceil(750 / 100) = 8.
    const result = hpa.sync({ ...input, readings: [input.readings[0]!, { total: 750 }] });
    assert.deepEqual(
      result.proposals.map((p) => p.replicas),
      [3, 8],
    );
    assert.equal(result.desiredReplicas, 7, 'the 8, limited to max(6, 7) by the scale-up policies');
  });

  it('a Percent scale-up policy rounds up, so that a small count can grow', () => {
    const hpa = new HorizontalPodAutoscaler({
      ...SPEC,
      behavior: {
        ...CHART_BEHAVIOR,
        scaleUp: { stabilizationWindowSeconds: 0, selectPolicy: 'Max', policies: [{ type: 'Percent', value: 50, periodSeconds: 60 }] },
      },
    });
    // 3 pods, 10 wanted: at most ceil(3 × 1.5) = 5.
    assert.equal(hpa.sync(fleet(0, 3, 2500)).desiredReplicas, 5);
  });

  it('a Disabled direction never moves; a Percent scale-down policy truncates', () => {
    const frozen = new HorizontalPodAutoscaler({
      ...SPEC,
      behavior: {
        ...CHART_BEHAVIOR,
        scaleDown: { stabilizationWindowSeconds: 0, selectPolicy: 'Disabled', policies: [{ type: 'Pods', value: 1, periodSeconds: 15 }] },
      },
    });
    assert.equal(frozen.sync(fleet(0, 8, 100)).desiredReplicas, 8);
    const percent = new HorizontalPodAutoscaler({
      ...SPEC,
      minReplicas: 1,
      behavior: {
        ...CHART_BEHAVIOR,
        scaleDown: { stabilizationWindowSeconds: 0, selectPolicy: 'Max', policies: [{ type: 'Percent', value: 50, periodSeconds: 15 }] },
      },
    });
    // 7 pods, wanted 1: at most 50 % away per 15 s, int32(7 × 0.5) = 3.
    assert.equal(percent.sync(fleet(0, 7, 10)).desiredReplicas, 3);
  });
});
