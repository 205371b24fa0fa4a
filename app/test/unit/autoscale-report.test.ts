// The figures of an autoscale run (testkit/cluster/autoscale-report.ts) on
// made-up timelines, and the order in which the ReplicaSet stand-in deletes
// pods (testkit/cluster/replicaset.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scaleDownMoves, servingImbalance, stepReactions } from '../../testkit/cluster/autoscale-report.js';
import type { AutoscalerDecision } from '../../testkit/cluster/autoscaler-controller.js';
import type { ClusterEvent, ReplicaCount, ScaleDownChoice } from '../../testkit/cluster/local-cluster.js';
import { podsToDelete } from '../../testkit/cluster/replicaset.js';
import type { Plateau } from '../../testkit/load-profile.js';

const count = (t: number, spec: number, serving: number, starting = 0, terminating = 0): ReplicaCount => ({ t, spec, serving, starting, terminating });

/** A decision that set spec.replicas from `from` to `to` at `t` ms. */
function decision(t: number, from: number, to: number): AutoscalerDecision {
  return {
    t,
    now: t,
    currentReplicas: from,
    statusReplicas: from,
    proposals: [],
    metricReplicas: to,
    stabilized: to,
    desiredReplicas: to,
    scalingActive: 'ValidMetricFound',
    ableToScale: 'SucceededRescale',
    scalingLimited: 'DesiredWithinRange',
    rescaled: from !== to,
    reading: { total: 0 },
  };
}

describe('how the replica count followed each load level', () => {
  // The profile starts 5 s after the cluster: up to 300 clients at 15 s, down to 100 at 35 s, end at 65 s.
  const plateaus: Plateau[] = [
    { clients: 100, changeAt: 0, reachedAt: 0, until: 10, direction: 'start' },
    { clients: 300, changeAt: 10, reachedAt: 10, until: 30, direction: 'up' },
    { clients: 100, changeAt: 30, reachedAt: 30, until: 60, direction: 'down' },
  ];
  const counts = [
    count(1000, 2, 2),
    count(17_000, 4, 2, 2),
    count(19_000, 4, 3, 1),
    count(19_500, 4, 4),
    count(45_000, 3, 3, 0, 1),
    count(50_000, 3, 3),
    count(55_000, 2, 2, 0, 1),
    count(58_000, 2, 2),
  ];
  const decisions = [decision(16_000, 2, 4), decision(30_000, 4, 4), decision(45_000, 4, 3), decision(55_000, 3, 2)];
  const events: ClusterEvent[] = [
    { t: 50_000, kind: 'exited', replica: 'c' },
    { t: 58_000, kind: 'exited', replica: 'd' },
  ];
  const closes = [
    { t: 20_000, code: 1013 },
    { t: 21_000, code: 1013 },
    { t: 35_500, code: 1000 },
    { t: 35_600, code: 1000 },
    { t: 46_000, code: 1012 },
  ];

  it('times each level from the moment the load began to change', () => {
    const [up, down] = stepReactions(plateaus, 5000, decisions, counts, events, closes);
    assert.deepEqual(up, {
      clients: 300,
      direction: 'up',
      changeAt: 15_000,
      until: 35_000,
      replicasBefore: 2,
      replicasAfter: 4,
      firstDecisionSeconds: 1,
      desiredSeconds: 1,
      servingSeconds: 4.5,
      drainedSeconds: undefined,
      settled: true,
      closes: { 1013: 2 },
    });
    assert.deepEqual(down, {
      clients: 100,
      direction: 'down',
      changeAt: 35_000,
      until: 65_000,
      replicasBefore: 4,
      replicasAfter: 2,
      firstDecisionSeconds: 10,
      desiredSeconds: 20,
      servingSeconds: 20,
      drainedSeconds: 23,
      settled: true,
      closes: { 1000: 2, 1012: 1 },
    });
  });

  it('says when a level ended before the pods caught up, and gives no time for a count that never held', () => {
    // The last pod is still draining when the level ends at 65 s.
    const late = [...counts.slice(0, 6), count(62_000, 2, 2, 0, 1)];
    const [, down] = stepReactions(plateaus, 5000, decisions.slice(0, 3), late, events.slice(0, 1), closes);
    assert.equal(down!.settled, false);
    assert.equal(down!.replicasAfter, 2);
    assert.equal(down!.desiredSeconds, undefined, 'no decision set 2 within the level');
    assert.equal(down!.servingSeconds, 27);
    assert.equal(down!.drainedSeconds, undefined, 'the last drain was not over');
  });
});

