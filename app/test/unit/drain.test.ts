// The drain schedule on node:test's mock clock, tick by tick: which sockets
// get their 1012 when, the states, the deadline, the second signal, the
// Events and the one exit(0). The real process with real signals and
// clients: integration/drain.test.ts.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { DrainController, TICK_MS, type DrainOptions } from '../../src/drain.js';
import { SERVICE_RESTART } from '../../src/sockets.js';
import { FakeSocketSet } from '../../testkit/fake-sockets.js';
import { capturingLogger } from '../../testkit/logs.js';

beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 0 }));
afterEach(() => mock.timers.reset());

/**
 * Advances the mock clock by `ms`, one drain tick at a time: within one
 * tick() of the mock, every timer sees the clock at the end of the step.
 */
function advance(ms: number): void {
  for (let t = 0; t < ms; t += TICK_MS) mock.timers.tick(Math.min(TICK_MS, ms - t));
}

/** Lets the promise callbacks of the drain's finish (the final Event, exit) run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function drainOf(sockets: FakeSocketSet, overrides: Partial<DrainOptions> = {}) {
  const exits: number[] = [];
  const events: [string, string, number | undefined][] = [];
  const admission = { accepting: true };
  let begun = 0;
  const { logger, lines } = capturingLogger();
  const drain = new DrainController({
    sockets,
    admission,
    windowSeconds: 2,
    closeTimeoutSeconds: 1,
    logger,
    exit: (code) => exits.push(code),
    events: {
      podEvent: (reason, message, timeoutMs) => {
        events.push([reason, message, timeoutMs]);
        return Promise.resolve();
      },
    },
    onBegin: () => begun++,
    random: () => 0.5,
    ...overrides,
  });
  return { drain, exits, events, admission, begun: () => begun, lines };
}

describe('the drain schedule (mock clock)', () => {
  it('sends ceil(n · t / window) close frames by each tick of the window, then waits in closing', () => {
    const sockets = new FakeSocketSet();
    sockets.add(100, true); // mute: nobody leaves before the deadline
    const { drain, admission, begun } = drainOf(sockets);
    drain.onSignal('SIGTERM');
    assert.equal(admission.accepting, false, 'readiness and upgrades refused at once');
    assert.equal(begun(), 1);
    assert.equal(drain.state, 'draining');
    for (let t = TICK_MS; t <= 2000; t += TICK_MS) {
      mock.timers.tick(TICK_MS);
      assert.equal(sockets.closedWith(SERVICE_RESTART), Math.ceil((100 * t) / 2000), `at ${t} ms`);
    }
    assert.equal(drain.state, 'closing');
    assert.equal(drain.progress.closeFramesSent, 100);
    assert.equal(drain.progress.connections, 100);
  });

  it('terminates what did not finish its close handshake at window + close timeout, then exits 0 once', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(10);
    const mute = sockets.add(2, true);
    const { drain, exits, events } = drainOf(sockets);
    drain.onSignal('SIGTERM');
    advance(2950);
    assert.equal(sockets.size, 2, 'the polite ten are gone, the mute two wait');
    assert.ok(mute.every((s) => !s.terminated));
    mock.timers.tick(TICK_MS); // 3000 ms: the deadline
    assert.ok(mute.every((s) => s.terminated));
    assert.equal(drain.state, 'exited');
    await settle();
    assert.deepEqual(exits, [0]);
    assert.deepEqual(await drain.finished, { connections: 12, closeFramesSent: 12, closedGracefully: 10, terminated: 2, durationMs: 3000 });
    assert.deepEqual(
      events.map(([reason, , timeout]) => [reason, timeout]),
      [
        ['DrainStarted', undefined],
        ['DrainFinished', 500],
      ],
    );
    assert.equal(events[0]![1], 'closing 12 WebSocket connections with 1012 over 2s (SIGTERM)');
    advance(10_000);
    drain.onSignal('SIGTERM');
    await settle();
    assert.deepEqual(exits, [0], 'exit is called once, and a signal after it is ignored');
  });

  it('finishes at the tick the last socket leaves, before the window ends', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(4);
    const { drain, exits } = drainOf(sockets);
    drain.onSignal('SIGTERM');
    // The fourth close frame is due once 4 · t / 2000 > 3: at the first tick after 1500 ms.
    advance(1500);
    assert.equal(drain.state, 'draining');
    advance(TICK_MS);
    assert.equal(drain.state, 'exited');
    await settle();
    assert.deepEqual(exits, [0]);
    assert.equal((await drain.finished).durationMs, 1550);
  });

  it('with nothing open, finishes at once', async () => {
    const { drain, exits } = drainOf(new FakeSocketSet());
    drain.onSignal('SIGTERM');
    assert.equal(drain.state, 'exited');
    await settle();
    assert.deepEqual(exits, [0]);
  });

  it('with a zero window, sends every close frame at the signal', () => {
    const sockets = new FakeSocketSet();
    sockets.add(50, true);
    const { drain } = drainOf(sockets, { windowSeconds: 0 });
    drain.onSignal('SIGTERM');
    assert.equal(sockets.closedWith(SERVICE_RESTART), 50);
    assert.equal(drain.state, 'closing');
  });

  it('on a second signal sends every remaining close frame and cuts the wait to at most 1 s', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(40, true);
    const { drain, exits } = drainOf(sockets, { windowSeconds: 60, closeTimeoutSeconds: 10 });
    drain.onSignal('SIGTERM');
    advance(500);
    assert.equal(sockets.closedWith(SERVICE_RESTART), Math.ceil((40 * 500) / 60_000));
    drain.onSignal('SIGINT');
    assert.equal(sockets.closedWith(SERVICE_RESTART), 40);
    advance(950);
    assert.notEqual(drain.state, 'exited');
    mock.timers.tick(TICK_MS); // 1 s after the second signal
    assert.equal(drain.state, 'exited');
    await settle();
    assert.deepEqual(exits, [0]);
    assert.equal(drain.progress.terminated, 40);
  });

  it('skips sockets that closed on their own since the drain began, sending them nothing', () => {
    const sockets = new FakeSocketSet();
    const [gone] = sockets.add(2, true);
    const { drain } = drainOf(sockets, { windowSeconds: 0.1 });
    drain.onSignal('SIGTERM');
    gone!.readyState = 3; // the peer closed first
    advance(100);
    assert.equal(gone!.closedWith, undefined);
    assert.equal(drain.progress.closeFramesSent, 1);
  });

  it('logs its progress at most once a second', async () => {
    const sockets = new FakeSocketSet();
    sockets.add(10, true);
    const { drain, lines } = drainOf(sockets, { windowSeconds: 5 });
    drain.onSignal('SIGTERM');
    advance(3000);
    await settle();
    assert.equal(lines.filter((l) => l.msg === 'drain progress').length, 3);
  });
});
