// Metrics: the hot path counts in plain numbers on `Counters`; prom-client
// reads them only when Prometheus scrapes, so a message costs a few additions
// and no label lookup. Served on METRICS_PORT, never on the public port.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { DRAIN_STATES, type DrainState } from './drain.js';

/** Where the rebalancer's fair share comes from: the fleet's mean, the configured target, or nowhere (off). */
export const REBALANCE_SOURCES = ['fleet', 'target', 'none'] as const;
export type RebalanceSource = (typeof REBALANCE_SOURCES)[number];

/** Why an upgrade was refused; the label values of websocket_upgrades_rejected_total. */
export const REJECT_REASONS = [
  'path', // not WS_PATH: 404
  'origin', // Origin not in ALLOWED_ORIGINS: 403
  'max_connections', // MAX_CONNECTIONS reached: 503
  'draining', // pod is shutting down: 503 + Retry-After
  'invalid_handshake', // bad Sec-WebSocket-Key, version, method...: 400/405
  'rebalancing', // above its fair share after a scale-up: 503 + Retry-After
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Why the server closed a connection on a protocol error; websocket_protocol_errors_total. */
export const PROTOCOL_ERRORS = ['message_too_big', 'invalid_utf8', 'invalid_frame'] as const;
export type ProtocolError = (typeof PROTOCOL_ERRORS)[number];

/** Requests that failed before routing (Node's HTTP parser); websocket_http_errors_total. */
export const HTTP_ERRORS = ['bad_request', 'headers_timeout', 'headers_too_large'] as const;
export type HttpError = (typeof HTTP_ERRORS)[number];

/** Plain counters the service increments; read at scrape time. */
export class Counters {
  connectionsActive = 0;
  upgradesAccepted = 0;
  readonly upgradesRejected = zeroes(REJECT_REASONS);
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Close codes as seen on the 'close' event: the peer's code, or 1006 without a close frame. */
  readonly closes = new Map<number, number>();
  readonly protocolErrors = zeroes(PROTOCOL_ERRORS);
  readonly httpErrors = zeroes(HTTP_ERRORS);
  heartbeatTerminations = 0;
  backpressurePauses = 0;
  acceptErrors = 0;
  drainState: DrainState = 'serving';
  /** Connections open when the drain began. */
  drainConnections = 0;
  drainCloseFramesSent = 0;
  /** Sockets that finished the close handshake after our 1012, before the deadline. */
  drainClosedGracefully = 0;
  /** Sockets still open at the drain deadline, terminated without a handshake. */
  drainTerminated = 0;
  /** Rebalancer: where the fair share comes from, the share, and what was shed. */
  rebalanceSource: RebalanceSource = 'none';
  rebalanceShare = 0;
  rebalanceShedding = false;
  rebalanceShed = 0;
  /** Kubernetes API requests by `${call} ${result}`. */
  readonly kubeApi = new Map<string, number>();

  countClose(code: number): void {
    this.closes.set(code, (this.closes.get(code) ?? 0) + 1);
  }

  countKubeApi(call: string, result: string): void {
    const key = `${call} ${result}`;
    this.kubeApi.set(key, (this.kubeApi.get(key) ?? 0) + 1);
  }
}

function zeroes<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

/** Values only known by asking a live object, read at scrape time. */
export interface MetricSources {
  /** Sum of bytes queued for clients that have not read them yet. */
  bufferedBytes(): number;
  /** Connections whose reading is paused by backpressure right now. */
  pausedConnections(): number;
}

/**
 * Builds the registry. Each metric's collect() copies a plain number into
 * prom-client at scrape time; counters are reset and re-set because the
 * source of truth is `Counters`, not prom-client.
 */
export function createRegistry(counters: Counters, sources: MetricSources, maxConnections: number): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  new Gauge({
    name: 'websocket_connections_active',
    help: 'Open WebSocket connections on this process (the autoscaling signal)',
    registers,
    collect() {
      this.set(counters.connectionsActive);
    },
  });
  new Gauge({
    name: 'websocket_connections_max',
    help: 'MAX_CONNECTIONS: upgrades past this get HTTP 503',
    registers,
    collect() {
      this.set(maxConnections);
    },
  });
  new Counter({
    name: 'websocket_upgrades_accepted_total',
    help: 'WebSocket upgrades answered with 101',
    registers,
    collect() {
      setCounter(this, counters.upgradesAccepted);
    },
  });
  labelledCounter(registers, 'websocket_upgrades_rejected_total', 'WebSocket upgrades refused, by reason', 'reason', counters.upgradesRejected);
  new Counter({
    name: 'websocket_messages_total',
    help: 'WebSocket data messages, by direction (in: received, out: echoed)',
    labelNames: ['direction'],
    registers,
    collect() {
      this.reset();
      this.inc({ direction: 'in' }, counters.messagesIn);
      this.inc({ direction: 'out' }, counters.messagesOut);
    },
  });
  new Counter({
    name: 'websocket_bytes_total',
    help: 'WebSocket payload bytes, by direction',
    labelNames: ['direction'],
    registers,
    collect() {
      this.reset();
      this.inc({ direction: 'in' }, counters.bytesIn);
      this.inc({ direction: 'out' }, counters.bytesOut);
    },
  });
  new Counter({
    name: 'websocket_closes_total',
    help: 'Closed WebSocket connections, by close code (1006: no close frame)',
    labelNames: ['code'],
    registers,
    collect() {
      this.reset();
      for (const [code, count] of counters.closes) this.inc({ code: String(code) }, count);
    },
  });
  labelledCounter(registers, 'websocket_protocol_errors_total', 'Connections closed by the server for a protocol error (1009, 1007, 1002)', 'reason', counters.protocolErrors);
  labelledCounter(registers, 'websocket_http_errors_total', 'Malformed or too slow HTTP requests refused before routing', 'reason', counters.httpErrors);
  new Counter({
    name: 'websocket_heartbeat_terminations_total',
    help: 'Connections terminated because the peer missed a pong',
    registers,
    collect() {
      setCounter(this, counters.heartbeatTerminations);
    },
  });
  new Counter({
    name: 'websocket_backpressure_pauses_total',
    help: 'Times reading from a client was paused because it did not read its echoes',
    registers,
    collect() {
      setCounter(this, counters.backpressurePauses);
    },
  });
  new Gauge({
    name: 'websocket_backpressure_paused_connections',
    help: 'Connections whose reading is paused by backpressure now',
    registers,
    collect() {
      this.set(sources.pausedConnections());
    },
  });
  new Gauge({
    name: 'websocket_buffered_bytes',
    help: 'Bytes queued for clients that have not read them yet, summed over connections',
    registers,
    collect() {
      this.set(sources.bufferedBytes());
    },
  });
  new Counter({
    name: 'websocket_accept_errors_total',
    help: 'Errors accepting TCP connections (e.g. EMFILE: out of file descriptors)',
    registers,
    collect() {
      setCounter(this, counters.acceptErrors);
    },
  });
  new Gauge({
    name: 'websocket_drain_state',
    help: 'Drain state machine: 1 for the current state (serving, draining, closing, exited)',
    labelNames: ['state'],
    registers,
    collect() {
      for (const state of DRAIN_STATES) this.set({ state }, state === counters.drainState ? 1 : 0);
    },
  });
  new Gauge({
    name: 'websocket_drain_connections',
    help: 'Connections open when the drain began',
    registers,
    collect() {
      this.set(counters.drainConnections);
    },
  });
  new Counter({
    name: 'websocket_drain_close_frames_sent_total',
    help: 'Close frames with 1012 (service restart) sent by the drain',
    registers,
    collect() {
      setCounter(this, counters.drainCloseFramesSent);
    },
  });
  new Counter({
    name: 'websocket_drain_connections_closed_total',
    help: 'Connections closed by the drain: graceful (close handshake done) or terminated (deadline passed)',
    labelNames: ['how'],
    registers,
    collect() {
      this.reset();
      this.inc({ how: 'graceful' }, counters.drainClosedGracefully);
      this.inc({ how: 'terminated' }, counters.drainTerminated);
    },
  });
  new Gauge({
    name: 'websocket_rebalance_source',
    help: "1 for where the rebalancer's fair share comes from: fleet (mean of the Deployment's pods), target (REBALANCE_TARGET_CONNECTIONS), none",
    labelNames: ['source'],
    registers,
    collect() {
      for (const source of REBALANCE_SOURCES) this.set({ source }, source === counters.rebalanceSource ? 1 : 0);
    },
  });
  new Gauge({
    name: 'websocket_rebalance_share',
    help: 'Fair share of connections for this pod (0 when unknown)',
    registers,
    collect() {
      this.set(counters.rebalanceShare);
    },
  });
  new Gauge({
    name: 'websocket_rebalance_excess',
    help: 'Connections above the fair share (0 when at or below it, or when the share is unknown)',
    registers,
    collect() {
      this.set(counters.rebalanceShare > 0 ? Math.max(0, counters.connectionsActive - counters.rebalanceShare) : 0);
    },
  });
  new Gauge({
    name: 'websocket_rebalance_shedding',
    help: '1 while this pod sheds connections and refuses upgrades to move load to emptier pods',
    registers,
    collect() {
      this.set(counters.rebalanceShedding ? 1 : 0);
    },
  });
  new Counter({
    name: 'websocket_rebalance_shed_total',
    help: 'Connections closed (1013) to move them to emptier pods',
    registers,
    collect() {
      setCounter(this, counters.rebalanceShed);
    },
  });
  new Counter({
    name: 'websocket_kubernetes_api_requests_total',
    help: 'Kubernetes API requests (events, pod-deletion-cost patches) by result',
    labelNames: ['call', 'result'],
    registers,
    collect() {
      this.reset();
      for (const [key, count] of counters.kubeApi) {
        const [call = '', result = ''] = key.split(' ');
        this.inc({ call, result }, count);
      }
    },
  });
  return registry;
}

function setCounter(counter: Counter, value: number): void {
  counter.reset();
  counter.inc(value);
}

function labelledCounter<K extends string>(registers: Registry[], name: string, help: string, label: string, values: Record<K, number>): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers,
    collect() {
      this.reset();
      for (const [key, count] of Object.entries<number>(values)) this.inc({ [label]: key }, count);
    },
  });
}

/** Serves GET /metrics from `registry` and nothing else. */
export function createMetricsServer(registry: Registry): Server {
  return createServer((req, res) => {
    if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${String(err)}\n`),
    );
  });
}
