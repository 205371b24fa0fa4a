// Shared test helpers: a real service on free ports, real WebSocket clients,
// and a scrape of the real /metrics endpoint.
import { once } from 'node:events';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, type ClientOptions } from 'ws';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startService, type Service } from '../src/service.js';
import { Replica } from '../../scripts/cluster/replica.js';

/** Starts the service in this process on free ports; `env` overrides the test defaults. */
export async function startTestService(env: Record<string, string> = {}): Promise<Service> {
  const config = loadConfig({ PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', POD_NAME: 'test-pod', ...env });
  return startService(config, createLogger(config.logLevel, config.podName));
}

export function wsUrl(port: number, path = '/echo'): string {
  return `ws://127.0.0.1:${port}${path}`;
}

/** Opens a client and resolves once it is open; rejects with the HTTP status if the upgrade fails. */
export async function connect(port: number, options: ClientOptions = {}, path = '/echo'): Promise<WebSocket> {
  const ws = new WebSocket(wsUrl(port, path), options);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new UpgradeRefused(res.statusCode ?? 0, res.headers)));
  });
  return ws;
}

export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string | string[] | undefined>,
  ) {
    super(`upgrade refused with HTTP ${status}`);
  }
}

/** Resolves with the close code and reason the client saw; rejects if it stays open past `timeoutMs`. */
export async function closed(ws: WebSocket, timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('socket already closed; listen before it closes');
  const [code, reason] = (await once(ws, 'close', { signal: AbortSignal.timeout(timeoutMs) })) as [number, Buffer];
  return { code, reason: reason.toString() };
}

/** Plain HTTP GET on loopback; returns status, headers and body. */
export async function httpGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const req = request({ host: '127.0.0.1', port, path, headers });
  req.end();
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() };
}

/** Reads one sample from the live /metrics endpoint, e.g. metric('websocket_closes_total', { code: '1009' }). */
export async function scrape(metricsPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { status, body } = await httpGet(metricsPort, '/metrics');
  if (status !== 200) throw new Error(`/metrics answered ${status}`);
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of body.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = (match[2] ?? '').split(',').filter(Boolean);
    if (wanted.every((w) => present.includes(w)) && present.length === wanted.length) return Number(match[3]);
  }
  throw new Error(`metric ${name}${JSON.stringify(labels)} not found`);
}

/** Polls `check` until it returns true or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The real entry point (dist/app/src/main.js) as a child process on free loopback ports. */
export type ChildService = Replica;

export async function spawnService(env: Record<string, string> = {}): Promise<ChildService> {
  return Replica.start({ name: env.POD_NAME ?? 'child', env });
}
