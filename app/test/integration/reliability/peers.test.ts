// Peers that stop cooperating after a good upgrade, against the real service
// as a child process: half-open connections (a peer that stops answering, or
// vanishes without a FIN) are found by the heartbeat and terminated, and
// clients that flood messages without reading their echoes are held to
// BACKPRESSURE_BYTES. Bystander reference clients lose nothing.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChildService } from '../../../testkit/child-service.js';
import { assertContained, Figures, mib, othersSaw, watched } from '../../../testkit/reliability.js';
import { scrape, waitFor } from '../../../testkit/service.js';
import { connect, upgradeRequest } from '../../../testkit/websocket.js';

const figures = new Figures('peers');
after(() => figures.write());

describe('half-open connections', () => {
  const INTERVAL = 0.5;
  let service: ChildService;
  before(async () => {
    service = await ChildService.start({ env: { HEARTBEAT_INTERVAL_SECONDS: String(INTERVAL), POD_NAME: 'half-open' } });
  });
  after(() => service.stop('SIGKILL'));

  it('terminates peers that stop answering pings or vanish without a FIN within two heartbeat intervals, and only those', async () => {
    const EACH = 50;
    const terminations = (): Promise<number> => scrape(service.metricsPort, 'websocket_heartbeat_terminations_total');
    const before = await terminations();
    const proxy = await Blackhole.start(service.port);
    const run = await watched(service, async () => {
      // Clients behind a proxy that will, at once, forget them: no FIN or RST ever reaches the server.
      const vanishing = await Promise.all(Array.from({ length: EACH }, () => connect(proxy.port)));
      // Clients that read but never answer a ping (ws with autoPong: false).
      const mute = await Promise.all(Array.from({ length: EACH }, () => connect(service.port, { autoPong: false })));
      const muteCodes = mute.map((ws) => once(ws, 'close').then(([code]) => code as number));
      // Raw sockets that complete the upgrade, then neither read nor write.
      const frozen = await Promise.all(Array.from({ length: EACH }, () => frozenPeer(service.port)));
      proxy.vanish();
      const silentAt = Date.now();
      await waitFor('the heartbeat to terminate all of them', async () => (await terminations()) - before >= 3 * EACH, 10_000);
      // Terminated means gone: only the bystanders are left.
      await waitFor('only the bystanders to be left', async () => (await scrape(service.metricsPort, 'websocket_connections_active')) === 4, 10_000);
      const seconds = (Date.now() - silentAt) / 1000;
      const codes = await Promise.all(muteCodes);
      for (const socket of frozen) socket.destroy();
      for (const ws of vanishing) ws.terminate();
      return { seconds, codes };
    });
    proxy.close();
    assert.ok(run.result.seconds <= 2 * INTERVAL + 2, `terminated ${run.result.seconds} s after they went silent (interval ${INTERVAL} s)`);
    assert.ok(
      run.result.codes.every((code) => code === 1006),
      'a terminated peer gets no close frame',
    );
    assertContained(run, 'half-open');
    // The bystanders answered every ping: nobody else was terminated.
    assert.equal((await terminations()) - before, 3 * EACH);
    assert.equal(await scrape(service.metricsPort, 'websocket_connections_active'), 0);
    figures.add({
      case: `half-open TCP, HEARTBEAT_INTERVAL_SECONDS=${INTERVAL}: ${EACH} clients that never pong, ${EACH} raw sockets that stop reading and writing, ${EACH} that vanish behind a proxy without FIN`,
      inputs: 3 * EACH,
      offender: `all ${3 * EACH} terminated without a close frame (1006) within ${run.result.seconds.toFixed(1)} s of the last one going silent; websocket_heartbeat_terminations_total +${3 * EACH}`,
      others: `${othersSaw(run.others)}, none terminated`,
      memory: run.memory,
      lost: run.others.lost,
    });
  });
});

