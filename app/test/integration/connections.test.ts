// Echo, message limits, heartbeat and backpressure, over real sockets.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WebSocket } from 'ws';
import type { Service } from '../../src/service.js';
import { scrape, startTestService, waitFor } from '../../testkit/service.js';
import { closed, connect } from '../../testkit/websocket.js';

describe('echo', () => {
  let service: Service;
  before(async () => {
    service = await startTestService();
  });
  after(() => service.close());

  it('echoes 1,000 pipelined text and binary messages unchanged, same type, in order', async () => {
    const ws = await connect(service.port);
    const sent: { data: Buffer; binary: boolean }[] = [];
    for (let i = 0; i < 1000; i++) {
      const binary = i % 3 === 0;
      const data = binary ? Buffer.from([i & 0xff, (i >> 8) & 0xff, 0, 0xff]) : Buffer.from(`message ${i} héllo ✓`);
      sent.push({ data, binary });
      ws.send(data, { binary });
    }
    const received: { data: Buffer; binary: boolean }[] = [];
    ws.on('message', (data: Buffer, binary: boolean) => received.push({ data, binary }));
    await waitFor('1,000 echoes', () => received.length === 1000);
    for (let i = 0; i < 1000; i++) {
      assert.equal(received[i]?.binary, sent[i]?.binary, `message ${i} kept its type`);
      assert.deepEqual(received[i]?.data, sent[i]?.data, `message ${i} came back unchanged`);
    }
    ws.close();
    await closed(ws);
    assert.equal(await scrape(service.metricsPort, 'websocket_messages_total', { direction: 'in' }), 1000);
    assert.equal(await scrape(service.metricsPort, 'websocket_messages_total', { direction: 'out' }), 1000);
  });

  it('echoes an empty message and one of exactly MAX_PAYLOAD_BYTES', async () => {
    const ws = await connect(service.port);
    const full = Buffer.alloc(service.config.maxPayloadBytes, 7);
    ws.send(Buffer.alloc(0), { binary: true });
    ws.send(full, { binary: true });
    const echoes: Buffer[] = [];
    ws.on('message', (data: Buffer) => echoes.push(data));
    await waitFor('two echoes', () => echoes.length === 2);
    assert.equal(echoes[0]?.length, 0);
    assert.deepEqual(echoes[1], full);
    ws.close();
  });
});

describe('message limits', () => {
  let service: Service;
  before(async () => {
    service = await startTestService({ MAX_PAYLOAD_BYTES: '1024' });
  });
  after(() => service.close());

  it('closes with 1009 when a message exceeds MAX_PAYLOAD_BYTES, and other clients keep echoing', async () => {
    const bystander = await connect(service.port);
    const offender = await connect(service.port);
    const done = closed(offender);
    offender.send(Buffer.alloc(1025));
    assert.equal((await done).code, 1009);
    await assertEchoes(bystander);
    assert.equal(await scrape(service.metricsPort, 'websocket_protocol_errors_total', { reason: 'message_too_big' }), 1);
    bystander.close();
  });

  it('closes with 1009 when fragments add up past MAX_PAYLOAD_BYTES', async () => {
    const offender = await connect(service.port);
    const done = closed(offender);
    offender.send(Buffer.alloc(600), { fin: false, binary: true });
    offender.send(Buffer.alloc(600), { fin: true, binary: true });
    assert.equal((await done).code, 1009);
  });

  it('closes with 1007 when a text message is not valid UTF-8', async () => {
    const bystander = await connect(service.port);
    const offender = await connect(service.port);
    const done = closed(offender);
    offender.send(Buffer.from([0x68, 0x69, 0xc3, 0x28]), { binary: false }); // "hi" + a broken 2-byte sequence
    assert.equal((await done).code, 1007);
    await assertEchoes(bystander);
    assert.equal(await scrape(service.metricsPort, 'websocket_protocol_errors_total', { reason: 'invalid_utf8' }), 1);
    bystander.close();
  });
});

