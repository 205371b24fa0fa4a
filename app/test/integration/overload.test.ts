// The memory budget and the message limits over real sockets, against the
// service in this process: what ws holds for a half-received message (the
// Receiver fields held-bytes.ts reads, so a ws upgrade that changes them
// fails here), the limits on a message's parts and time, and the overload
// guard's steps with hostile clients (testkit/attackers.ts) while bystander
// reference clients keep echoing. The kernel socket buffers come from a fake
// cgroup directory here; the real kernel's: e2e/memory.test.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContainerMemory } from '../../src/cgroup.js';
import type { EchoSocket } from '../../src/connections.js';
import { PART_OVERHEAD_BYTES, receiverReadable } from '../../src/held-bytes.js';
import { maxBufferedChunks } from '../../src/server.js';
import { fragmentHolder, openAttackers, slowReader, tallyAttackers, type Attacker } from '../../testkit/attackers.js';
import { encodeFrame, OP } from '../../testkit/frames.js';
import { httpGet, type HttpAnswer } from '../../testkit/http.js';
import { assertUnharmed, startBystanders } from '../../testkit/reliability.js';
import { scrape, startTestService, waitFor } from '../../testkit/service.js';
import { rawUpgraded, SAMPLE_KEY } from '../../testkit/websocket.js';

type TestService = Awaited<ReturnType<typeof startTestService>>;
const KIB = 1024;
const MIB = 1024 * KIB;

const services: TestService[] = [];
const attackers: Attacker[] = [];
afterEach(async () => {
  for (const attacker of attackers.splice(0)) attacker.destroy();
  await Promise.all(services.splice(0).map((s) => s.close()));
});

async function service(env: Record<string, string> = {}, container?: ContainerMemory): Promise<TestService> {
  const started = await startTestService(env, undefined, container);
  services.push(started);
  return started;
}

/** The server side of the one connection open on `s`. */
async function serverSocket(s: TestService): Promise<EchoSocket> {
  await waitFor('the connection to be registered', () => s.connections.size === 1);
  return s.connections.snapshot()[0]!;
}

