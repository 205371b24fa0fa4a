// The loop closed on the local cluster (a short `npm run rollout -- --mode
// autoscale`): the chart's HPA, rendered by real helm and run by the
// autoscaler stand-in against the real Prometheus that scrapes the real
// replicas behind real nginx, while reference clients rise from 60 to 180
// and fall back. The pods go up and come back down; nothing is lost. The
// algorithm itself, on a made-up clock: unit/autoscaler.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runScenario } from '../../testkit/cluster/scenario.js';
import { needs, needsFetched } from '../../testkit/tools.js';

describe('autoscaling on connections in the local cluster', { skip: needs('nginx', 'prometheus') ?? needsFetched('helm') }, () => {
  it('the HPA stand-in scales 2 → 4 as clients triple and back to 2 as they leave, removing the emptiest pods through their drain; nothing lost, no abnormal close, no failed upgrade', async () => {
    const report = await runScenario({
      mode: 'autoscale',
      replicas: 2,
      clients: 60,
      rate: 2,
      durationSeconds: 1,
      // Chart values need whole seconds for the preStop; the grace period, and so the scale-down period, is 1 + 1 + 1 + 1 = 4 s.
      drain: { windowSeconds: 1, closeTimeoutSeconds: 1, preStopSeconds: 1 },
      scaleTo: 2,
      // Gentle enough that clients in flight between pods do not make the summed metric dip past the tolerance for long.
      rebalance: { intervalSeconds: 1, rate: 0.1, tolerance: 0.2, cooldownSeconds: 30 },
      prometheus: true,
      progress: false,
      dir: mkdtempSync(join(tmpdir(), 'ws-echo-autoscale-')),
      command: 'test autoscale',
      autoscale: {
        autoscaler: 'hpa',
        sets: [
          'autoscaling.targetConnectionsPerPod=50',
          'autoscaling.minReplicas=2',
          'autoscaling.scaleDown.stabilizationWindowSeconds=4',
          'drain.marginSeconds=1',
        ],
        syncPeriodSeconds: 1,
        profile: { shape: 'steps', from: 60, peak: 180, steps: 1, startSeconds: 4, holdSeconds: 9, holdDownSeconds: 12, rampSeconds: 0 },
      },
    });
    const t = report.totals;
    const run = report.autoscale!;
    const [up, down] = run.steps;
    const s = (value: number | undefined): string => (value === undefined ? '–' : `${value.toFixed(1)}s`);
    console.log(
      `# autoscale: sent=${t.sent} echoed=${t.echoed} lost=${t.lost} abnormal=${t.abnormalCloses} failedUpgrades=${t.failedUpgrades} closes=${JSON.stringify(run.closesByCode)}; ` +
        `up ${up!.replicasBefore}→${up!.replicasAfter} first decision ${s(up!.firstDecisionSeconds)} endpoints ${s(up!.servingSeconds)}; ` +
        `down ${down!.replicasBefore}→${down!.replicasAfter} first decision ${s(down!.firstDecisionSeconds)} endpoints ${s(down!.servingSeconds)} drained ${s(down!.drainedSeconds)}; ` +
        `scale-downs moved/fewest ${run.scaleDowns.map((d) => `${d.moved}/${d.fewestPossible}`).join(', ')}; ${report.durationSeconds.toFixed(1)}s`,
    );
    assert.deepEqual(report.failures, []);
    assert.equal(t.lost, 0);
    assert.equal(t.abnormalCloses, 0);
    assert.equal(t.failedUpgrades, 0);
    assert.equal(t.echoed, t.sent);
    assert.ok(t.sent > 1000);

    // Up: the stand-in read 180 connections over 2 pods, set 4, and 4 pods served by the end of the level.
    assert.deepEqual([up!.direction, up!.replicasBefore, up!.replicasAfter, up!.settled], ['up', 2, 4, true]);
    assert.ok(up!.servingSeconds !== undefined, 'the Service reached 4 endpoints and kept them');
    const firstUp = run.decisions.find((d) => d.rescaled && d.desiredReplicas > d.currentReplicas)!;
    assert.ok(firstUp.proposals[0]!.current! > 50 * 1.1, `it scaled up on a value above the target and its tolerance (${firstUp.proposals[0]!.current})`);
    assert.ok((run.closesByCode['1013'] ?? 0) > 0, 'the rebalancer moved clients onto the new pods (1013)');

    // Down: back to 2 within the level, a pod at a time, each through its drain.
    assert.deepEqual([down!.direction, down!.replicasAfter, down!.settled], ['down', 2, true]);
    assert.ok(down!.drainedSeconds !== undefined, 'the last removed pod drained and exited within the level');
    assert.ok(run.scaleDowns.length >= 2, 'two scale-downs of one pod each (the policy: one pod per grace period)');
    for (const choice of run.scaleDowns) assert.equal(choice.victims.length, 1);
    // The ReplicaSet stand-in deleted the ready pod with the lowest pod-deletion-cost.
    for (const choice of run.scaleDowns) {
      const ready = choice.candidates.filter((c) => c.ready);
      assert.equal(ready.length, choice.from, 'every candidate was serving');
      assert.equal(choice.victims[0]!.cost, Math.min(...ready.map((c) => c.cost)));
    }
    // Every client a removed pod held got its 1012 and reconnected: the drains closed exactly what the clients saw as 1012.
    const drained = run.scaleDowns.reduce((n, d) => n + (d.drained ?? NaN), 0);
    assert.ok(drained > 0, 'the removed pods had clients: the new pods had filled');
    assert.equal(run.closesByCode['1012'] ?? 0, drained);
  });
});
