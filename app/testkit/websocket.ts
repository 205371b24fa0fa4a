// WebSocket clients for tests: a URL, an open that rejects with the HTTP
// status of a refused upgrade, a wait for the close, and the raw upgrade
// request and upgraded socket for tests that speak the protocol themselves.
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as tcpConnect, type Socket } from 'node:net';
import { WebSocket, type ClientOptions } from 'ws';

export function wsUrl(port: number, path = '/echo'): string {
  return `ws://127.0.0.1:${port}${path}`;
}

/** An upgrade the server answered with something other than 101. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
  ) {
    super(`upgrade refused with HTTP ${status}`);
  }
}

/** Opens a client and resolves once it is open; rejects with UpgradeRefused if the upgrade fails. */
export async function connect(port: number, options: ClientOptions = {}, path = '/echo'): Promise<WebSocket> {
  const ws = new WebSocket(wsUrl(port, path), options);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new UpgradeRefused(res.statusCode ?? 0, res.headers)));
  });
  return ws;
}

/** Resolves with the close code and reason the client saw; rejects if it stays open past `timeoutMs`. */
export async function closed(ws: WebSocket, timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('socket already closed; listen before it closes');
  const [code, reason] = (await once(ws, 'close', { signal: AbortSignal.timeout(timeoutMs) })) as [number, Buffer];
  return { code, reason: reason.toString() };
}

/** The sample key of RFC 6455 §1.3; any 16 bytes in base64 will do. */
export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

export interface UpgradeRequestOptions {
  readonly method?: string;
  readonly path?: string;
  /** Each header below: null leaves it out. */
  readonly host?: string | null;
  readonly upgrade?: string | null;
  readonly key?: string | null;
  readonly version?: string | null;
  /** Extra header lines after those, e.g. { Origin: 'https://evil.example' }. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * The bytes of an HTTP/1.1 upgrade request, for raw-socket tests: a valid
 * one by default, or broken in the ways the options say.
 */
export function upgradeRequest({
  method = 'GET',
  path = '/echo',
  host = '127.0.0.1',
  upgrade = 'websocket',
  key = SAMPLE_KEY,
  version = '13',
  headers = {},
}: UpgradeRequestOptions = {}): string {
  const lines = [`${method} ${path} HTTP/1.1`];
  if (host !== null) lines.push(`Host: ${host}`);
  if (upgrade !== null) lines.push(`Upgrade: ${upgrade}`, 'Connection: Upgrade');
  if (key !== null) lines.push(`Sec-WebSocket-Key: ${key}`);
  if (version !== null) lines.push(`Sec-WebSocket-Version: ${version}`);
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A raw TCP socket that has completed the upgrade (the 101 read and dropped), for tests that write frames by hand. */
export async function rawUpgraded(port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1');
  socket.on('error', () => {}); // a reset shows as 'close'; the tests look at that
  await once(socket, 'connect');
  socket.write(upgradeRequest());
  let head = Buffer.alloc(0);
  while (!head.includes('\r\n\r\n')) head = Buffer.concat([head, (await once(socket, 'data'))[0] as Buffer]);
  if (!/^HTTP\/1\.1 101 /.test(head.toString('latin1'))) throw new Error(`upgrade refused: ${head.toString('latin1').split('\r\n')[0]}`);
  return socket;
}