/** The answer to a well-formed upgrade request (a refusal is a plain HTTP response). */
const tryUpgrade = (port: number): Promise<HttpAnswer> =>
  httpGet(port, '/echo', { headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': SAMPLE_KEY, 'sec-websocket-version': '13' } });

const fragment = (first: boolean, fin: boolean, payload: Buffer): Buffer => encodeFrame({ opcode: first ? OP.binary : OP.continuation, fin, payload });

describe('what ws holds for a message being received (held-bytes.ts)', () => {
  it('counts the fragments of an unfinished message with their overhead, and nothing once it is whole', async () => {
    const s = await service();
    const socket = await rawUpgraded(s.port);
    const ws = await serverSocket(s);
    assert.equal(receiverReadable(ws), true, "this ws's Receiver has the fields held-bytes.ts reads");
    assert.deepEqual([ws.inboundBytes(), ws.messageInProgress()], [0, false]);
    for (let i = 0; i < 10; i++) socket.write(fragment(i === 0, false, Buffer.alloc(1000, i)));
    await waitFor('ten fragments to be parsed', () => ws.inboundBytes() === 10 * 1000 + 10 * PART_OVERHEAD_BYTES);
    assert.equal(ws.messageInProgress(), true);
    socket.write(fragment(false, true, Buffer.alloc(1000, 10)));
    const [echo] = (await once(socket, 'data')) as [Buffer];
    assert.equal(echo[0], 0x82, 'a whole binary message came back');
    assert.deepEqual([ws.inboundBytes(), ws.messageInProgress()], [0, false]);
    socket.destroy();
  });

  it('counts the bytes of a frame whose payload has not all arrived, and its header alone as a message begun', async () => {
    const s = await service();
    const socket = await rawUpgraded(s.port);
    const ws = await serverSocket(s);
    const frame = encodeFrame({ opcode: OP.binary, payload: Buffer.alloc(5000, 1) });
    socket.write(frame.subarray(0, 8)); // header (4) and mask key (4): no payload yet
    await waitFor('the header to be parsed', () => ws.messageInProgress());
    socket.write(frame.subarray(8, 2008));
    await waitFor('2,000 payload bytes to be held', () => ws.inboundBytes() >= 2000);
    assert.ok(ws.inboundBytes() <= 2000 + 4 * PART_OVERHEAD_BYTES, `${ws.inboundBytes()} bytes counted`);
    socket.write(frame.subarray(2008));
    await once(socket, 'data');
    assert.deepEqual([ws.inboundBytes(), ws.messageInProgress()], [0, false]);
    socket.destroy();
  });
});

describe('limits on one message', () => {
  it('closes a message in more than MAX_MESSAGE_FRAGMENTS frames with 1008', async () => {
    const s = await service({ MAX_MESSAGE_FRAGMENTS: '4' });
    const socket = await rawUpgraded(s.port);
    for (let i = 0; i < 4; i++) socket.write(fragment(i === 0, false, Buffer.from('ab')));
    socket.write(fragment(false, true, Buffer.from('ab')));
    const [close] = (await once(socket, 'data')) as [Buffer];
    assert.deepEqual([close[0], close.readUInt16BE(2)], [0x88, 1008]);
    assert.equal(await scrape(s.metricsPort, 'websocket_protocol_errors_total', { reason: 'too_many_parts' }), 1);
    // Four fragments are fine.
    const ok = await rawUpgraded(s.port);
    for (let i = 0; i < 3; i++) ok.write(fragment(i === 0, false, Buffer.from('ab')));
    ok.write(fragment(false, true, Buffer.from('ab')));
    const [echo] = (await once(ok, 'data')) as [Buffer];
    assert.deepEqual([...echo], [0x82, 8, ...Buffer.from('abababab')]);
    socket.destroy();
    ok.destroy();
  });

  it('closes a frame trickled in more reads than maxBufferedChunks with 1008', async () => {
    const s = await service({ MAX_PAYLOAD_BYTES: '1024' });
    const limit = maxBufferedChunks(1024);
    const socket = await rawUpgraded(s.port);
    socket.setNoDelay(true);
    const frame = encodeFrame({ opcode: OP.binary, payload: Buffer.alloc(1000, 1) });
    socket.write(frame.subarray(0, 8));
    const closeFrame = once(socket, 'data');
    let written = 8;
    // One byte per read: each write waits until the server's count of buffered chunks grew.
    const ws = await serverSocket(s);
    while (written < frame.length && !socket.destroyed && ws.readyState === ws.OPEN) {
      socket.write(frame.subarray(written, written + 1));
      written++;
      await sleep(2);
    }
    const [close] = (await closeFrame) as [Buffer];
    assert.deepEqual([close[0], close.readUInt16BE(2)], [0x88, 1008]);
    assert.ok(written - 8 <= limit + 1, `closed after ${written - 8} one-byte reads (limit ${limit})`);
    socket.destroy();
  });

  it('closes a message not whole within MESSAGE_TIMEOUT_SECONDS with 1008, and leaves a client that keeps finishing its messages', async () => {
    const s = await service({ MESSAGE_TIMEOUT_SECONDS: '0.5' });
    const holder = fragmentHolder(s.port, 3, 100);
    attackers.push(holder);
    await holder.upgraded;
    // A client that always has a message under way, and always finishes it.
    const streaming = await rawUpgraded(s.port);
    let echoes = 0;
    streaming.on('data', (chunk: Buffer) => (echoes += chunk[0] === 0x82 ? 1 : 0));
    const startedAt = Date.now();
    while (Date.now() - startedAt < 1500) {
      streaming.write(fragment(true, false, Buffer.from('half ')));
      await sleep(40);
      streaming.write(fragment(false, true, Buffer.from('whole')));
      await sleep(5);
    }
    assert.equal(holder.outcome.closeCode, 1008);
    assert.equal(await scrape(s.metricsPort, 'websocket_overload_closes_total', { reason: 'message_timeout' }), 1);
    assert.equal(streaming.destroyed, false, 'the streaming client is still connected');
    assert.ok(echoes > 20, `${echoes} echoes`);
    streaming.destroy();
  });
});

describe('the memory budget (overload guard)', () => {
  const BUDGET = 4 * MIB;
  const settings = { MEMORY_BUDGET_BYTES: String(BUDGET), MESSAGE_TIMEOUT_SECONDS: '60' };

  it('refuses upgrades with 503 + Retry-After from 80 %, closes the largest holders with 1013 at 100 %, and the bystanders see nothing', async () => {
    const s = await service(settings);
    const bystanders = await startBystanders(s.port, 4);
    // Admitted while memory is low, the holders then grow, one 1 KiB fragment every 10 ms, to 56 each (70 KiB with
    // the fragments' overhead): 64 of them would hold 4.4 MiB.
    attackers.push(...(await openAttackers(64, () => fragmentHolder(s.port, 56, KIB, 10))));
    await waitFor('the soft watermark', () => s.overload.status.level !== 'normal', 5000);
    const refused = await tryUpgrade(s.port);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    await waitFor('the hard step to close holders', () => s.overload.status.closes.memory > 0, 5000);
    await sleep(1500); // the holders still open finish growing
    const outcome = tallyAttackers(attackers);
    assert.ok((outcome.closes['1013'] ?? 0) > 0, JSON.stringify(outcome));
    assert.ok(s.overload.status.heldBytes < BUDGET, `${s.overload.status.heldBytes} bytes held`);
    assert.equal(await scrape(s.metricsPort, 'websocket_upgrades_rejected_total', { reason: 'memory' }), 1);
    assert.equal(await scrape(s.metricsPort, 'websocket_overload_closes_total', { reason: 'memory' }), s.overload.status.closes.memory);
    assert.equal(await scrape(s.metricsPort, 'websocket_memory_budget_bytes'), BUDGET);
    assertUnharmed(await bystanders.finish(), 'holders over the budget');
  });

  it('under pressure cuts a client that does not read its echoes after a quarter of the message timeout', async () => {
    const s = await service({ ...settings, MESSAGE_TIMEOUT_SECONDS: '2', BACKPRESSURE_BYTES: String(64 * KIB) });
    const bystanders = await startBystanders(s.port, 4);
    const readers = await openAttackers(3, () => slowReader(s.port, 16 * KIB));
    attackers.push(...readers);
    await waitFor('the slow readers to be paused', async () => (await scrape(s.metricsPort, 'websocket_backpressure_paused_connections')) === 3, 5000);
    // Pressure from holders that stay under the hard step: 48 × 70 KiB is 82 % of the budget.
    attackers.push(...(await openAttackers(48, () => fragmentHolder(s.port, 56, KIB))));
    await waitFor('the soft watermark', () => s.overload.status.level !== 'normal', 5000);
    await waitFor('the slow readers to be cut', () => readers.every((r) => r.outcome.ended), 3000);
    assert.equal(s.overload.status.closes.slow_reader, 3);
    assertUnharmed(await bystanders.finish(), 'slow readers under pressure');
  });

  it("counts the kernel's socket buffers from the cgroup (v2 memory.stat) and derives the budget from its limit", async () => {
    const root = mkdtempSync(join(tmpdir(), 'cgroup-v2-'));
    writeFileSync(join(root, 'memory.max'), String(512 * MIB));
    writeFileSync(join(root, 'memory.stat'), 'anon 0\nsock 0\n');
    const s = await service({}, new ContainerMemory(root));
    assert.deepEqual([s.memory.budgetSource, s.memory.limit?.bytes], ['derived', 512 * MIB]);
    assert.equal(await scrape(s.metricsPort, 'websocket_memory_limit_bytes'), 512 * MIB);
    writeFileSync(join(root, 'memory.stat'), `anon 0\nsock ${Math.ceil(0.85 * s.memory.budgetBytes)}\n`);
    await waitFor('the soft watermark', () => s.overload.status.level === 'soft');
    assert.equal((await tryUpgrade(s.port)).status, 503);
    assert.equal(await scrape(s.metricsPort, 'websocket_memory_held_bytes', { kind: 'kernel' }), Math.ceil(0.85 * s.memory.budgetBytes));
    assert.equal(await scrape(s.metricsPort, 'websocket_memory_overload_state', { state: 'soft' }), 1);
  });
});

after(() => {
  for (const attacker of attackers) attacker.destroy();
});
