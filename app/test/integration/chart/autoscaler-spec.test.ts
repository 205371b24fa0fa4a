// What the autoscaler stand-in reads from the chart (testkit/cluster/from-chart.ts
// autoscalerFromChart): the HPA and the KEDA ScaledObject as real helm
// renders them, turned into the HPA the stand-in runs. The stand-in's
// algorithm: unit/autoscaler.test.ts; the run: e2e/autoscale.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { autoscalerFromChart, quantity } from '../../../testkit/cluster/from-chart.js';
import { needsFetched } from '../../../testkit/tools.js';

describe('the autoscaler the chart renders, as the stand-in reads it', { skip: needsFetched('helm') }, () => {
  it("reads the chart's HPA: min, max, the Pods metric and its target, the behavior; the scale-down period is the grace period the drain values make", async () => {
    const defaults = await autoscalerFromChart('hpa');
    assert.deepEqual(defaults.spec.metrics, [{ type: 'Pods', name: 'websocket_connections_active', averageValue: 5000 }]);
    assert.deepEqual([defaults.spec.minReplicas, defaults.spec.maxReplicas], [3, 20]);
    assert.equal(defaults.spec.behavior.scaleDown.stabilizationWindowSeconds, 300);
    // preStop 5 + window 20 + close timeout 5 + margin 5.
    assert.deepEqual(defaults.spec.behavior.scaleDown.policies, [{ type: 'Pods', value: 1, periodSeconds: 35 }]);
    assert.equal(defaults.spec.behavior.scaleDown.selectPolicy, 'Min');

    const local = await autoscalerFromChart('hpa', [
      'autoscaling.targetConnectionsPerPod=250',
      'autoscaling.minReplicas=2',
      'autoscaling.scaleDown.stabilizationWindowSeconds=60',
      'drain.preStop.seconds=2',
      'drain.windowSeconds=8',
      'drain.closeTimeoutSeconds=5',
    ]);
    assert.equal(local.spec.metrics[0]!.averageValue, 250);
    assert.equal(local.spec.minReplicas, 2);
    assert.equal(local.spec.behavior.scaleDown.stabilizationWindowSeconds, 60);
    assert.deepEqual(local.spec.behavior.scaleDown.policies, [{ type: 'Pods', value: 1, periodSeconds: 20 }], '2 + 8 + 5 + 5');
    assert.deepEqual(local.spec.behavior.scaleUp, {
      stabilizationWindowSeconds: 0,
      selectPolicy: 'Max',
      policies: [
        { type: 'Percent', value: 100, periodSeconds: 15 },
        { type: 'Pods', value: 4, periodSeconds: 15 },
      ],
    });
    assert.equal(local.rendered.kind, 'HorizontalPodAutoscaler');
    assert.equal(local.keda, undefined);
  });

  it("reads the HPA KEDA creates from the chart's ScaledObject: an External metric per trigger with the threshold as its AverageValue, the same behavior", async () => {
    const sets = ['autoscaling.targetConnectionsPerPod=250', 'autoscaling.scaleDown.stabilizationWindowSeconds=60'];
    const [keda, hpa] = await Promise.all([autoscalerFromChart('keda', sets), autoscalerFromChart('hpa', sets)]);
    assert.equal(keda.rendered.kind, 'ScaledObject');
    assert.deepEqual(keda.spec.metrics, [{ type: 'External', name: 's0-prometheus', averageValue: 250 }]);
    assert.deepEqual([keda.spec.minReplicas, keda.spec.maxReplicas], [3, 20]);
    assert.deepEqual(keda.spec.behavior, hpa.spec.behavior);
    assert.deepEqual(keda.keda, {
      query: 'sum(websocket_connections_active{namespace="realtime",pod=~"echo-ws-echo-.*"})',
      pollingIntervalSeconds: 15,
      ignoreNullValues: false,
      useCachedMetrics: false,
    });
  });

  it('refuses a CPU metric, which the stand-in cannot measure', async () => {
    await assert.rejects(autoscalerFromChart('hpa', ['autoscaling.targetCPUUtilizationPercentage=70']), /Resource metric: the autoscaler stand-in measures connections only/);
    await assert.rejects(autoscalerFromChart('keda', ['autoscaling.targetCPUUtilizationPercentage=70']), /cpu trigger/);
  });

  it('reads quantities as the API writes them', () => {
    assert.deepEqual(
      ['250', '0.05', '50m', '5k', 7].map((q) => quantity(q)),
      [250, 0.05, 0.05, 5000, 7],
    );
    assert.throws(() => quantity('5 pods'), /cannot read the quantity/);
  });
});
