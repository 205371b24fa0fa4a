// HTTP and TCP on loopback: the one GET helper every test and tool uses, a
// free port, and raw exchanges for bytes no well-behaved client would send.
import { once } from 'node:events';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect as tcpConnect, createServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * GET http://127.0.0.1:port/path. Rejects when the connection fails or no
 * answer comes within `timeoutMs`; callers that poll treat that as "not yet".
 */
export function httpGet(
  port: number,
  path: string,
  { headers = {}, timeoutMs = 5000 }: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on port ${port}: no answer within ${timeoutMs} ms`)));
    req.end();
  });
}

/** The status of GET path, or 0 when nothing answers (a probe's view). */
export async function httpStatus(port: number, path: string, timeoutMs = 2000): Promise<number> {
  return httpGet(port, path, { timeoutMs }).then(
    (answer) => answer.status,
    () => 0,
  );
}

/** A port nothing listens on right now (the kernel's choice). */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

export interface RawExchange {
  /** Everything the server sent, in order. */
  readonly received: Buffer;
  /** True if the socket closed before the timeout. */
  readonly closed: boolean;
  /** The error the socket reported, if any (ECONNRESET when the server resets). */
  readonly error: string | undefined;
  readonly ms: number;
}

/**
 * Opens a TCP connection, writes `chunks` (with `waitForHead`, the first
 * chunk, then the rest once a response head has arrived), half-closes if
 * `end`, and collects everything the server sends until it closes or
 * `timeoutMs` passes.
 */
export async function exchange(
  port: number,
  chunks: readonly (Buffer | string)[],
  { end = true, timeoutMs = 10_000, waitForHead = false }: { end?: boolean; timeoutMs?: number; waitForHead?: boolean } = {},
): Promise<RawExchange> {
  const started = Date.now();
  const socket: Socket = tcpConnect(port, '127.0.0.1');
  const received: Buffer[] = [];
  let error: string | undefined;
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  await Promise.race([once(socket, 'connect'), closed]);
  const [first, ...rest] = chunks;
  if (first !== undefined && socket.writable) socket.write(first);
  if (waitForHead) {
    const deadline = Date.now() + timeoutMs;
    while (!Buffer.concat(received).includes('\r\n\r\n') && !socket.destroyed && Date.now() < deadline) await sleep(1);
  }
  for (const chunk of rest) if (socket.writable) socket.write(chunk);
  if (end && socket.writable) socket.end();
  const didClose = await closed;
  if (!didClose) socket.destroy();
  return { received: Buffer.concat(received), closed: didClose, error, ms: Date.now() - started };
}

/** The status line, the head and the bytes after the response head. */
export function splitHead(received: Buffer): { status: string; head: string; body: Buffer } {
  const end = received.indexOf('\r\n\r\n');
  if (end === -1) return { status: received.toString('latin1').split('\r\n')[0] ?? '', head: received.toString('latin1'), body: Buffer.alloc(0) };
  const head = received.subarray(0, end).toString('latin1');
  return { status: head.split('\r\n')[0] ?? '', head, body: received.subarray(end + 4) };
}

export interface WaitFor200Options {
  readonly timeoutMs: number;
  /** More to say on a timeout, e.g. the process's logs. */
  readonly describeFailure?: () => string | Promise<string>;
  /** Why waiting is pointless (the process exited), or undefined to keep polling. */
  readonly gone?: () => string | undefined;
}

/**
 * Polls GET `path` until it answers 200, like a readiness probe; resolves
 * with the time (performance.now()) of that answer. Rejects at the timeout
 * with the last answer, or at once when `gone` says there is nothing to wait for.
 */
export async function waitFor200(
  port: number,
  path: string,
  { timeoutMs, describeFailure = () => '', gone = () => undefined }: WaitFor200Options,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const { status } = await httpGet(port, path, { timeoutMs: 2000 });
      if (status === 200) return performance.now();
      last = `HTTP ${status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    const reason = gone();
    if (reason !== undefined) throw new Error(`${path} on ${port}: ${reason}\n${await describeFailure()}`);
    if (performance.now() > deadline) throw new Error(`${path} on ${port} not 200 after ${timeoutMs} ms (last: ${last})\n${await describeFailure()}`);
    await sleep(20);
  }
}
