// One service replica as a child process: the real entry point
// (dist/app/src/main.js) on free loopback ports, like a pod without Kubernetes.
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const MAIN = fileURLToPath(new URL('../../app/src/main.js', import.meta.url));
const NAIVE_SHUTDOWN = fileURLToPath(new URL('./naive-shutdown.js', import.meta.url));

export interface ReplicaOptions {
  /** POD_NAME: shows in X-Served-By, logs and metrics labels. */
  readonly name: string;
  /** Service environment (DRAIN_*, MAX_CONNECTIONS, …) on top of the loopback defaults. */
  readonly env?: Readonly<Record<string, string>>;
  /** Exit at once on SIGTERM, like the original Go server: the baseline that drops clients. */
  readonly naive?: boolean;
  /** Where the JSON log lines go besides `logs` (e.g. a file stream); default: kept in memory only. */
  readonly onLog?: (entry: Record<string, unknown>) => void;
  /** A command to run node under, e.g. `['prlimit', '--nofile=256:256']`. */
  readonly prefix?: readonly string[];
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Date.now() when the process exited. */
  readonly at: number;
}

export class Replica {
  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly port: number,
    readonly metricsPort: number,
    readonly exited: Promise<Exit>,
    /** Every JSON log line it printed, parsed, as they arrive. */
    readonly logs: Record<string, unknown>[],
    /** What it wrote to stderr so far (also passed through to ours). */
    readonly stderr: () => string,
  ) {}

  /** Starts the process and resolves once it listens (not necessarily ready). */
  static async start(options: ReplicaOptions): Promise<Replica> {
    const [command, ...args] = [...(options.prefix ?? []), process.execPath, ...(options.naive ? ['--import', NAIVE_SHUTDOWN] : []), MAIN];
    const child = spawn(command!, args, {
      env: { PATH: process.env.PATH ?? '', PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1', POD_NAME: options.name, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      process.stderr.write(chunk);
    });
    killOnExit(child);
    const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
    const logs: Record<string, unknown>[] = [];
    let buffered = '';
    const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        let newline: number;
        while ((newline = buffered.indexOf('\n')) !== -1) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          options.onLog?.(entry);
          if (entry.msg === 'listening') resolve(entry);
        }
      });
      void exited.then(({ code }) => reject(new Error(`replica ${options.name} exited with ${code} before listening: ${stderr}`)));
    });
    const entry = await listening;
    return new Replica(options.name, child, entry.port as number, entry.metricsPort as number, exited, logs, () => stderr);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Polls /readyz until it answers 200, like a readiness probe. */
  async waitReady(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await httpStatus(this.port, '/readyz')) !== 200) {
      if (Date.now() > deadline) throw new Error(`replica ${this.name} not ready after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  terminate(): void {
    this.child.kill('SIGTERM');
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  /** websocket_connections_active from its /metrics, or undefined if it does not answer. */
  async connections(): Promise<number | undefined> {
    const body = await httpBody(this.metricsPort, '/metrics').catch(() => undefined);
    const match = body && /^websocket_connections_active (\S+)$/m.exec(body);
    return match ? Number(match[1]) : undefined;
  }
}

// Children still running when this process exits (a crash, Ctrl-C) are
// killed with it, so no replica, nginx or Prometheus outlives a run.
const children = new Set<ChildProcess>();
let exitHookInstalled = false;

export function killOnExit(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const running of children) running.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => process.exit(130));
  }
}

/** Status of GET 127.0.0.1:port/path, 0 if the connection fails. */
export function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export function httpBody(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}
