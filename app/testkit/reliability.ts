// Shared by the reliability tests: a seeded PRNG (failures reproduce from the
// printed seed), bystander reference clients that must lose nothing while an
// offender does its worst, a sampler of the server process's memory from
// /proc, and the figures every case records for docs/RELIABILITY.md.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildService } from './child-service.js';
import { chartValues } from './chart/values.js';
import { Load, type LoadTotals } from './load.js';
import { reportsDir } from './paths.js';
import { rssBytes } from './proc.js';
import { wsUrl } from './websocket.js';

/** Where each test file writes its figures (gitignored); scripts/reliability-table.ts turns them into Markdown. */
export const figuresDir = join(reportsDir, 'reliability');

// ---------------------------------------------------------------------------
// Seeded randomness

/** The seed of every randomised case: RELIABILITY_SEED, or a fixed default so CI is deterministic. */
export const SEED = parseSeed(process.env.RELIABILITY_SEED) ?? 20261125;

function parseSeed(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const seed = Number(value);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`RELIABILITY_SEED must be a whole number, got ${JSON.stringify(value)}`);
  return seed >>> 0;
}

/** sfc32: small, fast, and good enough to explore inputs; the same seed gives the same sequence. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }

  /** A float in [0, 1). */
  next(): number {
    const a = this.#a,
      b = this.#b,
      c = this.#c,
      d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    const r = (c << 21) | (c >>> 11);
    this.#c = (r + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
}

// ---------------------------------------------------------------------------
// Bystanders: reference clients that keep sending while an offender misbehaves

/**
 * `count` reference clients (app/src/client.ts) sending one message every
 * `intervalMs` each: the same load the local cluster runs (load.ts).
 */
export async function startBystanders(port: number, count: number, intervalMs = 20): Promise<Load> {
  const load = new Load({ url: wsUrl(port), clients: count, rate: 1000 / intervalMs, paddingBytes: 64, tickMs: intervalMs });
  await load.open();
  load.startSending();
  return load;
}

/** Bystanders must not notice anything: every message echoed intact, in order, on the connection they started with. */
export function assertUnharmed(report: LoadTotals, what: string): void {
  assert.ok(report.sent > 0, `${what}: the bystanders sent nothing`);
  assert.equal(report.lost, 0, `${what}: bystanders lost ${report.lost} messages`);
  assert.equal(report.echoed, report.sent, `${what}: bystanders got ${report.echoed} of ${report.sent} echoes`);
  assert.equal(report.duplicated + report.corrupted + report.outOfOrder, 0, `${what}: bystanders saw duplicated, corrupted or out-of-order echoes`);
  assert.equal(report.reconnects + report.failedUpgrades + report.abnormalCloses, 0, `${what}: a bystander was disconnected`);
  // Each bystander closes once with 1000 when it stops; any other close hit it during the case.
  assert.deepEqual(report.closeCodes, { 1000: report.clients }, `${what}: bystanders were closed`);
}

export interface Watched<T> {
  readonly result: T;
  readonly others: LoadTotals;
  readonly memory: { readonly startMiB: number; readonly peakMiB: number };
}

/**
 * Runs one hostile case with `bystanders` reference clients sending all along
 * and the server's RSS sampled; whatever happens, both are stopped before it
 * returns (a client left running would keep the test process alive).
 */
export async function watched<T>(service: ChildService, fn: () => Promise<T>, bystanders = 4): Promise<Watched<T>> {
  const others = await startBystanders(service.port, bystanders);
  const sampler = new MemorySampler(service.pid);
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    sampler.stop();
    await others.abort();
    throw err;
  }
  const memory = sampler.stop();
  return { result, others: await others.finish(10_000), memory };
}

/** The bystanders lost nothing and the server's memory stayed under the bound. */
export function assertContained(watchedCase: Watched<unknown>, what: string): void {
  assertUnharmed(watchedCase.others, what);
  assert.ok(watchedCase.memory.peakMiB < RSS_BOUND_MIB, `${what}: peak RSS ${watchedCase.memory.peakMiB} MiB (bound ${RSS_BOUND_MIB} MiB)`);
}

