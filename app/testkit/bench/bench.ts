// `npm run bench`: ws-echo (production build, metrics and heartbeats on, as
// deployed) against the minimal ws echo server of ws's README and against a
// raw TCP echo on node:net (the floor: no framing), in the same run, same
// client, same machine. Server pinned to core 0, client to core 1. Figures
// are medians of several runs; ratios are ws-echo / baseline and ws-echo /
// node:net.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot, serviceMain } from '../paths.js';
import { spawnOwned } from '../processes.js';
import { CLOCK_TICKS_PER_SECOND, cpuTicks, rssBytes } from '../proc.js';
import type { Command, Protocol, Reply, WritePattern } from './load-client.js';

const SERVERS = {
  'ws-echo': serviceMain,
  baseline: fileURLToPath(new URL('./baseline-server.js', import.meta.url)),
  'node:net': fileURLToPath(new URL('./net-server.js', import.meta.url)),
} as const;
export type ServerName = keyof typeof SERVERS;
export const SERVER_NAMES = Object.keys(SERVERS) as ServerName[];
const PROTOCOL: Record<ServerName, Protocol> = { 'ws-echo': 'ws', baseline: 'ws', 'node:net': 'tcp' };
const LOAD_CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));
/** Source addresses for mass connects: ephemeral ports and TIME_WAIT are per address pair. */
const LOCAL_ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);

export interface BenchOptions {
  readonly runs: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly throughputConnections: number;
  readonly sizes: readonly number[];
  /** Messages in flight per connection and how the client writes them; the first pattern is the headline. */
  readonly cases: readonly { readonly depth: number; readonly pattern: WritePattern }[];
  /** Alternating runs of ws-echo with and without bufferutil, per size (per-frame, depth 1). */
  readonly bufferutilRuns: number;
  readonly scalingConnections: readonly number[];
  readonly idleConnections: number;
  readonly memoryConnections: readonly number[];
  readonly upgradeConnections: number;
  readonly drainConnections: number;
  /** Wait before the memory baseline, and after opening, for the heap to settle. */
  readonly settleMs: number;
}

const CASES: BenchOptions['cases'] = [
  { depth: 1, pattern: 'per-frame' },
  { depth: 16, pattern: 'per-frame' },
  { depth: 16, pattern: 'corked' },
];

export const FULL: BenchOptions = {
  runs: 3,
  warmupMs: 1000,
  durationMs: 3000,
  throughputConnections: 50,
  sizes: [64, 4096, 65_536],
  cases: CASES,
  bufferutilRuns: 5,
  scalingConnections: [1, 100, 1000],
  idleConnections: 5000,
  memoryConnections: [1000, 5000, 15_000],
  upgradeConnections: 5000,
  drainConnections: 10_000,
  settleMs: 3000,
};

/** A tiny configuration that proves every case works (the test suite runs it). */
export const QUICK: BenchOptions = {
  runs: 1,
  warmupMs: 150,
  durationMs: 350,
  throughputConnections: 5,
  sizes: [64],
  cases: [CASES[0]!, CASES[2]!],
  bufferutilRuns: 1,
  scalingConnections: [],
  idleConnections: 200,
  memoryConnections: [],
  upgradeConnections: 200,
  drainConnections: 200,
  settleMs: 200,
};

interface Running {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly metricsPort?: number;
}

export interface ThroughputFigures {
  readonly messagesPerSecond: number;
  readonly rttP50Ms: number;
  readonly rttP99Ms: number;
  /** Server utime + stime per message, microseconds. */
  readonly cpuMicrosPerMessage: number;
}

export interface BufferutilRow {
  readonly size: number;
  /** ws-echo's CPU per message with bufferutil loaded, and with WS_NO_BUFFER_UTIL=1: every run, then the median. */
  readonly onRuns: number[];
  readonly offRuns: number[];
  readonly on: number;
  readonly off: number;
  /** on / off of the medians. */
  readonly ratio: number;
  /** The larger of the two sides' (max − min) / median: the run-to-run spread the ratio is judged against. */
  readonly spread: number;
}

