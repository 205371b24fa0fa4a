// The drain contract (docs/ARCHITECTURE.md), tested on the real process with real
// signals and reference clients (app/src/client.ts).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tcpConnect } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoClient, percentile } from '../../src/client.js';
import type { DrainSummary } from '../../src/drain.js';
import { ChildService } from '../../testkit/child-service.js';
import { httpGet } from '../../testkit/http.js';
import { scrape, startTestService, waitFor } from '../../testkit/service.js';
import { connect, UpgradeRefused, upgradeRequest, wsUrl } from '../../testkit/websocket.js';

// DRAIN_TEST_CLIENTS=2000 npm test -- … runs the large version by hand.
const CLIENTS = Number(process.env.DRAIN_TEST_CLIENTS ?? 500);

describe('drain on SIGTERM', () => {
  it(`closes ${CLIENTS} clients with 1012 spread over the window, refuses new ones, exits 0 in time, and the clients lose nothing on a second instance`, async () => {
    const windowSeconds = 3;
    const closeTimeoutSeconds = 1;
    const draining = await ChildService.start({
      env: {
        DRAIN_WINDOW_SECONDS: String(windowSeconds),
        DRAIN_CLOSE_TIMEOUT_SECONDS: String(closeTimeoutSeconds),
        POD_NAME: 'old',
      },
    });
    const other = await ChildService.start({ env: { POD_NAME: 'new' } });
    // The first URL is the draining instance; after its 1012 each client moves to the next one.
    const clients = Array.from(
      { length: CLIENTS },
      (_, i) => new EchoClient({ urls: [wsUrl(draining.port), wsUrl(other.port)], id: `c${i}`, paddingBytes: 16 }),
    );
    const closeAt = new Map<EchoClient, number>();
    for (const client of clients) client.once('close', () => closeAt.set(client, Date.now()));
    await Promise.all(clients.map((client) => once(client.start(), 'open')));
    assert.ok(clients.every((c) => c.servedBy === 'old'));

    const sender = setInterval(() => clients.forEach((c) => c.send()), 250);
    try {
      await sleep(500);
      const signalledAt = Date.now();
      draining.signal('SIGTERM');
      // The signal arrives asynchronously; from the moment the process handles it…
      await waitFor('the drain to start', () => draining.logs.some((l) => l.msg === 'drain started'));

      // …readiness and new upgrades are refused.
      assert.equal((await httpGet(draining.port, '/readyz')).status, 503);
      const refused = await connect(draining.port).catch((err: unknown) => err);
      assert.ok(refused instanceof UpgradeRefused && refused.status === 503, 'an upgrade during the drain gets 503');
      assert.equal(refused.headers['retry-after'], '1');

      const { code, at } = await draining.exited;
      const exitSeconds = (at - signalledAt) / 1000;
      assert.equal(code, 0);
      assert.ok(exitSeconds <= windowSeconds + closeTimeoutSeconds + 1, `exited after ${exitSeconds}s`);

      for (const client of clients) {
        assert.deepEqual(client.stats.closeCodes, { 1012: 1 }, `${client.servedBy}: only 1012, never 1006`);
      }
      // Spread: the first and the last tenth of the closes are at least half the window apart.
      const times = [...closeAt.values()].map((t) => (t - signalledAt) / 1000);
      const p10 = percentile(times, 10);
      const p90 = percentile(times, 90);
      assert.ok(p90 - p10 >= windowSeconds / 2, `closes spread from p10 ${p10}s to p90 ${p90}s`);
      const summary = draining.logs.find((l) => l.msg === 'drain finished');
      assert.equal(summary?.closeFramesSent, CLIENTS);
      assert.equal(summary?.terminated, 0);

      await waitFor('every client to reconnect to the other instance', () => clients.every((c) => c.connected && c.servedBy === 'new'), 10_000);
      await sleep(500);
      report('drain', { clients: CLIENTS, exitSeconds, p10, p90, first: Math.min(...times), last: Math.max(...times) });
    } catch (err) {
      // A failed assertion must not leave 500 clients and two processes behind to hang the run.
      await Promise.all(clients.map((c) => c.stop(0)));
      await Promise.all([draining.stop('SIGKILL'), other.stop('SIGKILL')]);
      throw err;
    } finally {
      clearInterval(sender);
    }
    const lost = (await Promise.all(clients.map((c) => c.stop(5000)))).reduce((a, b) => a + b, 0);
    const total = (key: 'sent' | 'echoed' | 'duplicated' | 'corrupted' | 'outOfOrder' | 'failedUpgrades' | 'abnormalCloses'): number =>
      clients.reduce((sum, c) => sum + c.stats[key], 0);
    report('drain messages', { sent: total('sent'), echoed: total('echoed'), lost, duplicated: total('duplicated') });
    assert.equal(lost, 0, 'no message lost');
    assert.equal(total('echoed'), total('sent'));
    assert.equal(total('duplicated'), 0);
    assert.equal(total('corrupted'), 0);
    assert.equal(total('outOfOrder'), 0);
    assert.equal(total('abnormalCloses'), 0);
    assert.equal(total('failedUpgrades'), 0);
    await other.stop('SIGTERM');
  });

  it('terminates a client that never answers the close frame at the close timeout, and still exits 0', async () => {
    const service = await ChildService.start({ env: { DRAIN_WINDOW_SECONDS: '0.5', DRAIN_CLOSE_TIMEOUT_SECONDS: '1' } });
    // A raw client: completes the upgrade, then reads nothing and answers nothing.
    const mute = tcpConnect(service.port, '127.0.0.1');
    await once(mute, 'connect');
    mute.write(upgradeRequest());
    await once(mute, 'data');
    mute.on('error', () => {});
    const polite = new EchoClient({ urls: [wsUrl(service.port)], id: 'polite' });
    await once(polite.start(), 'open');

    const signalledAt = Date.now();
    service.signal('SIGTERM');
    await once(mute, 'close');
    const cutAfter = (Date.now() - signalledAt) / 1000;
    const { code, at } = await service.exited;
    assert.ok(cutAfter >= 1.4 && cutAfter <= 2.5, `the mute client was cut ${cutAfter}s after SIGTERM (window 0.5 + timeout 1)`);
    assert.equal(code, 0);
    assert.ok((at - signalledAt) / 1000 <= 0.5 + 1 + 1);
    assert.equal(polite.stats.closeCodes[1012], 1);
    const summary = service.logs.find((l) => l.msg === 'drain finished');
    assert.equal(summary?.terminated, 1);
    assert.equal(summary?.closedGracefully, 1);
    await polite.stop(0);
  });

  it('closes everything at once on a second signal', async () => {
    const service = await ChildService.start({ env: { DRAIN_WINDOW_SECONDS: '60', DRAIN_CLOSE_TIMEOUT_SECONDS: '10' } });
    const clients = Array.from(
      { length: 50 },
      (_, i) => new EchoClient({ urls: [wsUrl(service.port)], id: `f${i}`, maxBackoffMs: 60_000, initialBackoffMs: 60_000 }),
    );
    await Promise.all(clients.map((c) => once(c.start(), 'open')));
    service.signal('SIGTERM');
    await sleep(500);
    const early = clients.filter((c) => !c.connected).length;
    assert.ok(early < 10, `only a few of 50 closed in the first 0.5 s of a 60 s window (${early})`);
    const secondAt = Date.now();
    service.signal('SIGINT');
    const { code, at } = await service.exited;
    assert.equal(code, 0);
    assert.ok(at - secondAt < 2000, `exited ${at - secondAt} ms after the second signal`);
    for (const client of clients) assert.deepEqual(client.stats.closeCodes, { 1012: 1 });
    await Promise.all(clients.map((c) => c.stop(0)));
  });
});