/** One line for the figures table: what the bystanders saw. */
export function othersSaw(report: LoadTotals): string {
  return `${report.clients} bystanders: ${report.echoed}/${report.sent} echoed, 0 closes`;
}

// ---------------------------------------------------------------------------
// Memory of the server process

/** Samples VmRSS of a process from /proc every `intervalMs`; the peak is what the figures report. */
export class MemorySampler {
  readonly startBytes: number;
  #peakBytes: number;
  readonly #timer: NodeJS.Timeout;

  constructor(
    readonly pid: number,
    intervalMs = 20,
  ) {
    this.startBytes = rssOrZero(pid);
    this.#peakBytes = this.startBytes;
    this.#timer = setInterval(() => this.sample(), intervalMs).unref();
  }

  sample(): number {
    const now = rssOrZero(this.pid);
    this.#peakBytes = Math.max(this.#peakBytes, now);
    return now;
  }

  get peakBytes(): number {
    return this.#peakBytes;
  }

  stop(): { startMiB: number; peakMiB: number } {
    clearInterval(this.#timer);
    this.sample();
    return { startMiB: mib(this.startBytes), peakMiB: mib(this.#peakBytes) };
  }
}

/** VmRSS of `pid` in bytes, 0 once the process is gone (a sample may come after a case killed it). */
function rssOrZero(pid: number): number {
  try {
    return rssBytes(pid);
  } catch {
    return 0;
  }
}

export function mib(bytes: number): number {
  return Math.round((bytes / 1024 / 1024) * 10) / 10;
}

/**
 * The bound every hostile case must stay under: the chart's memory limit
 * (resources.limits.memory in chart/values.yaml), past which the kernel kills
 * the pod and every client on it. V8 lets garbage pile up to well above the
 * live set between collections, so the peak says more about the GC than
 * about a leak; the tests also check that every connection is gone after.
 */
export const RSS_BOUND_MIB = chartMemoryLimitMiB();

function chartMemoryLimitMiB(): number {
  const limit = String(chartValues().resources.limits.memory);
  const match = /^(\d+)(Mi|Gi)$/.exec(limit);
  if (!match) throw new Error(`chart/values.yaml resources.limits.memory is ${limit}; expected Mi or Gi`);
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
}

// ---------------------------------------------------------------------------
// The figures

/** One row of the table in docs/RELIABILITY.md. */
export interface CaseFigures {
  readonly case: string;
  readonly inputs: number;
  /** What the offender saw (close code, HTTP status, …). */
  readonly offender: string;
  /** What the other clients saw. */
  readonly others: string;
  /** RSS of the server process (VmRSS) when the case began and at its peak, MiB (when measured). */
  readonly memory?: { readonly startMiB: number; readonly peakMiB: number };
  /** What was lost (must be 0). */
  readonly lost: number;
  readonly notes?: string;
  /** One line per input kind, for the details under the table: what was sent, and what came back. */
  readonly details?: readonly (readonly [string, string])[];
}

/** Collects the rows of one test file and writes them to reports/reliability/<suite>.json. */
export class Figures {
  readonly rows: CaseFigures[] = [];

  constructor(readonly suite: string) {}

  add(row: CaseFigures): void {
    this.rows.push(row);
    console.log(
      `# ${row.case}: inputs=${row.inputs} offender=[${row.offender}] others=[${row.others}] rss=${row.memory ? `${row.memory.startMiB}→${row.memory.peakMiB}` : '-'}MiB lost=${row.lost}${row.notes ? ` (${row.notes})` : ''}`,
    );
  }

  write(): void {
    mkdirSync(figuresDir, { recursive: true });
    writeFileSync(
      join(figuresDir, `${this.suite}.json`),
      `${JSON.stringify({ suite: this.suite, seed: SEED, at: new Date().toISOString(), rows: this.rows }, null, 2)}\n`,
    );
  }
}

/** Formats a tally like { '1002': 40, '1009': 3 } as "1002×40, 1009×3". */
export function tally(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${k}×${n}`)
    .join(', ');
}