describe('clients that flood without reading', () => {
  const BACKPRESSURE = 256 * 1024;
  const MESSAGE = 64 * 1024;
  let service: ChildService;
  before(async () => {
    service = await ChildService.start({
      env: {
        BACKPRESSURE_BYTES: String(BACKPRESSURE),
        MAX_PAYLOAD_BYTES: String(MESSAGE),
        HEARTBEAT_INTERVAL_SECONDS: '0',
        POD_NAME: 'slow-readers',
      },
    });
  });
  after(() => service.stop('SIGKILL'));

  it('holds what the server buffers for each slow reader near BACKPRESSURE_BYTES, and delivers every echo once they read', async () => {
    const READERS = 5;
    const PER_READER = 384; // 24 MiB each: far more than the loopback socket buffers hold
    let peakBuffered = 0;
    let peakPaused = 0;
    const run = await watched(service, async () => {
      const readers = await Promise.all(Array.from({ length: READERS }, () => connect(service.port)));
      const tcp = readers.map((ws) => (ws as unknown as { _socket: Socket })._socket);
      for (const socket of tcp) socket.pause();
      const echoed = readers.map(() => 0);
      readers.forEach((ws, i) => ws.on('message', () => echoed[i]!++));
      const sampler = setInterval(() => {
        void Promise.all([
          scrape(service.metricsPort, 'websocket_buffered_bytes'),
          scrape(service.metricsPort, 'websocket_backpressure_paused_connections'),
        ]).then(
          ([b, p]) => {
            peakBuffered = Math.max(peakBuffered, b);
            peakPaused = Math.max(peakPaused, p);
          },
          () => {},
        );
      }, 20);
      try {
        const payload = Buffer.alloc(MESSAGE, 0x6d);
        for (const ws of readers) for (let i = 0; i < PER_READER; i++) ws.send(payload);
        await waitFor('every reader to be paused by backpressure', () => peakPaused === READERS, 20_000);
        await sleep(500); // the flood keeps pressing
      } finally {
        clearInterval(sampler);
      }
      for (const socket of tcp) socket.resume();
      await waitFor('every echo after the readers resume', () => echoed.every((n) => n === PER_READER), 60_000);
      for (const ws of readers) ws.terminate();
      return echoed.reduce((a, b) => a + b, 0);
    });
    // One TCP read can land after the pause: the bound plus a few messages per reader.
    const bound = READERS * (BACKPRESSURE + 4 * MESSAGE);
    assert.ok(peakBuffered <= bound, `the server buffered up to ${peakBuffered} bytes for ${READERS} slow readers (bound ${bound})`);
    assert.equal(run.result, READERS * PER_READER);
    assertContained(run, 'slow readers');
    figures.add({
      case: `slow readers: ${READERS} clients each send ${PER_READER} × 64 KiB (${(PER_READER * MESSAGE) / 2 ** 20} MiB) without reading, BACKPRESSURE_BYTES=256 KiB; then they read`,
      inputs: READERS * PER_READER,
      offender: `reading paused (websocket_backpressure_paused_connections ${peakPaused}); websocket_buffered_bytes peaked at ${mib(peakBuffered)} MiB (bound ${mib(bound)} MiB); after resuming: ${run.result}/${READERS * PER_READER} echoes`,
      others: othersSaw(run.others),
      memory: run.memory,
      lost: run.others.lost + READERS * PER_READER - run.result,
    });
  });
});

/** A raw peer that completes the upgrade and then reads and writes nothing. */
async function frozenPeer(port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(upgradeRequest());
  await once(socket, 'data');
  socket.pause();
  return socket;
}

/**
 * A TCP proxy in front of the service that can "vanish" its clients: it stops
 * forwarding, drops the client side, and keeps the server side open without
 * ever sending a FIN, which is what the server sees of a peer whose machine
 * lost power or whose NAT mapping expired.
 */
class Blackhole {
  private constructor(
    readonly server: Server,
    readonly port: number,
    readonly pairs: readonly { client: Socket; upstream: Socket }[],
  ) {}

  static async start(targetPort: number): Promise<Blackhole> {
    const pairs: { client: Socket; upstream: Socket }[] = [];
    const server = createServer((client) => {
      const upstream = tcpConnect(targetPort, '127.0.0.1');
      client.on('error', () => {});
      upstream.on('error', () => {});
      client.pipe(upstream);
      upstream.pipe(client);
      pairs.push({ client, upstream });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return new Blackhole(server, (server.address() as { port: number }).port, pairs);
  }

  vanish(): void {
    for (const { client, upstream } of this.pairs) {
      // Unpipe first: an ending client would otherwise end the upstream too (a FIN).
      client.unpipe(upstream);
      upstream.unpipe(client);
      upstream.pause();
      client.destroy();
    }
  }

  close(): void {
    for (const { upstream } of this.pairs) upstream.destroy();
    this.server.close();
  }
}
