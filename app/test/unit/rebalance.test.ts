// The rebalancer's decisions on node:test's mock clock: when it starts and
// stops shedding, how many sockets each round may close and when, the
// cooldown, the fair share from the fleet's reports, and its stop. Real
// services and clients: integration/rebalance.test.ts.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { RebalanceConfig } from '../../src/config.js';
import type { FleetPod } from '../../src/kube-api.js';
import { Rebalancer, type FleetView } from '../../src/rebalance.js';
import { TRY_AGAIN_LATER } from '../../src/sockets.js';
import { FakeSocketSet } from '../../testkit/fake-sockets.js';
import { capturingLogger } from '../../testkit/logs.js';

beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 0 }));
afterEach(() => mock.timers.reset());

/** Lets a round started by the timer run to its end (it awaits the fair share). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const CONFIG: RebalanceConfig = {
  enabled: true,
  podSelector: undefined,
  targetConnections: 10,
  tolerance: 0.2,
  rate: 0.5,
  intervalSeconds: 1,
  cooldownSeconds: 2,
};

function rebalancerOf(sockets: FakeSocketSet, config: Partial<RebalanceConfig> = {}, fleet?: FleetView) {
  const admission = { accepting: true, rebalancing: false, memoryPressure: false };
  const rebalancer = new Rebalancer({
    sockets,
    admission,
    config: { ...CONFIG, ...config },
    podName: 'me',
    fleet,
    logger: capturingLogger().logger,
    // Every batch at the middle of its interval.
    random: () => 0.5,
  });
  return { rebalancer, admission };
}

describe('rebalancing decisions (mock clock)', () => {
  it('sheds only after two rounds above share × (1 + tolerance), at most rate × own per round, down to the share and no further', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(30);
    const { rebalancer, admission } = rebalancerOf(sockets);
    await rebalancer.tick();
    assert.equal(rebalancer.state, 'balanced', 'one round above the threshold is not enough');
    await rebalancer.tick();
    assert.equal(rebalancer.state, 'shedding');
    assert.equal(admission.rebalancing, true, 'upgrades are refused while shedding');
    assert.deepEqual([rebalancer.status.source, rebalancer.status.share, rebalancer.status.shedding], ['target', 10, true]);
    // Budget floor(0.5 × 30) = 15, in five batches, all at 0.5 × the 1 s interval here.
    mock.timers.tick(499);
    assert.equal(sockets.closedWith(TRY_AGAIN_LATER), 0);
    mock.timers.tick(1);
    assert.equal(sockets.closedWith(TRY_AGAIN_LATER), 15);
    await rebalancer.tick();
    // 15 left: the budget is min(15 − 10, floor(0.5 × 15)) = 5.
    mock.timers.tick(500);
    assert.equal(sockets.closedWith(TRY_AGAIN_LATER), 20);
    assert.equal(sockets.size, 10);
    await rebalancer.tick();
    assert.equal(rebalancer.state, 'balanced', 'back at the share');
    assert.equal(admission.rebalancing, false);
    assert.equal(rebalancer.status.shed, 20);
  });

  it('does nothing within the tolerance', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(12); // 12 ≤ 10 × 1.2
    const { rebalancer } = rebalancerOf(sockets);
    for (let i = 0; i < 5; i++) await rebalancer.tick();
    assert.equal(rebalancer.state, 'balanced');
    assert.equal(sockets.closedWith(TRY_AGAIN_LATER), 0);
  });

  it('waits out the cooldown after an episode before it may shed again', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(20);
    const { rebalancer } = rebalancerOf(sockets, { rate: 1 });
    await rebalancer.tick();
    await rebalancer.tick();
    mock.timers.tick(1000);
    await rebalancer.tick(); // at the share at t = 1 s: cooldown until 3 s
    assert.equal(rebalancer.state, 'balanced');
    sockets.add(10);
    await rebalancer.tick();
    await rebalancer.tick();
    assert.equal(rebalancer.state, 'balanced', 'no shedding during the cooldown');
    mock.timers.tick(2000); // t = 3 s
    await rebalancer.tick(); // above, first round after the cooldown
    assert.equal(rebalancer.state, 'balanced');
    await rebalancer.tick();
    assert.equal(rebalancer.state, 'shedding');
  });

  it('never closes below the share, even when sockets left since the round was planned', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(30);
    const { rebalancer } = rebalancerOf(sockets, { rate: 1 });
    await rebalancer.tick();
    await rebalancer.tick(); // plans 20 closes
    for (const socket of sockets.snapshot().slice(0, 15)) sockets.remove(socket); // 15 clients leave on their own
    mock.timers.tick(1000);
    assert.equal(sockets.size, 10);
    assert.equal(sockets.closedWith(TRY_AGAIN_LATER), 5);
  });

  it('runs a round every interval once started, and stops for good: batches cancelled, upgrades accepted again', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(40);
    const { rebalancer, admission } = rebalancerOf(sockets);
    rebalancer.start();
    mock.timers.tick(1000);
    await settle();
    mock.timers.tick(1000); // second round: shedding, 20 planned at 2.5 s
    await settle();
    assert.equal(rebalancer.state, 'shedding');
    rebalancer.stop();
    assert.equal(admission.rebalancing, false);
    mock.timers.tick(5000);
    assert.equal(sockets.closedWith(TRY_AGAIN_LATER), 0, 'the planned batches were cancelled');
  });

  it('does nothing while the pod drains', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(30);
    const { rebalancer, admission } = rebalancerOf(sockets);
    admission.accepting = false;
    await rebalancer.tick();
    await rebalancer.tick();
    assert.equal(rebalancer.state, 'balanced');
  });
});

describe('the fair share', () => {
  const pod = (name: string, serving: boolean, connections: number): FleetPod => ({ name, serving, connections });
  const fleetOf = (pods: FleetPod[] | undefined): FleetView => ({ listFleet: () => Promise.resolve(pods) });

  it("is the mean of the serving pods' reports, ours included, rounded up", async () => {
    const sockets = new FakeSocketSet();
    sockets.add(30);
    const fleet = fleetOf([pod('me', true, 30), pod('b', true, 3), pod('c', true, 0), pod('starting', false, 400), pod('leaving', false, 500)]);
    const { rebalancer } = rebalancerOf(sockets, { podSelector: 'app=ws-echo', targetConnections: 0 }, fleet);
    assert.deepEqual(await rebalancer.fairShare(), { source: 'fleet', share: 11, reported: 30 });
  });

  it('sheds only when our report in the same snapshot is above it too: a fleet-wide connect ramp moves no one', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(100);
    // Every pod is gaining clients; the reports are a moment old and even.
    let pods = [pod('me', true, 40), pod('b', true, 45)];
    const fleet: FleetView = { listFleet: () => Promise.resolve(pods) };
    const { rebalancer } = rebalancerOf(sockets, { podSelector: 'app=ws-echo', targetConnections: 0 }, fleet);
    for (let round = 0; round < 3; round++) await rebalancer.tick();
    assert.equal(rebalancer.state, 'balanced', 'live 100 against a share of 43, but our report (40) is at the share');
    // Two new pods join with nothing: now our report is above the share too.
    pods = [pod('me', true, 100), pod('b', true, 100), pod('c', true, 0), pod('d', true, 0)];
    await rebalancer.tick();
    await rebalancer.tick();
    assert.deepEqual([rebalancer.state, rebalancer.status.share], ['shedding', 50]);
  });

  it('counts our own live count when the fleet does not list us yet', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(20);
    const { rebalancer } = rebalancerOf(sockets, { podSelector: 'app=ws-echo' }, fleetOf([pod('b', true, 4)]));
    assert.deepEqual(await rebalancer.fairShare(), { source: 'fleet', share: 12 });
  });

  it('falls back to the target when the fleet cannot be listed, and to none without a target', async () => {
    const sockets = new FakeSocketSet();
    const { rebalancer } = rebalancerOf(sockets, { podSelector: 'app=ws-echo' }, fleetOf(undefined));
    assert.deepEqual(await rebalancer.fairShare(), { source: 'target', share: 10 });
    const { rebalancer: none } = rebalancerOf(sockets, { targetConnections: 0 });
    assert.deepEqual(await none.fairShare(), { source: 'none', share: 0 });
  });

  it('is unknown (0) while every serving pod reports 0', async () => {
    const sockets = new FakeSocketSet();
    const { rebalancer } = rebalancerOf(sockets, { podSelector: 'app=ws-echo', targetConnections: 0 }, fleetOf([pod('me', true, 0), pod('b', true, 0)]));
    assert.deepEqual(await rebalancer.fairShare(), { source: 'fleet', share: 0, reported: 0 });
  });
});
