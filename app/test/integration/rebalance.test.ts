// The rebalancer on real services and reference clients: the fair share from
// a configured target or from the fleet (read through @kubernetes/client-node
// from the test kit's LOCAL FAKE API SERVER, which speaks the real pod list
// shapes), shedding at the configured rate, never below the share, 503 for
// upgrades meanwhile, cooldown, off switch. Its decisions, tick by tick on a
// mock clock: unit/rebalance.test.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoClient } from '../../src/client.js';
import { DELETION_COST_ANNOTATION } from '../../src/kube-api.js';
import type { Service } from '../../src/service.js';
import { FakeApiServer } from '../../testkit/fake-apiserver.js';
import { scrape, startTestService, waitFor } from '../../testkit/service.js';
import { connect, UpgradeRefused, wsUrl } from '../../testkit/websocket.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function service(env: Record<string, string>): Promise<Service> {
  const started = await startTestService(env);
  cleanups.push(() => started.close());
  return started;
}

/** `n` reference clients that start on `first` and move to `then` when shed. */
async function clientsOn(n: number, first: Service, then: Service): Promise<EchoClient[]> {
  const clients = Array.from({ length: n }, (_, i) => new EchoClient({ urls: [wsUrl(first.port), wsUrl(then.port)], id: `r${i}`, initialBackoffMs: 20 }));
  cleanups.push(() => Promise.all(clients.map((c) => c.stop(0))));
  await Promise.all(clients.map((c) => once(c.start(), 'open')));
  return clients;
}

const TARGET_ENV = {
  REBALANCE_TARGET_CONNECTIONS: '10',
  REBALANCE_TOLERANCE: '0.2',
  REBALANCE_RATE: '0.5',
  REBALANCE_INTERVAL_SECONDS: '0.2',
  REBALANCE_COOLDOWN_SECONDS: '1',
};

describe('rebalancing with a configured target', () => {
  it('sheds down to the share with 1013 at the configured rate, refuses upgrades meanwhile, and loses nothing', async () => {
    const hot = await service(TARGET_ENV);
    const cold = await service({ REBALANCE: 'off' });
    const clients = await clientsOn(30, hot, cold);
    const sender = setInterval(() => clients.forEach((c) => c.send()), 50);
    const rebalancer = hot.rebalancer;
    try {
      // Rounds by hand: the first above the threshold only notes it; the
      // second starts shedding with a budget of floor(rate × 30) = 15, spread over the 0.2 s interval.
      await rebalancer.tick();
      assert.equal(rebalancer.state, 'balanced', 'one round above the threshold is not enough');
      await rebalancer.tick();
      assert.equal(rebalancer.state, 'shedding');
      const refused = await connect(hot.port).catch((err: unknown) => err);
      assert.ok(refused instanceof UpgradeRefused && refused.status === 503, 'upgrades are refused while shedding');
      assert.equal(refused.headers['retry-after'], '1');
      await sleep(300);
      assert.equal(hot.rebalancer.status.shed, 15, 'one interval sheds exactly its budget');
      // The rest of the way on the timer.
      rebalancer.start();
      await waitFor('the hot service to reach its share', () => hot.connections.size === 10 && rebalancer.state === 'balanced', 5000);
      assert.equal(hot.rebalancer.status.shed, 20, 'never below the share');
      assert.equal(await scrape(hot.metricsPort, 'websocket_rebalance_share'), 10);
      assert.equal(await scrape(hot.metricsPort, 'websocket_rebalance_source', { source: 'target' }), 1);
      assert.equal(await scrape(hot.metricsPort, 'websocket_rebalance_shed_total'), 20);
      assert.equal(await scrape(hot.metricsPort, 'websocket_upgrades_rejected_total', { reason: 'rebalancing' }), 1);
      assert.equal(cold.connections.size, 20);
    } finally {
      rebalancer.stop();
      clearInterval(sender);
    }
    const lost = (await Promise.all(clients.map((c) => c.stop(3000)))).reduce((a, b) => a + b, 0);
    assert.equal(lost, 0);
    assert.equal(
      clients.reduce((n, c) => n + (c.stats.closeCodes[1013] ?? 0), 0),
      20,
    );
    assert.equal(
      clients.reduce((n, c) => n + c.stats.abnormalCloses + c.stats.failedUpgrades, 0),
      0,
    );
  });

  it('does nothing within the tolerance, and waits out the cooldown before shedding again', async () => {
    const hot = await service({ ...TARGET_ENV, REBALANCE_COOLDOWN_SECONDS: '2' });
    const cold = await service({ REBALANCE: 'off' });
    await clientsOn(12, hot, cold); // 12 ≤ 10 × 1.2: within the tolerance
    const rebalancer = hot.rebalancer;
    cleanups.push(() => rebalancer.stop());
    await rebalancer.tick();
    assert.equal(rebalancer.state, 'balanced');
    await clientsOn(8, hot, cold); // 20: above, sheds to 10
    rebalancer.start();
    await waitFor('the first episode to end', () => rebalancer.state === 'balanced' && hot.connections.size === 10, 5000);
    await clientsOn(10, hot, cold); // 20 again, right away
    await sleep(1000);
    assert.equal(hot.connections.size, 20, 'no shedding during the cooldown');
    await waitFor('the second episode after the cooldown', () => hot.connections.size === 10, 5000);
  });

  it('is off with REBALANCE=off, and stops for good when told (the drain does)', async () => {
    const off = await service({ ...TARGET_ENV, REBALANCE: 'off' });
    const other = await service({ REBALANCE: 'off' });
    await clientsOn(30, off, other);
    const idle = off.rebalancer;
    idle.start();
    await sleep(500);
    assert.equal(off.connections.size, 30);

    const on = await service(TARGET_ENV);
    await clientsOn(30, on, other);
    const stopped = on.rebalancer;
    await stopped.tick();
    await stopped.tick();
    assert.equal(on.admission.rebalancing, true);
    stopped.stop();
    assert.equal(on.admission.rebalancing, false, 'upgrades accepted again');
    await sleep(400);
    assert.equal(on.rebalancer.status.shed, 0, 'the scheduled batches were cancelled');
  });
});

