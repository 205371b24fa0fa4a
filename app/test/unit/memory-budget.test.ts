// The memory limit as the container's cgroup gives it (v1 and v2, in fake
// cgroup directories), and the budget derived from it: its arithmetic, and
// the one-line errors when the settings cannot fit the limit. The chart
// repeats the arithmetic: integration/chart/memory.test.ts compares them.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ContainerMemory } from '../../src/cgroup.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { memoryBudget, planMemory, reserveBytes } from '../../src/memory-budget.js';

const MIB = 1024 * 1024;

/** A cgroup directory with these files (paths relative to it). */
function cgroupDir(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'cgroup-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('the container memory cgroup', () => {
  it('v2: the limit from memory.max and the kernel socket buffers from memory.stat', () => {
    const memory = new ContainerMemory(cgroupDir({ 'memory.max': '536870912\n', 'memory.stat': 'anon 1000\nfile 2000\nsock 65536\nshmem 0\n' }));
    assert.equal(memory.version, 2);
    assert.equal(memory.limit()?.bytes, 512 * MIB);
    assert.match(memory.limit()!.source, /^cgroup v2 .*\/memory\.max$/);
    assert.equal(memory.kernelSocketBytes(), 65536);
  });

  it('v2 without a limit ("max")', () => {
    const memory = new ContainerMemory(cgroupDir({ 'memory.max': 'max\n', 'memory.stat': 'anon 1\n' }));
    assert.equal(memory.limit(), undefined);
    assert.equal(memory.kernelSocketBytes(), 0, 'no sock line: 0');
  });

  it('v1: the limit from memory.limit_in_bytes (a near-2^63 number is none) and TCP buffers from memory.kmem.tcp.usage_in_bytes', () => {
    const limited = new ContainerMemory(cgroupDir({ 'memory/memory.limit_in_bytes': '268435456\n', 'memory/memory.kmem.tcp.usage_in_bytes': '4096\n' }));
    assert.equal(limited.version, 1);
    assert.equal(limited.limit()?.bytes, 256 * MIB);
    assert.match(limited.limit()!.source, /^cgroup v1 .*memory\.limit_in_bytes$/);
    assert.equal(limited.kernelSocketBytes(), 4096);
    const unlimited = new ContainerMemory(cgroupDir({ 'memory/memory.limit_in_bytes': '9223372036854771712\n' }));
    assert.equal(unlimited.limit(), undefined);
    assert.equal(unlimited.kernelSocketBytes(), 0);
  });

  it('no cgroup at all: no limit, no kernel bytes', () => {
    const memory = new ContainerMemory(cgroupDir({}));
    assert.deepEqual([memory.version, memory.limit(), memory.kernelSocketBytes()], [undefined, undefined, 0]);
  });
});

describe('the memory budget', () => {
  const settings = { maxConnections: 10_000, maxPayloadBytes: 64 * 1024, backpressureBytes: MIB };

  it('is 60 % of what the limit leaves after the runtime (64 MiB) and 8 KiB per MAX_CONNECTIONS', () => {
    assert.equal(reserveBytes(10_000), 64 * MIB + 10_000 * 8192);
    assert.deepEqual(memoryBudget({ ...settings, limitBytes: 512 * MIB, budgetBytes: undefined }), {
      bytes: Math.floor((512 * MIB - reserveBytes(10_000)) * 0.6),
      source: 'derived',
    });
  });

  it('is what MEMORY_BUDGET_BYTES says, off at 0, and off without a limit to derive it from', () => {
    assert.deepEqual(memoryBudget({ ...settings, limitBytes: 512 * MIB, budgetBytes: 100 * MIB }), { bytes: 100 * MIB, source: 'set' });
    assert.deepEqual(memoryBudget({ ...settings, limitBytes: undefined, budgetBytes: 100 * MIB }), { bytes: 100 * MIB, source: 'set' });
    assert.deepEqual(memoryBudget({ ...settings, limitBytes: 512 * MIB, budgetBytes: 0 }), { bytes: 0, source: 'off' });
    assert.deepEqual(memoryBudget({ ...settings, limitBytes: undefined, budgetBytes: undefined }), { bytes: 0, source: 'no limit' });
  });

  it('refuses settings that cannot fit the limit, saying which values disagree', () => {
    const tooSmall = memoryBudget({ ...settings, limitBytes: 128 * MIB, budgetBytes: undefined });
    assert.ok('error' in tooSmall);
    assert.match(
      tooSmall.error,
      /memory limit \(128\.0 MiB\) is too small.*MAX_CONNECTIONS=10000.*need 142\.1 MiB.*BACKPRESSURE_BYTES \+ 2 × MAX_PAYLOAD_BYTES/,
    );
    const over = memoryBudget({ ...settings, limitBytes: 512 * MIB, budgetBytes: 400 * MIB });
    assert.ok('error' in over && /MEMORY_BUDGET_BYTES=419430400 is more than the memory limit \(512\.0 MiB\) leaves/.test(over.error));
    const underOne = memoryBudget({ ...settings, limitBytes: undefined, budgetBytes: MIB });
    assert.ok('error' in underOne && /less than one connection may hold \(1\.1 MiB/.test(underOne.error));
    // A smaller MAX_CONNECTIONS makes the same limit work.
    const fewer = memoryBudget({ ...settings, maxConnections: 1000, limitBytes: 128 * MIB, budgetBytes: undefined });
    assert.ok('source' in fewer && fewer.source === 'derived');
  });

  it('planMemory takes MEMORY_LIMIT_BYTES over the cgroup and throws a ConfigError with the reason', () => {
    const cgroup = new ContainerMemory(cgroupDir({ 'memory.max': String(1024 * MIB) }));
    const fromEnv = planMemory(loadConfig({ MEMORY_LIMIT_BYTES: String(512 * MIB) }), cgroup);
    assert.deepEqual([fromEnv.limit, fromEnv.budgetSource], [{ bytes: 512 * MIB, source: 'MEMORY_LIMIT_BYTES' }, 'derived']);
    assert.equal(planMemory(loadConfig({}), cgroup).limit?.bytes, 1024 * MIB);
    assert.throws(
      () => planMemory(loadConfig({ MEMORY_LIMIT_BYTES: String(100 * MIB) }), cgroup),
      (err: unknown) => err instanceof ConfigError && err.problems.length === 1 && /too small/.test(err.problems[0]!),
    );
  });
});
