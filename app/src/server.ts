// The public port: routes plain HTTP (/healthz, /readyz, the demo page) and
// carries out admission.ts's decision for every upgrade request: a WebSocket,
// or an HTTP error.
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { decideUpgrade, RETRY_AFTER_SECONDS, type Admission, type AdmissionPolicy } from './admission.js';
import type { Config } from './config.js';
import { ConnectionRegistry, EchoSocket } from './connections.js';
import { demoPage, SERVED_BY_PARAM } from './demo.js';
import { guardAccepts } from './descriptors.js';
import { writeHttpError } from './http-error.js';
import type { Logger } from './logger.js';
import type { Counters, HttpError, RejectReason } from './metrics.js';

const RETRY_LATER = { 'Retry-After': String(RETRY_AFTER_SECONDS) } as const;

export interface PublicServer {
  readonly http: Server;
  readonly wss: WebSocketServer;
}

/**
 * Creates (does not start) the public HTTP server with its upgrade handling.
 * Accepted sockets are handed to `connections`.
 */
export function createPublicServer(config: Config, connections: ConnectionRegistry, admission: Admission, counters: Counters, logger: Logger): PublicServer {
  const log = logger.child({ module: 'server' });
  const servedBy = `X-Served-By: ${config.podName.replace(/[^\x21-\x7e]/g, '_')}`;
  const servedByMessage = `served-by ${config.podName}`;
  const page = demoPage(config.wsPath);

  const wss = new WebSocketServer({
    noServer: true,
    WebSocket: EchoSocket,
    maxPayload: config.maxPayloadBytes,
    maxFragments: config.maxMessageFragments,
    maxBufferedChunks: maxBufferedChunks(config.maxPayloadBytes),
    // Compression costs CPU and memory per connection (zlib contexts) for an
    // echo service whose payloads the client chose; leave it off.
    perMessageDeflate: false,
    clientTracking: false,
  });
  const reject = (socket: Duplex, reason: RejectReason, status: number, message: string, headers?: Record<string, string>): void => {
    counters.upgradesRejected[reason]++;
    log.debug({ reason, status }, 'upgrade rejected');
    writeHttpError(socket, status, message, headers);
  };

  wss.on('headers', (headers) => headers.push(servedBy));
  // Handshakes ws itself finds invalid (bad key, version, method): count them, then answer as ws would.
  wss.on('wsClientError', (err, socket) => {
    const status = /method/i.test(err.message) ? 405 : 400;
    // RFC 6455 §4.4: a server that does not speak the requested version says which one it does.
    const extra = /version/i.test(err.message) ? { 'Sec-WebSocket-Version': '13' } : undefined;
    reject(socket, 'invalid_handshake', status, err.message, extra);
  });

  const policy: AdmissionPolicy = { wsPath: config.wsPath, allowedOrigins: new Set(config.allowedOrigins), maxConnections: config.maxConnections };
  let full = false;
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const decision = decideUpgrade(
      { host: req.headers.host, path: pathOf(req.url), origin: req.headers.origin },
      { ...admission, connections: connections.size },
      policy,
    );
    // Say once when the pod fills up and once when it has room again, not per refused client.
    const nowFull = !decision.admit && decision.reason === 'max_connections';
    if (nowFull && !full) log.warn({ maxConnections: config.maxConnections }, 'connection limit reached, refusing upgrades with 503');
    if (decision.admit && full) log.info({ connections: connections.size }, 'below the connection limit again');
    if (nowFull || decision.admit) full = nowFull;
    if (!decision.admit) return reject(socket, decision.reason, decision.status, decision.message, decision.retryLater ? RETRY_LATER : undefined);
    const announce = wantsServedBy(req.url);
    wss.handleUpgrade(req, socket, head, (ws) => {
      connections.add(ws, socket);
      // Browsers cannot read the 101's X-Served-By header; the demo page asks for it as a first message instead.
      if (announce) ws.send(servedByMessage);
    });
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const path = pathOf(req.url);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const status = admission.accepting ? 200 : 503;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(admission.accepting ? 'ready\n' : 'draining\n');
    } else if (path === '/') {
      res
        .writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
          'x-content-type-options': 'nosniff',
        })
        .end(page);
    } else if (path === config.wsPath) {
      // RFC 7231 §6.5.15: tell a plain HTTP client which protocol to use.
      res
        .writeHead(426, { upgrade: 'websocket', connection: 'Upgrade', 'content-type': 'text/plain' })
        .end(`this is a WebSocket endpoint; connect with ws://<host>${config.wsPath}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };

  const headersTimeoutMs = Math.round(config.headersTimeoutSeconds * 1000);
  const http = createServer(
    {
      // A client that trickles its request head (slowloris) is cut off after
      // this; Node checks every connectionsCheckingInterval, so keep that short.
      headersTimeout: headersTimeoutMs,
      requestTimeout: Math.max(headersTimeoutMs, 30_000),
      connectionsCheckingInterval: Math.min(1000, headersTimeoutMs),
      keepAliveTimeout: 5000,
    },
    onRequest,
  );
  http.on('upgrade', onUpgrade);
  http.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    // The client hung up mid-request: nobody to answer, nothing to count.
    if (err.code === 'ECONNRESET') return void socket.destroy();
    const [reason, status] = httpErrorOf(err.code);
    counters.httpErrors[reason]++;
    log.debug({ reason, code: err.code }, 'malformed request');
    writeHttpError(socket, status, STATUS_CODES[status] ?? 'error');
  });
  guardAccepts(http, config.maxConnections, () => counters.acceptErrors++, log);
  return { http, wss };
}

/**
 * How many TCP reads ws may hold before it has parsed a frame: enough for the
 * largest message in reads of 256 bytes (any real network's segments are
 * larger), and no more, because each held read costs an object besides its
 * bytes: a client sending a frame a byte at a time would otherwise make ws
 * hold hundreds of thousands of them (its default is 262,144).
 */
export function maxBufferedChunks(maxPayloadBytes: number): number {
  return 64 + Math.ceil(maxPayloadBytes / 256);
}

function httpErrorOf(code: string | undefined): [HttpError, number] {
  if (code === 'HPE_HEADER_OVERFLOW') return ['headers_too_large', 431];
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return ['headers_timeout', 408];
  return ['bad_request', 400];
}

function wantsServedBy(url: string | undefined): boolean {
  const query = url?.indexOf('?') ?? -1;
  return query !== -1 && new URLSearchParams(url!.slice(query + 1)).get(SERVED_BY_PARAM) === '1';
}

function pathOf(url: string | undefined): string {
  const path = url ?? '/';
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}