describe('DrainController in-process', () => {
  it('reports its state and progress in metrics, and calls exit(0) once with a summary', async () => {
    const service = await startTestService({ DRAIN_WINDOW_SECONDS: '1', DRAIN_CLOSE_TIMEOUT_SECONDS: '1' });
    const { drain, exits } = service;
    const clients = Array.from({ length: 20 }, (_, i) => new EchoClient({ urls: [wsUrl(service.port)], id: `m${i}`, initialBackoffMs: 60_000 }));
    await Promise.all(clients.map((c) => once(c.start(), 'open')));
    assert.equal(await scrape(service.metricsPort, 'websocket_drain_state', { state: 'serving' }), 1);

    drain.onSignal('SIGTERM');
    await sleep(400);
    assert.equal(drain.state, 'draining');
    assert.equal(await scrape(service.metricsPort, 'websocket_drain_state', { state: 'draining' }), 1);
    assert.equal(await scrape(service.metricsPort, 'websocket_drain_connections'), 20);
    const sentSoFar = await scrape(service.metricsPort, 'websocket_drain_close_frames_sent_total');
    assert.ok(sentSoFar > 0 && sentSoFar < 20, `part of the window, part of the closes (${sentSoFar})`);
    drain.onSignal('SIGTERM'); // a repeated signal hurries the drain; it never starts a second one
    const summary: DrainSummary = await drain.finished;
    assert.deepEqual(exits, [0]);
    assert.equal(drain.state, 'exited');
    assert.equal(summary.connections, 20);
    assert.equal(summary.closeFramesSent, 20);
    assert.equal(summary.closedGracefully, 20);
    assert.equal(summary.terminated, 0);
    assert.equal(await scrape(service.metricsPort, 'websocket_drain_state', { state: 'exited' }), 1);
    assert.equal(await scrape(service.metricsPort, 'websocket_drain_close_frames_sent_total'), 20);
    assert.equal(await scrape(service.metricsPort, 'websocket_drain_connections_closed_total', { how: 'graceful' }), 20);
    assert.equal(await scrape(service.metricsPort, 'websocket_closes_total', { code: '1012' }), 20);
    drain.onSignal('SIGTERM'); // after exit: ignored
    assert.deepEqual(exits, [0]);
    await Promise.all(clients.map((c) => c.stop(0)));
    await service.close();
  });

  it('with no open connection, finishes at once', async () => {
    const service = await startTestService({ DRAIN_WINDOW_SECONDS: '30' });
    const { drain } = service;
    const started = Date.now();
    drain.onSignal('SIGTERM');
    await drain.finished;
    assert.ok(Date.now() - started < 1000);
    await service.close();
  });
});

/** Prints measured figures into the test output (they are not pass/fail). */
function report(what: string, figures: Record<string, number>): void {
  console.log(
    `# ${what}: ${Object.entries(figures)
      .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`)
      .join(' ')}`,
  );
}
