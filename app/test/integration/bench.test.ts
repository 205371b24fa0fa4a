// The benchmark runs once in its tiny configuration: it proves every case
// works end to end (every server, both write patterns, bufferutil on and off
// when it is installed, pinned processes, CPU and RSS readings).
// Its figures are printed, never asserted: timing goals live in `npm run bench`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchMarkdown, QUICK, runBench, SERVER_NAMES } from '../../testkit/bench/bench.js';

describe('npm run bench (quick configuration)', () => {
  it('measures every case for ws-echo, the ws baseline and the node:net floor', async () => {
    const result = await runBench(QUICK);
    const positive = (what: string, value: number): void => assert.ok(Number.isFinite(value) && value > 0, `${what} = ${value}`);
    assert.equal(result.throughput.length, QUICK.sizes.length * QUICK.cases.length);
    assert.deepEqual([...new Set(result.throughput.map((t) => t.pattern))], ['per-frame', 'corked']);
    for (const t of result.throughput) {
      for (const name of SERVER_NAMES) {
        positive(`${name} msg/s`, t.servers[name].messagesPerSecond);
        positive(`${name} CPU/msg`, t.servers[name].cpuMicrosPerMessage);
      }
      positive('CPU ratio', t.cpuRatio);
      positive('floor ratio', t.floorRatio);
    }
    assert.equal(result.scaling.length, QUICK.scalingConnections.length);
    for (const m of result.memory) positive(`bytes/connection at ${m.connections}`, m.bytesPerConnection['ws-echo']);
    if (result.addons.bufferutil !== null) assert.equal(result.bufferutil?.length, QUICK.sizes.length);
    positive('upgrades/s', result.upgrades.perSecond['ws-echo']);
    positive('node:net accepts/s', result.upgrades.perSecond['node:net']);
    positive('drain seconds', result.drain.seconds);
    const table = benchMarkdown(result, 'npm run bench -- --quick');
    assert.match(table, /One frame per write[\s\S]*\| 64 B, 1 \|[\s\S]*Best case: corked[\s\S]*\| 64 B, 16 \|/);
    console.log(
      table
        .split('\n')
        .map((line) => `# ${line}`)
        .join('\n'),
    );
  });
});