export interface BenchResult {
  readonly machine: { cpu: string; cores: number; kernel: string; node: string; date: string };
  readonly options: BenchOptions;
  /** Which native add-on ws loads in the servers under test (the same for all of them). */
  readonly addons: { bufferutil: string | null };
  readonly throughput: {
    connections: number;
    size: number;
    depth: number;
    pattern: WritePattern;
    servers: Record<ServerName, ThroughputFigures>;
    /** ws-echo / baseline. */
    cpuRatio: number;
    /** ws-echo / node:net. */
    floorRatio: number;
  }[];
  /** Undefined when bufferutil cannot be loaded (not installed). */
  readonly bufferutil: BufferutilRow[] | undefined;
  readonly scaling: { connections: number; servers: Record<ServerName, ThroughputFigures>; cpuRatio: number }[];
  readonly memory: { connections: number; bytesPerConnection: Record<ServerName, number>; ratio: number }[];
  readonly upgrades: {
    connections: number;
    perSecond: Record<ServerName, number>;
    ratio: number;
    /** For node:net, a bare TCP accept: the floor under any upgrade. */
    cpuMicrosPerUpgrade: Record<ServerName, number>;
    cpuRatio: number;
  };
  readonly drain: { connections: number; seconds: number };
}

async function startServer(name: ServerName, env: Record<string, string> = {}): Promise<Running> {
  const child = spawnOwned('taskset', ['-c', '0', process.execPath, SERVERS[name]], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      METRICS_PORT: '0',
      HOST: '127.0.0.1',
      // As deployed: info logs, heartbeats every 30 s, metrics on; room for the 15k memory case.
      LOG_LEVEL: 'info',
      MAX_CONNECTIONS: '20000',
      // Lets a run load add-ons from outside node_modules (e.g. bufferutil installed elsewhere to compare).
      ...(process.env.NODE_PATH ? { NODE_PATH: process.env.NODE_PATH } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buffered = '';
  const listening = await new Promise<{ port: number; metricsPort?: number }>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n').slice(0, -1)) {
        const entry = JSON.parse(line) as { msg?: string; port?: number; metricsPort?: number };
        if (entry.msg === 'listening') resolve({ port: entry.port!, ...(entry.metricsPort ? { metricsPort: entry.metricsPort } : {}) });
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before listening`)));
  });
  return { child, pid: child.pid!, ...listening };
}

async function stop(process_: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (process_.exitCode !== null || process_.signalCode !== null) return;
  const exited = once(process_, 'exit');
  process_.kill(signal);
  await exited;
}

function startClient(): ChildProcess {
  return spawnOwned('taskset', ['-c', '1', process.execPath, LOAD_CLIENT], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function ask(client: ChildProcess, command: Command, until: Reply['kind'], onReply?: (reply: Reply) => void): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const onMessage = (reply: Reply): void => {
      onReply?.(reply);
      if (reply.kind === until) {
        client.off('message', onMessage);
        resolve(reply);
      }
    };
    client.on('message', onMessage);
    client.once('exit', (code) => reject(new Error(`load client exited with ${code}`)));
    client.send(command);
  });
}

/**
 * Where the bufferutil that ws loads when started with `env` lives, or null
 * when ws masks in JavaScript (not installed, no prebuilt binary fits, or
 * WS_NO_BUFFER_UTIL set). Asks ws itself: its masking function calls
 * bufferutil only when its require of it succeeded.
 */
export function bufferutilLoadedBy(env: Record<string, string> = {}): string | null {
  const probe = `const fromWs = require('node:module').createRequire(require.resolve('ws'));
const native = fromWs('./lib/buffer-util.js').mask.toString().includes('bufferUtil.mask');
console.log(native ? fromWs.resolve('bufferutil') : '');`;
  const out = execFileSync(process.execPath, ['-e', probe], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...(process.env.NODE_PATH ? { NODE_PATH: process.env.NODE_PATH } : {}), ...env },
    encoding: 'utf8',
  }).trim();
  return out === '' ? null : out;
}

async function measureThroughput(
  name: ServerName,
  connections: number,
  size: number,
  depth: number,
  pattern: WritePattern,
  options: BenchOptions,
  env: Record<string, string> = {},
): Promise<ThroughputFigures> {
  const server = await startServer(name, env);
  const client = startClient();
  try {
    let ticksAtStart = 0;
    // As deployed, Prometheus scrapes: every second here, a harsher schedule than the usual 15–30 s.
    const scrape = (): Promise<unknown> =>
      fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)
        .then((r) => r.text())
        .catch(() => undefined);
    const scraper = server.metricsPort === undefined ? undefined : setInterval(() => void scrape(), 1000);
    const result = (await ask(
      client,
      {
        kind: 'throughput',
        protocol: PROTOCOL[name],
        url: `ws://127.0.0.1:${server.port}/echo`,
        connections,
        size,
        depth,
        pattern,
        warmupMs: options.warmupMs,
        durationMs: options.durationMs,
      },
      'throughput',
      (reply) => {
        if (reply.kind === 'measuring') ticksAtStart = cpuTicks(server.pid);
      },
    )) as Extract<Reply, { kind: 'throughput' }>;
    const cpuSeconds = (cpuTicks(server.pid) - ticksAtStart) / CLOCK_TICKS_PER_SECOND;
    clearInterval(scraper);
    return {
      messagesPerSecond: result.messages / result.seconds,
      rttP50Ms: result.rttP50Ms,
      rttP99Ms: result.rttP99Ms,
      cpuMicrosPerMessage: (cpuSeconds / result.messages) * 1e6,
    };
  } finally {
    await stop(client);
    await stop(server.child);
  }
}