describe('rebalancing with the fleet view (against a local fake API server)', () => {
  let api: FakeApiServer;
  let kubeconfig: string;
  before(async () => {
    api = new FakeApiServer();
    await api.listen();
    kubeconfig = api.writeKubeconfig(join(mkdtempSync(join(tmpdir(), 'ws-echo-fleet-')), 'kubeconfig'), 'apps');
  });
  after(() => api.close());

  it('takes the mean of the serving pods of its Deployment as its share', async () => {
    const labels = { 'app.kubernetes.io/name': 'ws-echo', 'app.kubernetes.io/instance': 'echo' };
    for (const name of ['old-a', 'new-b', 'new-c', 'starting-d', 'leaving-e']) api.addPod('apps', name, labels);
    for (const name of ['old-a', 'new-b', 'new-c', 'leaving-e']) api.setReady('apps', name, true);
    api.markTerminating('apps', 'leaving-e');
    api.addPod('apps', 'other-app', { 'app.kubernetes.io/name': 'something-else' });
    api.setReady('apps', 'other-app', true);
    const hot = await service({
      ...TARGET_ENV,
      REBALANCE_TARGET_CONNECTIONS: '0',
      KUBERNETES_INTEGRATION: 'on',
      KUBECONFIG: kubeconfig,
      POD_NAME: 'old-a',
      POD_NAMESPACE: 'apps',
      REBALANCE_POD_SELECTOR: 'app.kubernetes.io/name=ws-echo,app.kubernetes.io/instance=echo',
    });
    const cold = await service({ REBALANCE: 'off' });
    // The reports (pod-deletion-cost) of the pods, ours included.
    patchCost(api, 'old-a', 30);
    patchCost(api, 'new-b', 3);
    patchCost(api, 'new-c', 0);
    patchCost(api, 'starting-d', 400);
    patchCost(api, 'leaving-e', 500);
    await clientsOn(30, hot, cold);
    const rebalancer = hot.rebalancer;
    cleanups.push(() => rebalancer.stop());
    // Serving pods: old-a (30), new-b (3), new-c (0); starting-d is not ready, leaving-e is terminating, other-app is not ours.
    assert.deepEqual(await rebalancer.fairShare(), { source: 'fleet', share: 11, reported: 30 });
    rebalancer.start();
    await waitFor('the hot pod to reach the fleet mean', () => hot.connections.size <= 12 && rebalancer.state === 'balanced', 5000);
    const lists = api.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/api/v1/namespaces/apps/pods?'));
    assert.ok(lists.length >= 2);
    assert.equal(new URL(lists[0]!.path, 'http://x').searchParams.get('labelSelector'), 'app.kubernetes.io/name=ws-echo,app.kubernetes.io/instance=echo');
    assert.equal(await scrape(hot.metricsPort, 'websocket_rebalance_source', { source: 'fleet' }), 1);
  });

  it('falls back to the target when the API refuses the list, and logs the missing RBAC once', async () => {
    api.behaviour = 'forbidden';
    try {
      const hot = await service({
        ...TARGET_ENV,
        KUBERNETES_INTEGRATION: 'on',
        KUBECONFIG: kubeconfig,
        POD_NAME: 'old-a',
        POD_NAMESPACE: 'apps',
        REBALANCE_POD_SELECTOR: 'app.kubernetes.io/name=ws-echo',
      });
      const rebalancer = hot.rebalancer;
      assert.deepEqual(await rebalancer.fairShare(), { source: 'target', share: 10 });
      assert.equal(hot.counters.kubeApi.get('list forbidden'), 1);
    } finally {
      api.behaviour = 'ok';
    }
  });
});

function patchCost(api: FakeApiServer, pod: string, connections: number): void {
  const annotations = api.annotations('apps', pod)!;
  annotations[DELETION_COST_ANNOTATION] = String(connections);
}