describe('clients moved by each scale-down against the fewest possible', () => {
  it('compares the deleted pods with the emptiest ones at the moment of the choice', () => {
    const choices: ScaleDownChoice[] = [
      {
        // b's annotation lagged: 20 reported, 8 open. The ReplicaSet deleted a (cost 10, 12 open).
        t: 1000,
        from: 3,
        to: 2,
        candidates: [
          { pod: 'a', phase: 'Running', ready: true, cost: 10, connections: 12 },
          { pod: 'b', phase: 'Running', ready: true, cost: 20, connections: 8 },
          { pod: 'c', phase: 'Running', ready: true, cost: 30, connections: 30 },
        ],
        victims: ['a'],
      },
      {
        t: 2000,
        from: 5,
        to: 3,
        candidates: [5, 7, 9, 20, 30].map((n) => ({ pod: `p${n}`, phase: 'Running', ready: true, cost: n, connections: n })),
        victims: ['p5', 'p9'],
      },
    ];
    const drained: Record<string, number> = { a: 11, p5: 5 };
    const [first, second] = scaleDownMoves(choices, (pod) => drained[pod]);
    assert.deepEqual([first!.moved, first!.fewestPossible, first!.drained], [12, 8, 11]);
    assert.deepEqual(first!.victims, [{ pod: 'a', cost: 10, connections: 12, drained: 11 }]);
    // Two of five: the fewest possible is 5 + 7.
    assert.deepEqual([second!.moved, second!.fewestPossible, second!.drained], [14, 12, undefined]);
  });

  it('counts a pod that is not serving yet as empty', () => {
    const [move] = scaleDownMoves(
      [
        {
          t: 0,
          from: 2,
          to: 1,
          candidates: [
            { pod: 'new', phase: 'Pending', ready: false, cost: 0, connections: undefined },
            { pod: 'old', phase: 'Running', ready: true, cost: 50, connections: 50 },
          ],
          victims: ['new'],
        },
      ],
      () => undefined,
    );
    assert.deepEqual([move!.moved, move!.fewestPossible], [0, 0]);
  });
});

describe('imbalance between serving pods', () => {
  it('takes max / mean over the pods that were endpoints at each sample', () => {
    const events: ClusterEvent[] = [
      { t: 4000, kind: 'added', replica: 'c' },
      { t: 8000, kind: 'removed', replica: 'a' },
    ];
    const series = servingImbalance(
      [
        { t: 1000, connections: { a: 10, b: 30 } },
        { t: 5000, connections: { a: 10, b: 30, c: 0 } },
        // a drains: out of the Service, not an imbalance.
        { t: 9000, connections: { a: 2, b: 20, c: 20 } },
      ],
      events,
      ['a', 'b'],
    );
    assert.deepEqual(
      series.map((p) => [p.t, Number(p.ratio.toFixed(2))]),
      [
        [1000, 1.5],
        [5000, 2.25],
        [9000, 1],
      ],
    );
  });
});

describe("the ReplicaSet's deletion order", () => {
  it('Pending first, then not ready, then the lowest pod-deletion-cost, then the newest', () => {
    const pod = (name: string, phase: string, ready: boolean, cost: number, createdAt: number) => ({ name, phase, ready, cost, createdAt });
    const candidates = [
      pod('old-5', 'Running', true, 5, 1000),
      pod('new-5', 'Running', true, 5, 2000),
      pod('pending', 'Pending', false, 0, 3000),
      pod('unready', 'Running', false, 100, 500),
      pod('cheap', 'Running', true, 1, 100),
    ];
    assert.deepEqual(
      podsToDelete(candidates, 5).map((p) => p.name),
      ['pending', 'unready', 'cheap', 'new-5', 'old-5'],
    );
    assert.deepEqual(
      podsToDelete(candidates, 0).map((p) => p.name),
      [],
    );
  });
});
