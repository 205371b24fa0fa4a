// Hostile frames after the upgrade, against the real service as a child
// process (so its memory can be watched): every named violation of RFC 6455
// §5 gets its close code, thousands of seeded random inputs get exactly the
// bytes a conforming server sends (an oracle predicts them), ping floods are
// answered or cut, and all the while bystander reference clients lose nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pool } from '../../../testkit/chart/helm.js';
import { ChildService } from '../../../testkit/child-service.js';
import { closePayload, encodeFrame, hostileInput, INVALID_UTF8, OP, predict, serverFrame, type Prediction } from '../../../testkit/frames.js';
import { exchange, splitHead } from '../../../testkit/http.js';
import { assertContained, Figures, othersSaw, Prng, SEED, tally, watched } from '../../../testkit/reliability.js';
import { scrape, waitFor } from '../../../testkit/service.js';
import { rawUpgraded, upgradeRequest } from '../../../testkit/websocket.js';

const MAX_PAYLOAD = 4096;
/** RELIABILITY_CASES=20000 npm test runs a longer fuzz by hand. */
const CASES = Number(process.env.RELIABILITY_CASES ?? 10_000);
const figures = new Figures('frames');

/** The protocol-error metric label of each close code the server sends for bad input. */
const REASON_OF_CODE: Record<number, string> = { 1002: 'invalid_frame', 1007: 'invalid_utf8', 1009: 'message_too_big' };

