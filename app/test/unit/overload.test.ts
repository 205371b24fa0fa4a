// The overload guard's decisions on node:test's mock clock, with sockets
// that say what they hold: the levels and their hysteresis, what soft
// pressure refuses and shrinks, which connections the hard step closes and
// how, and the message timeout. Real sockets and a real process:
// integration/overload.test.ts; the real image under a memory limit:
// e2e/memory.test.ts.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { CLOSE_GRACE_MS, nextLevel, OverloadGuard, type OverloadLevel } from '../../src/overload.js';
import { POLICY_VIOLATION, TRY_AGAIN_LATER } from '../../src/sockets.js';
import { FakeGuardedSocketSet, type FakeGuardedSocket } from '../../testkit/fake-sockets.js';
import { capturingLogger } from '../../testkit/logs.js';

beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 0 }));
afterEach(() => mock.timers.reset());

const KIB = 1024;
const BUDGET = 1000 * KIB;
const BACKPRESSURE = 1024 * KIB;

function guardOf(sockets: FakeGuardedSocketSet, options: { budgetBytes?: number; messageTimeoutSeconds?: number; kernel?: () => number } = {}) {
  const admission = { accepting: true, rebalancing: false, memoryPressure: false };
  const allowance = { backpressureBytes: BACKPRESSURE };
  const paused: FakeGuardedSocket[] = [];
  const guard = new OverloadGuard<FakeGuardedSocket>({
    sockets,
    admission,
    budgetBytes: options.budgetBytes ?? BUDGET,
    messageTimeoutSeconds: options.messageTimeoutSeconds ?? 8,
    backpressureBytes: BACKPRESSURE,
    allowance,
    pause: (ws) => {
      ws.backpressured = true;
      ws.pausedSince = Date.now();
      paused.push(ws);
    },
    kernelSocketBytes: options.kernel ?? (() => 0),
    logger: capturingLogger().logger,
  });
  return { guard, admission, allowance, paused };
}

describe('overload levels', () => {
  it('go hard at the budget and stay hard until under 90 %, soft from 80 %, normal under 70 %, and hold between 70 and 80 %', () => {
    const walk = (used: number[]): OverloadLevel[] => {
      let level: OverloadLevel = 'normal';
      return used.map((u) => (level = nextLevel(level, u)));
    };
    assert.deepEqual(walk([0.5, 0.75, 0.8, 0.75, 0.69]), ['normal', 'normal', 'soft', 'soft', 'normal']);
    assert.deepEqual(walk([1, 0.95, 0.89, 0.85, 0.72, 0.6]), ['hard', 'hard', 'soft', 'soft', 'soft', 'normal']);
    assert.deepEqual(walk([0.79, 1.5]), ['normal', 'hard']);
  });
});