async function measureIdleMemory(name: ServerName, connections: number, options: BenchOptions): Promise<number> {
  const server = await startServer(name);
  const client = startClient();
  try {
    await sleep(options.settleMs / 3);
    const before = rssBytes(server.pid);
    await ask(
      client,
      { kind: 'open', protocol: PROTOCOL[name], url: `ws://127.0.0.1:${server.port}/echo`, connections, concurrency: 100, localAddresses: LOCAL_ADDRESSES },
      'opened',
    );
    await sleep(options.settleMs); // let the server settle (GC after the handshake garbage)
    return (rssBytes(server.pid) - before) / connections;
  } finally {
    await stop(client);
    await stop(server.child);
  }
}

/** Upgrades per second (the client's pace) and the server's CPU time per upgrade, microseconds. */
async function measureUpgrades(name: ServerName, connections: number): Promise<{ perSecond: number; cpuMicros: number }> {
  const server = await startServer(name);
  const client = startClient();
  try {
    const ticksBefore = cpuTicks(server.pid);
    const reply = (await ask(
      client,
      { kind: 'open', protocol: PROTOCOL[name], url: `ws://127.0.0.1:${server.port}/echo`, connections, concurrency: 100, localAddresses: LOCAL_ADDRESSES },
      'opened',
    )) as Extract<Reply, { kind: 'opened' }>;
    if (reply.failures > 0) throw new Error(`${name}: ${reply.failures} of ${connections} upgrades failed`);
    const cpuSeconds = (cpuTicks(server.pid) - ticksBefore) / CLOCK_TICKS_PER_SECOND;
    return { perSecond: connections / reply.seconds, cpuMicros: (cpuSeconds / connections) * 1e6 };
  } finally {
    await stop(client);
    await stop(server.child);
  }
}