describe('hostile frames after the upgrade', () => {
  let service: ChildService;
  before(async () => {
    console.log(`# seed ${SEED} (reproduce with RELIABILITY_SEED=${SEED})`);
    service = await ChildService.start({ env: { MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD), HEARTBEAT_INTERVAL_SECONDS: '0', POD_NAME: 'frames' } });
  });
  after(async () => {
    figures.write();
    await service.stop('SIGKILL');
  });

  const protocolErrors = async (): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const reason of Object.values(REASON_OF_CODE)) out[reason] = await scrape(service.metricsPort, 'websocket_protocol_errors_total', { reason });
    return out;
  };

  /** Sends the upgrade and `input`, half-closes, and checks the answer byte for byte against the oracle. */
  const runCase = async (input: Buffer, pipelined: boolean): Promise<{ prediction: Prediction; received: Buffer; ok: boolean; status: string }> => {
    const prediction = predict(input, MAX_PAYLOAD);
    const chunks = pipelined ? [Buffer.concat([Buffer.from(upgradeRequest()), input])] : [upgradeRequest(), input];
    const result = await exchange(service.port, chunks, { waitForHead: !pipelined });
    const { status, body } = splitHead(result.received);
    return { prediction, received: body, status, ok: result.closed && status === 'HTTP/1.1 101 Switching Protocols' && body.equals(prediction.output) };
  };

  it('answers each named violation of RFC 6455 with its close code, and the others keep echoing', async () => {
    const mask = (opcode: number, payload: Buffer | string, extra: Partial<Parameters<typeof encodeFrame>[0]> = {}): Buffer =>
      encodeFrame({ opcode, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, ...extra });
    const half = Buffer.alloc(MAX_PAYLOAD / 2, 0x62);
    const cases: { name: string; input: Buffer; code: number | undefined }[] = [
      { name: 'unmasked text frame', input: mask(OP.text, 'hi', { masked: false }), code: 1002 },
      { name: 'unmasked binary frame', input: mask(OP.binary, Buffer.from([1, 2]), { masked: false }), code: 1002 },
      { name: 'unmasked ping', input: mask(OP.ping, '', { masked: false }), code: 1002 },
      { name: 'unmasked close', input: mask(OP.close, closePayload(1000), { masked: false }), code: 1002 },
      ...[3, 4, 5, 6, 7].map((op) => ({ name: `reserved data opcode 0x${op.toString(16)}`, input: mask(op, 'x'), code: 1002 })),
      ...[0xb, 0xc, 0xd, 0xe, 0xf].map((op) => ({ name: `reserved control opcode 0x${op.toString(16)}`, input: mask(op, ''), code: 1002 })),
      ...[1, 2, 4].map((rsv) => ({ name: `RSV bit ${rsv === 4 ? 1 : rsv === 2 ? 2 : 3} on a text frame`, input: mask(OP.text, 'x', { rsv }), code: 1002 })),
      { name: 'RSV1 on a ping', input: mask(OP.ping, '', { rsv: 4 }), code: 1002 },
      { name: 'RSV1 on a continuation', input: Buffer.concat([mask(OP.binary, 'a', { fin: false }), mask(OP.continuation, 'b', { rsv: 4 })]), code: 1002 },
      { name: 'continuation without a started message', input: mask(OP.continuation, 'x'), code: 1002 },
      { name: 'new text message inside a fragmented one', input: Buffer.concat([mask(OP.text, 'a', { fin: false }), mask(OP.text, 'b')]), code: 1002 },
      { name: 'fragmented ping', input: mask(OP.ping, 'x', { fin: false }), code: 1002 },
      { name: 'ping of 126 bytes', input: mask(OP.ping, Buffer.alloc(126)), code: 1002 },
      { name: 'pong of 200 bytes', input: mask(OP.pong, Buffer.alloc(200)), code: 1002 },
      { name: 'close of 126 bytes', input: mask(OP.close, Buffer.concat([closePayload(1000), Buffer.alloc(124, 0x61)])), code: 1002 },
      {
        name: 'ping of 125 bytes (the limit) is answered',
        input: Buffer.concat([mask(OP.ping, Buffer.alloc(125, 7)), mask(OP.close, closePayload(1000))]),
        code: 1000,
      },
      { name: 'one message of MAX_PAYLOAD_BYTES + 1', input: mask(OP.binary, Buffer.alloc(MAX_PAYLOAD + 1)), code: 1009 },
      {
        name: 'fragments adding up past MAX_PAYLOAD_BYTES',
        input: Buffer.concat([mask(OP.binary, half, { fin: false }), mask(OP.continuation, half, { fin: false }), mask(OP.continuation, 'x')]),
        code: 1009,
      },
      {
        name: 'fragments adding up to exactly MAX_PAYLOAD_BYTES are echoed',
        input: Buffer.concat([mask(OP.binary, half, { fin: false }), mask(OP.continuation, half), mask(OP.close, closePayload(1000))]),
        code: 1000,
      },
      { name: '64-bit length with the top bit set', input: encodeFrame({ opcode: OP.binary, declaredLength: 1n << 63n, lengthBits: 64 }), code: 1009 },
      {
        name: '64-bit length of 2^53 (past what ws represents)',
        input: encodeFrame({ opcode: OP.binary, declaredLength: 1n << 53n, lengthBits: 64 }),
        code: 1009,
      },
      ...INVALID_UTF8.map((bytes) => ({
        name: `text with invalid UTF-8 ${Buffer.from(bytes).toString('hex')}`,
        input: mask(OP.text, Buffer.concat([Buffer.from('ok '), Buffer.from(bytes)])),
        code: 1007,
      })),
      {
        name: 'invalid UTF-8 split across two fragments',
        input: Buffer.concat([mask(OP.text, Buffer.from([0x61, 0xed]), { fin: false }), mask(OP.continuation, Buffer.from([0xa0, 0x80]))]),
        code: 1007,
      },
      {
        name: 'a character split across fragments is valid',
        input: Buffer.concat([
          mask(OP.text, Buffer.from([0xe2]), { fin: false }),
          mask(OP.continuation, Buffer.from([0x82, 0xac])),
          mask(OP.close, closePayload(1000)),
        ]),
        code: 1000,
      },
      { name: 'close reason with invalid UTF-8', input: mask(OP.close, closePayload(1000, Buffer.from([0x62, 0x79, 0xc0, 0xaf]))), code: 1007 },
      { name: 'close frame of 1 byte', input: mask(OP.close, Buffer.from([0x03])), code: 1002 },
      ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000].map((c) => ({
        name: `close code ${c} (reserved or unassigned)`,
        input: mask(OP.close, closePayload(c)),
        code: 1002,
      })),
      ...[1000, 1001, 3000, 4999].map((c) => ({ name: `close code ${c} is echoed`, input: mask(OP.close, closePayload(c, 'bye')), code: c })),
      { name: 'empty close is answered with an empty close', input: mask(OP.close, ''), code: 1005 },
    ];
    const errorsBefore = await protocolErrors();
    const seen: Record<string, number> = {};
    const problems: string[] = [];
    const details: [string, string][] = [];
    const run = await watched(service, async () => {
      for (const [i, c] of cases.entries()) {
        const result = await runCase(c.input, i % 2 === 0);
        const code = result.prediction.closeCode;
        seen[String(code)] = (seen[String(code)] ?? 0) + 1;
        details.push([
          c.name,
          `${result.prediction.outcome === 'error' ? 'closed with' : 'close handshake'} ${code}${result.prediction.echoes ? `, ${result.prediction.echoes} echoed first` : ''}${result.prediction.pongs ? `, ${result.prediction.pongs} pong first` : ''}${result.ok ? '' : ' (MISMATCH)'}`,
        ]);
        if (code !== c.code) problems.push(`${c.name}: the oracle predicts ${code}, the test expects ${c.code}`);
        if (!result.ok)
          problems.push(`${c.name}: expected ${result.prediction.output.toString('hex')}, got ${result.status} ${result.received.toString('hex')}`);
      }
    });
    assert.deepEqual(problems, []);
    assertContained(run, 'named violations');
    const errorsAfter = await protocolErrors();
    for (const [code, reason] of Object.entries(REASON_OF_CODE)) {
      assert.equal(
        errorsAfter[reason]! - errorsBefore[reason]!,
        cases.filter((c) => c.code === Number(code)).length,
        `websocket_protocol_errors_total{reason="${reason}"} counts every ${code}`,
      );
    }
    figures.add({
      case: 'named RFC 6455 violations: unmasked frames, reserved opcodes, RSV bits, control frames over 125 bytes or fragmented, fragments past MAX_PAYLOAD_BYTES, lengths past 2^53, invalid UTF-8 in text and close reasons, reserved close codes (plus the legal edge cases next to each)',
      inputs: cases.length,
      offender: `close ${tally(seen)}`,
      others: othersSaw(run.others),
      memory: run.memory,
      lost: run.others.lost,
      details,
    });
  });

  it('refuses a frame that declares more than MAX_PAYLOAD_BYTES with 1009 from its header alone', async () => {
    // The client sends only a header announcing 1 GiB and keeps the connection open: the server must not wait for (or buffer) the payload.
    const header = encodeFrame({ opcode: OP.binary, declaredLength: 1n << 30n, lengthBits: 64 }).subarray(0, 14);
    const result = await exchange(service.port, [upgradeRequest(), header], { end: false, waitForHead: true, timeoutMs: 5000 });
    const { body } = splitHead(result.received);
    assert.deepEqual(body.subarray(0, 4), serverFrame(OP.close, closePayload(1009)));
  });

  it(`answers ${CASES} seeded random inputs exactly as RFC 6455 prescribes, and the others keep echoing`, async () => {
    const rng = new Prng(SEED);
    const inputs = Array.from({ length: CASES }, () => hostileInput(rng, MAX_PAYLOAD));
    const pipelined = inputs.map(() => rng.chance(0.5));
    const errorsBefore = await protocolErrors();
    const started = Date.now();
    const byCode: Record<string, number> = {};
    const byKind: Record<string, number> = {};
    const failures: string[] = [];
    let bytes = 0;
    let echoes = 0;
    const run = await watched(service, () =>
      pool(
        Array.from({ length: CASES }, (_, i) => i),
        24,
        async (i) => {
          const { kind, bytes: input } = inputs[i]!;
          bytes += input.length;
          const result = await runCase(input, pipelined[i]!);
          const answer =
            result.prediction.outcome === 'open'
              ? 'no close frame'
              : `${result.prediction.outcome === 'error' ? 'error' : 'echoed'} ${result.prediction.closeCode}`;
          byCode[answer] = (byCode[answer] ?? 0) + 1;
          const family = kind.replace(/, (bit flipped|truncated)$/, '');
          byKind[family] = (byKind[family] ?? 0) + 1;
          echoes += result.prediction.echoes;
          if (!result.ok && failures.length < 5) {
            failures.push(
              `case ${i} (${kind}, ${pipelined[i] ? 'pipelined' : 'after the 101'}), seed ${SEED}:\n  input    ${input.toString('hex').slice(0, 400)}\n  expected ${result.prediction.output.toString('hex').slice(0, 400)}\n  got      ${result.status} ${result.received.toString('hex').slice(0, 400)}`,
            );
          }
        },
      ),
    );
    const seconds = (Date.now() - started) / 1000;
    assert.deepEqual(failures, [], `reproduce with RELIABILITY_SEED=${SEED}`);
    assertContained(run, 'random inputs');
    // Every case closed its connection, and so did the bystanders: nothing is left open.
    await waitFor('every connection to close', async () => (await scrape(service.metricsPort, 'websocket_connections_active')) === 0);
    const errorsAfter = await protocolErrors();
    for (const [code, reason] of Object.entries(REASON_OF_CODE)) {
      assert.equal(errorsAfter[reason]! - errorsBefore[reason]!, byCode[`error ${code}`] ?? 0, `websocket_protocol_errors_total{reason="${reason}"}`);
    }
    console.log(`# random inputs by kind: ${tally(byKind)}`);
    console.log(`# random inputs by answer: ${tally(byCode)}; ${bytes} bytes in ${seconds.toFixed(1)} s`);
    figures.add({
      case: `random bytes and seeded random frames after the upgrade (seed ${SEED}; half pipelined with the upgrade request)`,
      inputs: CASES,
      offender: `exactly the predicted bytes in ${CASES}/${CASES}: ${tally(byCode)}; ${echoes} legal messages echoed`,
      others: othersSaw(run.others),
      memory: run.memory,
      lost: run.others.lost,
      notes: `${(CASES / seconds).toFixed(0)} cases/s`,
      details: Object.entries(byKind)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([kind, n]) => [kind, `${n} inputs`] as const),
    });
  });

  it('answers a client that pings hard but waits for its pongs, and cuts a ping flood without hurting the others', async () => {
    const ping = encodeFrame({ opcode: OP.ping, payload: Buffer.alloc(125, 0x70) });
    const pong = serverFrame(OP.pong, Buffer.alloc(125, 0x70));
    const burst = (n: number): Buffer => Buffer.concat(Array.from({ length: n }, () => ping));

    // 20,000 pings in bursts of 50, each burst once the previous one's pongs are back: all answered.
    const PINGS = 20_000;
    const polite = await watched(service, async () => {
      const socket = await rawUpgraded(service.port);
      let pongBytes = 0;
      socket.on('data', (chunk: Buffer) => (pongBytes += chunk.length));
      let wanted = 0;
      let wake: () => void = () => {};
      socket.on('data', () => {
        if (pongBytes >= wanted) wake();
      });
      for (let sent = 0; sent < PINGS; sent += 50) {
        wanted = (sent + 50) * pong.length;
        const answered = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no pongs for pings ${sent + 1}–${sent + 50} within 10 s`)), 10_000);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        socket.write(burst(50));
        await answered;
      }
      socket.destroy();
      return pongBytes / pong.length;
    });
    assert.equal(polite.result, PINGS);
    assertContained(polite, 'polite pings');

    // A flood: pings written as fast as the socket takes them. ws cuts a peer with more than 60
    // automatic pongs pending (maxPendingAutoPongs), which one TCP read of 61 pings already is.
    const closes1006 = async (): Promise<number> => scrape(service.metricsPort, 'websocket_closes_total', { code: '1006' }).catch(() => 0);
    await waitFor('only the bystanders left', async () => (await scrape(service.metricsPort, 'websocket_connections_active')) === 0);
    const before1006 = await closes1006();
    const FLOODERS = 10;
    const ROUNDS = 10; // each flooder comes back after its cut, so the flood lasts while the bystanders send
    const flood = await watched(service, async () => {
      const outcomes = await Promise.all(
        Array.from({ length: FLOODERS * ROUNDS }, async (_, i) => {
          await sleep(Math.floor(i / FLOODERS) * 100);
          const socket = await rawUpgraded(service.port);
          let sent = 0;
          let received = 0;
          let closed = false;
          socket.on('data', (chunk: Buffer) => (received += chunk.length));
          socket.on('error', () => {});
          socket.once('close', () => (closed = true));
          const chunk = burst(500);
          while (!closed && sent < 1_000_000) {
            sent += 500;
            if (!socket.write(chunk))
              await new Promise((resolve) => {
                socket.once('drain', resolve);
                socket.once('close', resolve);
              });
          }
          return { sent, closed, pongs: Math.floor(received / pong.length) };
        }),
      );
      return outcomes;
    });
    assert.ok(
      flood.result.every((o) => o.closed),
      'every flooder was cut',
    );
    assertContained(flood, 'ping flood');
    await waitFor('the server to count every cut as 1006', async () => (await closes1006()) - before1006 === FLOODERS * ROUNDS);
    const sent = flood.result.map((o) => o.sent);
    figures.add({
      case: 'pings: 20,000 in bursts of 50, each burst after the previous pongs; then 10 clients flooding 125-byte pings as fast as the socket takes them, 10 times each',
      inputs: PINGS + sent.reduce((a, b) => a + b, 0),
      offender: `polite: ${polite.result}/${PINGS} pongs; flooders: all ${FLOODERS * ROUNDS} connections cut without a close frame (1006) after ${Math.min(...sent)}–${Math.max(...sent)} pings written (ws: over 60 automatic pongs pending)`,
      others: othersSaw(flood.others),
      memory: { startMiB: polite.memory.startMiB, peakMiB: Math.max(polite.memory.peakMiB, flood.memory.peakMiB) },
      lost: polite.others.lost + flood.others.lost,
    });
  });
});
