// The deletion-cost reporter on node:test's mock clock: when it patches,
// what it skips, one patch at a time, and the backoff after a failure. The
// patches through the real client to the fake API server:
// integration/kube.test.ts.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { DeletionCostReporter, type DeletionCostOptions } from '../../src/deletion-cost.js';

beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: 0 }));
afterEach(() => mock.timers.reset());

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A reporter whose patches are recorded with the mock time; `answer` decides each patch's fate. */
function reporterOf(options: Partial<DeletionCostOptions> & { count: () => number; answer?: () => Promise<boolean> }) {
  const patches: [number, number][] = [];
  const reporter = new DeletionCostReporter({
    patch: (cost) => {
      patches.push([Date.now(), cost]);
      return options.answer?.() ?? Promise.resolve(true);
    },
    connectionCount: options.count,
    minIntervalMs: 10_000,
    checkIntervalMs: 1000,
    failureBackoffMs: 60_000,
    // The middle of the jitter: every interval exactly minIntervalMs.
    random: () => 0.5,
    ...options,
  });
  return { reporter, patches };
}

/** Advances the clock second by second, letting each check's patch settle. */
async function advance(seconds: number): Promise<void> {
  for (let i = 0; i < seconds; i++) {
    mock.timers.tick(1000);
    await settle();
  }
}

describe('pod-deletion-cost reports (mock clock)', () => {
  it('patches at start, then at most once per interval however fast the count changes', async () => {
    let count = 0;
    const { reporter, patches } = reporterOf({ count: () => (count += 7) });
    reporter.start();
    await settle();
    await advance(35);
    reporter.stop();
    assert.deepEqual(
      patches.map(([t]) => t),
      [0, 10_000, 20_000, 30_000],
    );
  });

  it('stretches or shortens each interval by up to 10 %, so pods started together drift apart', async () => {
    for (const [random, expected] of [
      [0, [0, 9000, 18_000, 27_000]],
      [1, [0, 11_000, 22_000, 33_000]],
    ] as const) {
      let count = 0;
      const { reporter, patches } = reporterOf({ count: () => (count += 100), random: () => random });
      reporter.start();
      await settle();
      await advance(34);
      reporter.stop();
      assert.deepEqual(
        patches.map(([t]) => t - patches[0]![0]),
        expected,
        `random ${random}`,
      );
    }
  });

  it('skips a change under 5 % of the last report (at least one connection), and patches a larger one when the interval allows', async () => {
    let count = 1000;
    const { reporter, patches } = reporterOf({ count: () => count });
    reporter.start();
    await settle();
    count = 1049; // +4.9 %
    await advance(20);
    assert.deepEqual(patches, [[0, 1000]]);
    count = 1050; // +5 %
    await advance(1);
    assert.deepEqual(patches, [
      [0, 1000],
      [21_000, 1050],
    ]);
    reporter.stop();
  });

  it('reports a change of one connection from zero', async () => {
    let count = 0;
    const { reporter, patches } = reporterOf({ count: () => count, minIntervalMs: 1000 });
    reporter.start();
    await settle();
    count = 1;
    await advance(1);
    assert.deepEqual(
      patches.map(([, cost]) => cost),
      [0, 1],
    );
    reporter.stop();
  });

  it('after a failed patch, waits the backoff before trying again, and keeps the last cost the API took', async () => {
    let count = 100;
    let ok = true;
    const { reporter, patches } = reporterOf({ count: () => count, answer: () => Promise.resolve(ok) });
    reporter.start();
    await settle();
    ok = false;
    count = 500;
    await advance(10);
    assert.deepEqual(patches.at(-1), [10_000, 500], 'tried when the interval allowed');
    assert.equal(reporter.reported, 100);
    await advance(59);
    assert.equal(patches.length, 2, 'nothing during the 60 s backoff');
    ok = true;
    await advance(1);
    assert.deepEqual(patches.at(-1), [70_000, 500]);
    assert.equal(reporter.reported, 500);
    reporter.stop();
  });

  it('sends one patch at a time: no check starts another while one is in flight', async () => {
    let count = 0;
    let release: (ok: boolean) => void = () => {};
    const { reporter, patches } = reporterOf({
      count: () => (count += 50),
      minIntervalMs: 1000,
      answer: () => new Promise<boolean>((resolve) => (release = resolve)),
    });
    reporter.start();
    await advance(5);
    assert.equal(patches.length, 1, 'the first patch has not answered yet');
    release(true);
    await settle();
    await advance(1);
    assert.equal(patches.length, 2);
    reporter.stop();
  });
});
