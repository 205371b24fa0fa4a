// The benchmark runs once in its tiny configuration: it proves every case
// works end to end (both servers, pinned processes, CPU and RSS readings).
// Its figures are printed, never asserted: timing goals live in `npm run bench`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchMarkdown, QUICK, runBench } from '../../testkit/bench/bench.js';

describe('npm run bench (quick configuration)', () => {
  it('measures every case for ws-echo and the baseline', async () => {
    const result = await runBench(QUICK);
    const positive = (what: string, value: number): void => assert.ok(Number.isFinite(value) && value > 0, `${what} = ${value}`);
    assert.equal(result.throughput.length, QUICK.sizes.length * QUICK.depths.length);
    for (const t of result.throughput) {
      for (const name of ['ws-echo', 'baseline'] as const) {
        positive(`${name} msg/s`, t.servers[name].messagesPerSecond);
        positive(`${name} CPU/msg`, t.servers[name].cpuMicrosPerMessage);
      }
      positive('CPU ratio', t.cpuRatio);
    }
    assert.equal(result.scaling.length, QUICK.scalingConnections.length);
    for (const m of result.memory) positive(`bytes/connection at ${m.connections}`, m.bytesPerConnection['ws-echo']);
    positive('upgrades/s', result.upgrades.perSecond['ws-echo']);
    positive('drain seconds', result.drain.seconds);
    const table = benchMarkdown(result, 'npm run bench -- --quick');
    assert.match(table, /\| 5 × 64 B, 16 \|/);
    console.log(
      table
        .split('\n')
        .map((line) => `# ${line}`)
        .join('\n'),
    );
  });
});