/** ws-echo only: SIGTERM with DRAIN_WINDOW_SECONDS=0, time until the process has exited. */
async function measureDrain(connections: number): Promise<number> {
  const server = await startServer('ws-echo', { DRAIN_WINDOW_SECONDS: '0', DRAIN_CLOSE_TIMEOUT_SECONDS: '10' });
  const client = startClient();
  try {
    await ask(
      client,
      { kind: 'open', protocol: 'ws', url: `ws://127.0.0.1:${server.port}/echo`, connections, concurrency: 100, localAddresses: LOCAL_ADDRESSES },
      'opened',
    );
    await sleep(500);
    const exited = once(server.child, 'exit');
    const started = performance.now();
    server.child.kill('SIGTERM');
    const [code] = (await exited) as [number];
    if (code !== 0) throw new Error(`ws-echo exited with ${code} after the drain`);
    return (performance.now() - started) / 1000;
  } finally {
    await stop(client);
    await stop(server.child);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Runs `measure` for every server `runs` times, alternating, and returns the medians. */
async function allServers<T extends number | ThroughputFigures>(runs: number, measure: (name: ServerName) => Promise<T>): Promise<Record<ServerName, T>> {
  const results: Record<ServerName, T[]> = { 'ws-echo': [], baseline: [], 'node:net': [] };
  for (let run = 0; run < runs; run++) {
    for (const name of ['node:net', 'baseline', 'ws-echo'] as const) results[name].push(await measure(name));
  }
  const summarize = (list: T[]): T => {
    if (typeof list[0] === 'number') return median(list as number[]) as T;
    const figures = list as ThroughputFigures[];
    return {
      messagesPerSecond: median(figures.map((f) => f.messagesPerSecond)),
      rttP50Ms: median(figures.map((f) => f.rttP50Ms)),
      rttP99Ms: median(figures.map((f) => f.rttP99Ms)),
      cpuMicrosPerMessage: median(figures.map((f) => f.cpuMicrosPerMessage)),
    } as T;
  };
  return { 'ws-echo': summarize(results['ws-echo']), baseline: summarize(results.baseline), 'node:net': summarize(results['node:net']) };
}

/** ws-echo with bufferutil and without (WS_NO_BUFFER_UTIL=1), alternating, per-frame at depth 1. */
async function measureBufferutil(options: BenchOptions, log: (line: string) => void): Promise<BufferutilRow[] | undefined> {
  if (bufferutilLoadedBy() === null) {
    log('bufferutil: not installed (ws runs its JavaScript masking); on/off not measured');
    return undefined;
  }
  const rows: BufferutilRow[] = [];
  for (const size of options.sizes) {
    const onRuns: number[] = [];
    const offRuns: number[] = [];
    for (let run = 0; run < options.bufferutilRuns; run++) {
      const measure = (env: Record<string, string>): Promise<number> =>
        measureThroughput('ws-echo', options.throughputConnections, size, 1, 'per-frame', options, env).then((f) => f.cpuMicrosPerMessage);
      offRuns.push(await measure({ WS_NO_BUFFER_UTIL: '1' }));
      onRuns.push(await measure({}));
    }
    const on = median(onRuns);
    const off = median(offRuns);
    const spreadOf = (list: number[]): number => (Math.max(...list) - Math.min(...list)) / median(list);
    const row = { size, onRuns, offRuns, on, off, ratio: on / off, spread: Math.max(spreadOf(onRuns), spreadOf(offRuns)) };
    rows.push(row);
    log(`bufferutil at ${size} B: ${on.toFixed(2)} vs ${off.toFixed(2)} µs/msg (${row.ratio.toFixed(2)}×, spread ${(row.spread * 100).toFixed(0)} %)`);
  }
  return rows;
}

export async function runBench(options: BenchOptions, log: (line: string) => void = () => {}): Promise<BenchResult> {
  const bufferutil = bufferutilLoadedBy();
  log(`bufferutil: ${bufferutil ?? 'not loaded'}`);
  const throughput: BenchResult['throughput'] = [];
  for (const { depth, pattern } of options.cases) {
    for (const size of options.sizes) {
      const servers = await allServers(options.runs, (name) => measureThroughput(name, options.throughputConnections, size, depth, pattern, options));
      const cpuRatio = servers['ws-echo'].cpuMicrosPerMessage / servers.baseline.cpuMicrosPerMessage;
      const floorRatio = servers['ws-echo'].cpuMicrosPerMessage / servers['node:net'].cpuMicrosPerMessage;
      throughput.push({ connections: options.throughputConnections, size, depth, pattern, servers, cpuRatio, floorRatio });
      log(
        `throughput ${options.throughputConnections}×${size} B depth ${depth} ${pattern}: CPU/msg vs ws ${cpuRatio.toFixed(2)}, vs node:net ${floorRatio.toFixed(2)}`,
      );
    }
  }
  const bufferutilRows = await measureBufferutil(options, log);
  const scaling: BenchResult['scaling'] = [];
  for (const connections of options.scalingConnections) {
    const servers = await allServers(options.runs, (name) => measureThroughput(name, connections, 64, 1, 'per-frame', options));
    const cpuRatio = servers['ws-echo'].cpuMicrosPerMessage / servers.baseline.cpuMicrosPerMessage;
    scaling.push({ connections, servers, cpuRatio });
    log(`scaling ${connections} connections: CPU/msg ratio ${cpuRatio.toFixed(2)}`);
  }
  const memory: BenchResult['memory'] = [];
  for (const connections of [options.idleConnections, ...options.memoryConnections.filter((n) => n !== options.idleConnections)].sort((a, b) => a - b)) {
    const bytesPerConnection = await allServers(options.runs, (name) => measureIdleMemory(name, connections, options));
    memory.push({ connections, bytesPerConnection, ratio: bytesPerConnection['ws-echo'] / bytesPerConnection.baseline });
    log(`memory at ${connections}: ${Math.round(bytesPerConnection['ws-echo'])} vs ${Math.round(bytesPerConnection.baseline)} bytes/connection`);
  }
  const upgradeRuns: Record<ServerName, { perSecond: number; cpuMicros: number }[]> = { 'ws-echo': [], baseline: [], 'node:net': [] };
  for (let run = 0; run < options.runs; run++) {
    for (const name of ['node:net', 'baseline', 'ws-echo'] as const) upgradeRuns[name].push(await measureUpgrades(name, options.upgradeConnections));
  }
  const perServer = (pick: (u: { perSecond: number; cpuMicros: number }) => number): Record<ServerName, number> => ({
    'ws-echo': median(upgradeRuns['ws-echo'].map(pick)),
    baseline: median(upgradeRuns.baseline.map(pick)),
    'node:net': median(upgradeRuns['node:net'].map(pick)),
  });
  const perSecond = perServer((u) => u.perSecond);
  const cpuMicrosPerUpgrade = perServer((u) => u.cpuMicros);
  log(`upgrades: ${Math.round(perSecond['ws-echo'])} vs ${Math.round(perSecond.baseline)} per second`);
  const drainSeconds = await measureDrain(options.drainConnections);
  log(`drain of ${options.drainConnections}: ${drainSeconds.toFixed(2)} s`);
  return {
    machine: {
      cpu: cpus()[0]?.model.trim() ?? 'unknown',
      cores: cpus().length,
      kernel: release(),
      node: process.version,
      date: new Date().toISOString(),
    },
    options,
    addons: { bufferutil },
    throughput,
    bufferutil: bufferutilRows,
    scaling,
    memory,
    upgrades: {
      connections: options.upgradeConnections,
      perSecond,
      ratio: perSecond['ws-echo'] / perSecond.baseline,
      cpuMicrosPerUpgrade,
      cpuRatio: cpuMicrosPerUpgrade['ws-echo'] / cpuMicrosPerUpgrade.baseline,
    },
    drain: { connections: options.drainConnections, seconds: drainSeconds },
  };
}

const fmt = (value: number, digits = 1): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const bytes = (size: number): string => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`);

function throughputTable(rows: BenchResult['throughput']): string[] {
  return [
    '| size, in flight | msg/s: ws-echo / ws / node:net | CPU/msg: ws-echo | ws | node:net | **ws-echo ÷ ws** | ws-echo ÷ node:net | RTT p50 / p99 (ws-echo) |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((t) => {
      const [e, b, n] = [t.servers['ws-echo'], t.servers.baseline, t.servers['node:net']];
      return `| ${bytes(t.size)}, ${t.depth} | ${fmt(e.messagesPerSecond, 0)} / ${fmt(b.messagesPerSecond, 0)} / ${fmt(n.messagesPerSecond, 0)} | ${fmt(e.cpuMicrosPerMessage, 2)} µs | ${fmt(b.cpuMicrosPerMessage, 2)} µs | ${fmt(n.cpuMicrosPerMessage, 2)} µs | **${fmt(t.cpuRatio, 2)}×** | ${fmt(t.floorRatio, 2)}× | ${fmt(e.rttP50Ms, 2)} / ${fmt(e.rttP99Ms, 2)} ms |`;
    }),
  ];
}

/** The Markdown tables the README's performance section shows. */
export function benchMarkdown(result: BenchResult, command: string): string {
  const m = result.machine;
  const n = result.throughput[0]?.connections ?? 0;
  const u = result.upgrades;
  const lines = [
    `Command: \`${command}\` — ${m.date.slice(0, 10)}, ${m.cores}× ${m.cpu}, Linux ${m.kernel}, Node ${m.node}; server on core 0, client on core 1 (\`taskset\`), median of ${result.options.runs} runs of ${result.options.durationMs / 1000} s each; bufferutil ${result.addons.bufferutil === null ? 'not loaded (ws masks in JavaScript)' : 'loaded'} in every server.`,
    '',
    `**One frame per write** (the headline: a browser, or any client that sends each message on its own), ${n} connections. ws is the minimal echo server of ws's README; node:net a raw TCP echo of the same bytes, no framing (the floor).`,
    '',
    ...throughputTable(result.throughput.filter((t) => t.pattern === 'per-frame')),
    '',
    `**Best case: corked** (a pipelining client: the messages sent in reply to one read leave in one write, so the server reads, and with its cork writes, many frames at once), ${n} connections.`,
    '',
    ...throughputTable(result.throughput.filter((t) => t.pattern === 'corked')),
    '',
    ...(result.bufferutil === undefined
      ? ['bufferutil on/off: not measured (bufferutil is not installed where ws can load it).']
      : [
          `**bufferutil** (ws-echo alone, one frame per write, 1 in flight, ${result.options.bufferutilRuns} alternating runs each: median, then the runs' range):`,
          '',
          '| size | CPU/msg with bufferutil | without (`WS_NO_BUFFER_UTIL=1`) | ratio | every run with it cheaper than every run without |',
          '|---|---|---|---|---|',
          ...result.bufferutil.map(
            (r) =>
              `| ${bytes(r.size)} | ${fmt(r.on, 2)} µs (${fmt(Math.min(...r.onRuns), 1)}–${fmt(Math.max(...r.onRuns), 1)}) | ${fmt(r.off, 2)} µs (${fmt(Math.min(...r.offRuns), 1)}–${fmt(Math.max(...r.offRuns), 1)}) | **${fmt(r.ratio, 2)}×** | ${Math.max(...r.onRuns) < Math.min(...r.offRuns) ? 'yes' : 'no: the ranges overlap'} |`,
          ),
        ]),
    '',
    '| connections (64 B, 1 in flight, one frame per write) | ws-echo CPU/msg | ws CPU/msg | node:net CPU/msg | ws-echo ÷ ws | ws-echo msg/s | ws msg/s |',
    '|---|---|---|---|---|---|---|',
    ...result.scaling.map(
      (s) =>
        `| ${s.connections} | ${fmt(s.servers['ws-echo'].cpuMicrosPerMessage, 2)} µs | ${fmt(s.servers.baseline.cpuMicrosPerMessage, 2)} µs | ${fmt(s.servers['node:net'].cpuMicrosPerMessage, 2)} µs | ${fmt(s.cpuRatio, 2)}× | ${fmt(s.servers['ws-echo'].messagesPerSecond, 0)} | ${fmt(s.servers.baseline.messagesPerSecond, 0)} |`,
    ),
    '',
    '| idle connections | ws-echo bytes/connection (RSS) | ws bytes/connection | node:net bytes/connection | ws-echo ÷ ws |',
    '|---|---|---|---|---|',
    ...result.memory.map(
      (r) =>
        `| ${r.connections.toLocaleString('en-US')} | ${fmt(r.bytesPerConnection['ws-echo'], 0)} | ${fmt(r.bytesPerConnection.baseline, 0)} | ${fmt(r.bytesPerConnection['node:net'], 0)} | ${fmt(r.ratio, 2)}× |`,
    ),
    '',
    `Upgrades: ${u.connections.toLocaleString('en-US')} connections opened 100 at a time from 8 loopback addresses: ws-echo ${fmt(u.perSecond['ws-echo'], 0)}/s, ws ${fmt(u.perSecond.baseline, 0)}/s (**${fmt(u.ratio, 2)}×**); server CPU per upgrade ${fmt(u.cpuMicrosPerUpgrade['ws-echo'], 0)} µs vs ${fmt(u.cpuMicrosPerUpgrade.baseline, 0)} µs (${fmt(u.cpuRatio, 2)}×); node:net's bare TCP accept ${fmt(u.cpuMicrosPerUpgrade['node:net'], 0)} µs per connection.`,
    '',
    `Drain: ${result.drain.connections.toLocaleString('en-US')} connections, \`DRAIN_WINDOW_SECONDS=0\`: SIGTERM to exit 0 in ${fmt(result.drain.seconds, 2)} s (every client answered the 1012 close handshake).`,
  ];
  return lines.join('\n');
}

/** Replaces the text between the bench markers in README.md. */
export function writeIntoReadme(markdown: string, readme = join(repoRoot, 'README.md')): void {
  const text = readFileSync(readme, 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from === -1 || to === -1) throw new Error(`${readme} has no ${start} … ${end} markers`);
  writeFileSync(readme, `${text.slice(0, from + start.length)}\n${markdown}\n${text.slice(to)}`);
}

export function writeJson(result: BenchResult, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
}