describe('connection gauge', () => {
  let service: Service;
  before(async () => {
    service = await startTestService();
  });
  after(() => service.close());

  const active = (): Promise<number> => scrape(service.metricsPort, 'websocket_connections_active');

  it('follows opens, clean closes and abrupt disconnects exactly', async () => {
    assert.equal(await active(), 0);
    const clients = await Promise.all(Array.from({ length: 25 }, () => connect(service.port)));
    assert.equal(await active(), 25);
    await Promise.all(
      clients.slice(0, 10).map(async (ws) => {
        const done = closed(ws);
        ws.close(1000);
        await done;
      }),
    );
    await waitFor('server to see 10 clean closes', async () => (await active()) === 15);
    // Abrupt: destroy the TCP socket without a close frame.
    for (const ws of clients.slice(10, 15)) ws.terminate();
    await waitFor('server to see 5 disconnects', async () => (await active()) === 10);
    assert.equal(await scrape(service.metricsPort, 'websocket_closes_total', { code: '1000' }), 10);
    assert.equal(await scrape(service.metricsPort, 'websocket_closes_total', { code: '1006' }), 5);
    assert.equal(await scrape(service.metricsPort, 'websocket_upgrades_accepted_total'), 25);
    for (const ws of clients.slice(15)) ws.close();
    await waitFor('all closed', async () => (await active()) === 0);
  });
});

describe('heartbeat', () => {
  let service: Service;
  before(async () => {
    service = await startTestService({ HEARTBEAT_INTERVAL_SECONDS: '0.2' });
  });
  after(() => service.close());

  it('terminates a peer that stops answering pings, and keeps one that answers', async () => {
    const live = await connect(service.port);
    // autoPong: false makes this client a dead peer whose TCP socket stays open.
    const dead = await connect(service.port, { autoPong: false });
    const started = Date.now();
    const { code } = await closed(dead);
    const elapsed = Date.now() - started;
    assert.equal(code, 1006, 'terminated without a close frame');
    assert.ok(elapsed >= 200, `terminated after a missed pong, not at once (${elapsed} ms)`);
    assert.equal(await scrape(service.metricsPort, 'websocket_heartbeat_terminations_total'), 1);
    // The live client has answered several rounds of pings by now.
    await sleep(600);
    await assertEchoes(live);
    live.close();
  });
});

describe('backpressure', () => {
  let service: Service;
  const bound = 64 * 1024;
  before(async () => {
    service = await startTestService({ BACKPRESSURE_BYTES: String(bound), MAX_PAYLOAD_BYTES: String(16 * 1024) });
  });
  after(() => service.close());

  it("keeps a slow reader's server-side buffer bounded while it floods, then delivers every echo", async () => {
    const bystander = await connect(service.port);
    const reader = await connect(service.port);
    const tcp = (reader as unknown as { _socket: Socket })._socket;
    tcp.pause(); // the client stops reading its echoes
    const message = Buffer.alloc(16 * 1024, 1);
    const total = 2000; // 32 MiB: far more than any socket buffer on loopback
    let maxBuffered = 0;
    const sampler = setInterval(() => {
      maxBuffered = Math.max(maxBuffered, service.connections.bufferedBytes());
    }, 5);
    try {
      for (let i = 0; i < total; i++) reader.send(message);
      await waitFor('the server to pause reading', () => service.counters.backpressurePauses > 0);
      await sleep(300); // let the flood press on
      await assertEchoes(bystander);
      // One TCP read can still arrive after the pause: allow the bound plus a few messages.
      assert.ok(maxBuffered <= bound + 4 * message.length, `server buffered at most ${maxBuffered} bytes for the slow reader`);
      assert.equal(await scrape(service.metricsPort, 'websocket_backpressure_paused_connections'), 1);

      let echoed = 0;
      reader.on('message', () => echoed++);
      tcp.resume();
      await waitFor(`all ${total} echoes after the reader resumes`, () => echoed === total, 20_000);
    } finally {
      clearInterval(sampler);
      reader.terminate();
      bystander.terminate();
    }
  });
});

/** Sends a message and waits for its echo: proof that a client is unaffected. */
async function assertEchoes(ws: WebSocket): Promise<void> {
  const probe = `probe-${Math.random()}`;
  ws.send(probe);
  const [data] = (await once(ws, 'message')) as [Buffer];
  assert.equal(data.toString(), probe);
}
