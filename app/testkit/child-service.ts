// The service as a child process: the real entry point (dist/app/src/main.js)
// on free loopback ports, like a pod without Kubernetes. Tests, the local
// cluster's replicas and the reliability suite all use this one type.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { httpGet, waitFor200 } from './http.js';
import { sampleOf } from './metrics-text.js';
import { serviceMain } from './paths.js';
import { isRunning, spawnOwned } from './processes.js';

const NAIVE_SHUTDOWN = fileURLToPath(new URL('./cluster/naive-shutdown.js', import.meta.url));

export interface ChildServiceOptions {
  /** POD_NAME: shows in X-Served-By, logs and metrics labels. */
  readonly name?: string;
  /** Service environment (DRAIN_*, MAX_CONNECTIONS, …) on top of the loopback defaults. */
  readonly env?: Readonly<Record<string, string>>;
  /** Exit at once on SIGTERM, like the recipe's Go echo server (README): the baseline that drops clients. */
  readonly naive?: boolean;
  /** Where the JSON log lines go besides `logs` (e.g. a file stream); default: kept in memory only. */
  readonly onLog?: (entry: Record<string, unknown>) => void;
  /** A command to run node under, e.g. `['prlimit', '--nofile=256:256']`. */
  readonly prefix?: readonly string[];
  /** The program to run (default ws-echo's main.js); it must log a JSON 'listening' line with port and metricsPort. */
  readonly entry?: string;
  /** Copy the child's stderr to ours (default true: a crash shows in the test output). */
  readonly echoStderr?: boolean;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Date.now() when the process exited. */
  readonly at: number;
}

export class ChildService {
  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly port: number,
    readonly metricsPort: number,
    readonly exited: Promise<Exit>,
    /** Every JSON log line it printed, parsed, as they arrive. */
    readonly logs: Record<string, unknown>[],
    /** What it wrote to stderr so far. */
    readonly stderr: () => string,
  ) {}

  /** Starts the process and resolves once it listens (not necessarily ready); rejects if it exits first. */
  static async start(options: ChildServiceOptions = {}): Promise<ChildService> {
    const name = options.name ?? options.env?.POD_NAME ?? 'child';
    const [command, ...args] = [
      ...(options.prefix ?? []),
      process.execPath,
      ...(options.naive ? ['--import', NAIVE_SHUTDOWN] : []),
      options.entry ?? serviceMain,
    ];
    const child = spawnOwned(command, args, {
      env: { PATH: process.env.PATH ?? '', PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1', POD_NAME: name, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (options.echoStderr ?? true) process.stderr.write(chunk);
    });
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
      child.once('error', reject);
      void exited.then(({ code }) => reject(new Error(`service ${name} exited with ${code} before listening: ${stderr}`)));
    });
    const entry = await listening;
    return new ChildService(name, child, entry.port as number, entry.metricsPort as number, exited, logs, () => stderr);
  }

  get running(): boolean {
    return isRunning(this.child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Polls /readyz until it answers 200, like a readiness probe. */
  async waitReady(timeoutMs = 10_000): Promise<void> {
    await waitFor200(this.port, '/readyz', {
      timeoutMs,
      describeFailure: () => `service ${this.name}, stderr: ${this.stderr()}`,
      gone: () => (this.running ? undefined : `service ${this.name} exited`),
    });
  }

  /** Sends a signal and returns at once (SIGTERM starts the drain; watch `logs` and `exited`). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Sends `signal` if it still runs (SIGTERM: drain, SIGKILL: gone now) and waits for the exit. */
  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<Exit> {
    this.signal(signal);
    return this.exited;
  }

  /** websocket_connections_active from its /metrics, or undefined if it does not answer. */
  async connections(): Promise<number | undefined> {
    const answer = await httpGet(this.metricsPort, '/metrics', { timeoutMs: 2000 }).catch(() => undefined);
    return answer && sampleOf(answer.body, 'websocket_connections_active');
  }
}