describe('the overload guard (mock clock)', () => {
  it('under soft pressure refuses upgrades and shrinks the echo queue allowance, pausing whoever is over it; normal again restores both', () => {
    const sockets = new FakeGuardedSocketSet();
    const big = sockets.add({ bufferedAmount: 500 * KIB, needsDrain: true });
    const small = sockets.add({ bufferedAmount: 40 * KIB, needsDrain: true });
    const holder = sockets.add({ inbound: 300 * KIB });
    const { guard, admission, allowance, paused } = guardOf(sockets);
    guard.check();
    assert.equal(guard.status.level, 'soft', '840 KiB of 1000');
    assert.equal(admission.memoryPressure, true);
    assert.equal(allowance.backpressureBytes, 64 * KIB, 'BACKPRESSURE_BYTES / 16');
    assert.deepEqual([guard.status.outboundBytes, guard.status.inboundBytes], [540 * KIB, 300 * KIB]);
    guard.check();
    assert.deepEqual(paused, [big], 'only the queue over the shrunk allowance, from the second look (the level is set at the end of a look)');
    assert.equal(small.backpressured, false);
    holder.inbound = 0;
    big.bufferedAmount = 100 * KIB;
    guard.check();
    assert.equal(guard.status.level, 'normal');
    assert.equal(admission.memoryPressure, false);
    assert.equal(allowance.backpressureBytes, BACKPRESSURE);
    assert.equal(guard.status.closes.memory, 0, 'soft pressure closes no one');
  });

  it('at the budget closes the largest holders first until under 90 %: 1013, readers get a grace period, paused ones are cut at once', () => {
    const sockets = new FakeGuardedSocketSet();
    const bystanders = Array.from({ length: 5 }, () => sockets.add({ bufferedAmount: 0 }));
    const reader = sockets.add({ inbound: 400 * KIB }, true); // reads, but never answers the close frame
    const paused = sockets.add({ bufferedAmount: 350 * KIB, backpressured: true, pausedSince: 0 });
    const modest = sockets.add({ inbound: 300 * KIB });
    const tiny = sockets.add({ bufferedAmount: 260 * KIB });
    const { guard, admission } = guardOf(sockets);
    guard.check();
    // 1310 KiB held, 410 KiB over 90 % of the budget: the largest (400 KiB) is not enough, the two largest are.
    assert.equal(guard.status.level, 'hard');
    assert.equal(admission.memoryPressure, true);
    assert.deepEqual([reader.closedWith, paused.closedWith, modest.closedWith, tiny.closedWith], [TRY_AGAIN_LATER, TRY_AGAIN_LATER, undefined, undefined]);
    assert.equal(paused.terminated, true, 'a paused peer would not read the close frame behind its queue');
    assert.equal(reader.terminated, false);
    assert.equal(guard.status.closes.memory, 2);
    assert.ok(bystanders.every((b) => b.closedWith === undefined && !b.terminated));
    mock.timers.tick(CLOSE_GRACE_MS - 1);
    guard.check();
    assert.equal(reader.terminated, false);
    mock.timers.tick(1);
    guard.check();
    assert.equal(reader.terminated, true, 'no close handshake within the grace period: terminated');
    assert.equal(guard.status.level, 'normal', 'what is left (560 KiB) is under 70 %');
  });

  it("charges the kernel's socket buffers to the paused connections when it ranks them", () => {
    const sockets = new FakeGuardedSocketSet();
    const paused = sockets.add({ bufferedAmount: 20 * KIB, backpressured: true, pausedSince: 0 });
    const reading = sockets.add({ inbound: 100 * KIB });
    const { guard } = guardOf(sockets, { kernel: () => 950 * KIB });
    guard.check();
    assert.equal(guard.status.kernelBytes, 950 * KIB);
    assert.equal(paused.terminated, true, '20 KiB queued plus the 950 KiB of kernel buffers it keeps full');
    assert.equal(reading.closedWith, undefined, 'closing the paused one is enough');
  });

  it('closes no one who holds nothing, even over the budget (the kernel holds it all and no one is paused)', () => {
    const sockets = new FakeGuardedSocketSet();
    const idle = Array.from({ length: 3 }, () => sockets.add());
    const { guard, admission } = guardOf(sockets, { kernel: () => 2 * BUDGET });
    guard.check();
    assert.equal(guard.status.level, 'hard');
    assert.equal(admission.memoryPressure, true, 'it still refuses upgrades');
    assert.ok(idle.every((s) => s.closedWith === undefined));
  });

  it('closes a message not whole within the timeout with 1008, but not a client that keeps completing messages, nor one we stopped reading', () => {
    const sockets = new FakeGuardedSocketSet();
    const holder = sockets.add({ inProgress: true, inbound: 10 * KIB });
    const streaming = sockets.add({ inProgress: true });
    const paused = sockets.add({ inProgress: true, backpressured: true, pausedSince: 0 });
    const { guard } = guardOf(sockets, { messageTimeoutSeconds: 8 });
    for (let t = 0; t < 8000; t += 100) {
      guard.check();
      streaming.messagesReceived++; // a message completed since the last look, and the next one begun
      mock.timers.tick(100);
    }
    assert.equal(holder.closedWith, undefined, 'at 7.9 s');
    guard.check();
    assert.equal(holder.closedWith, POLICY_VIOLATION, 'at 8 s');
    assert.equal(guard.status.closes.message_timeout, 1);
    assert.equal(streaming.closedWith, undefined);
    assert.equal(paused.closedWith, undefined, 'not timed while we do not read it');
  });

  it('under pressure gives a message, and a peer we stopped reading from, a quarter of the timeout', () => {
    const sockets = new FakeGuardedSocketSet();
    sockets.add({ bufferedAmount: 850 * KIB }); // keeps the level soft
    const holder = sockets.add({ inProgress: true });
    const slowReader = sockets.add({ backpressured: true, pausedSince: 0 });
    const { guard } = guardOf(sockets, { messageTimeoutSeconds: 8 });
    guard.check();
    assert.equal(guard.status.level, 'soft');
    mock.timers.tick(1999);
    guard.check();
    assert.deepEqual([holder.closedWith, slowReader.closedWith], [undefined, undefined]);
    mock.timers.tick(1);
    guard.check();
    assert.equal(holder.closedWith, POLICY_VIOLATION);
    assert.equal(slowReader.closedWith, TRY_AGAIN_LATER);
    assert.equal(slowReader.terminated, true);
    assert.deepEqual(guard.status.closes, { memory: 0, message_timeout: 1, slow_reader: 1 });
  });

  it('without a budget only times messages: no level, no refusal, no close for memory', () => {
    const sockets = new FakeGuardedSocketSet();
    const hog = sockets.add({ bufferedAmount: 100 * BUDGET });
    const { guard, admission } = guardOf(sockets, { budgetBytes: 0 });
    guard.check();
    assert.deepEqual([guard.status.level, admission.memoryPressure, hog.closedWith], ['normal', false, undefined]);
  });

  it('looks every 100 ms once started, and not after stop', () => {
    const sockets = new FakeGuardedSocketSet();
    const { guard } = guardOf(sockets);
    guard.start();
    sockets.add({ inbound: 850 * KIB });
    mock.timers.tick(99);
    assert.equal(guard.status.level, 'normal');
    mock.timers.tick(1);
    assert.equal(guard.status.level, 'soft');
    guard.stop();
    sockets.add({ inbound: 850 * KIB });
    mock.timers.tick(1000);
    assert.equal(guard.status.level, 'soft');
  });
});
