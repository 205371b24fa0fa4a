// Metrics: the hot path counts in plain numbers on `Counters`; prom-client
// reads them only when Prometheus scrapes, so a message costs a few additions
// and no label lookup. Served on METRICS_PORT, never on the public port.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** Why an upgrade was refused; the label values of websocket_upgrades_rejected_total. */
export const REJECT_REASONS = [
  'path', // not WS_PATH: 404
  'origin', // Origin not in ALLOWED_ORIGINS: 403
  'max_connections', // MAX_CONNECTIONS reached: 503
  'draining', // pod is shutting down: 503 + Retry-After
  'invalid_handshake', // bad Sec-WebSocket-Key, version, method...: 400/405
  'rebalancing', // above its fair share after a scale-up: 503 + Retry-After
  'memory', // clients hold more than the soft watermark of the memory budget: 503 + Retry-After
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Why the server closed a connection on a protocol error; websocket_protocol_errors_total. */
export const PROTOCOL_ERRORS = ['message_too_big', 'invalid_utf8', 'invalid_frame', 'too_many_parts'] as const;
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
  /** Kubernetes API requests by `${call} ${result}`. */
  readonly kubeApi = new Map<string, number>();

  countClose(code: number): void {
    this.closes.set(code, (this.closes.get(code) ?? 0) + 1);
  }

  /** Counts one call; `calls` 0 declares the series, so that Prometheus sees the first real one as an increase. */
  countKubeApi(call: string, result: string, calls = 1): void {
    const key = `${call} ${result}`;
    this.kubeApi.set(key, (this.kubeApi.get(key) ?? 0) + calls);
  }
}

function zeroes<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

/** Values only known by asking the open connections, read at scrape time. */
export interface ConnectionGauges {
  /** Sum of bytes queued for clients that have not read them yet. */
  bufferedBytes(): number;
  /** Connections whose reading is paused by backpressure right now. */
  pausedConnections(): number;
}

/** The drain's numbers (drain.ts DrainProgress). */
export interface DrainStatus {
  readonly states: readonly string[];
  readonly state: string;
  readonly connections: number;
  readonly closeFramesSent: number;
  readonly closedGracefully: number;
  readonly terminated: number;
}

/** The rebalancer's numbers (rebalance.ts RebalanceStatus). */
export interface RebalanceStatus {
  readonly sources: readonly string[];
  readonly source: string;
  readonly share: number;
  readonly shedding: boolean;
  readonly shed: number;
}

/** The overload guard's numbers (overload.ts OverloadStatus). */
export interface OverloadStatus {
  readonly levels: readonly string[];
  readonly level: string;
  readonly budgetBytes: number;
  readonly outboundBytes: number;
  readonly inboundBytes: number;
  readonly kernelBytes: number;
  readonly closes: Readonly<Record<string, number>>;
}

/** Everything the registry reads at scrape time. */
export interface MetricSources {
  readonly counters: Counters;
  readonly connections: ConnectionGauges;
  readonly maxConnections: number;
  readonly drain: DrainStatus;
  readonly rebalance: RebalanceStatus;
  readonly overload: OverloadStatus;
  /** The container's memory limit; 0 when none was found. */
  readonly memoryLimitBytes: number;
}

/**
 * Builds the registry. Each metric's collect() copies plain numbers into
 * prom-client at scrape time; counters are reset and re-set because the
 * source of truth is `Counters`, not prom-client.
 */
export function createRegistry({ counters, connections, maxConnections, drain, rebalance, overload, memoryLimitBytes }: MetricSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  /** A metric whose samples are read at scrape time: label values → value. */
  type Read = () => Iterable<readonly [Record<string, string>, number]>;
  const gauge = (name: string, help: string, labelNames: string[], read: Read): void => {
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        for (const [labels, value] of read()) this.set(labels, value);
      },
    });
  };
  const counter = (name: string, help: string, labelNames: string[], read: Read): void => {
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.inc(labels, value);
      },
    });
  };
  const single =
    (value: () => number): Read =>
    () => [[{}, value()]];
  const by =
    (label: string, values: () => Record<string, number>): Read =>
    () =>
      Object.entries(values()).map(([key, value]) => [{ [label]: key }, value] as const);
  const oneOf = (label: string, all: readonly string[], current: () => string): Read =>
    by(label, () => Object.fromEntries(all.map((v) => [v, v === current() ? 1 : 0])));

  gauge(
    'websocket_connections_active',
    'Open WebSocket connections on this process (the autoscaling signal)',
    [],
    single(() => counters.connectionsActive),
  );
  gauge(
    'websocket_connections_max',
    'MAX_CONNECTIONS: upgrades past this get HTTP 503',
    [],
    single(() => maxConnections),
  );
  counter(
    'websocket_upgrades_accepted_total',
    'WebSocket upgrades answered with 101',
    [],
    single(() => counters.upgradesAccepted),
  );
  counter(
    'websocket_upgrades_rejected_total',
    'WebSocket upgrades refused, by reason',
    ['reason'],
    by('reason', () => counters.upgradesRejected),
  );
  counter(
    'websocket_messages_total',
    'WebSocket data messages, by direction (in: received, out: echoed)',
    ['direction'],
    by('direction', () => ({ in: counters.messagesIn, out: counters.messagesOut })),
  );
  counter(
    'websocket_bytes_total',
    'WebSocket payload bytes, by direction',
    ['direction'],
    by('direction', () => ({ in: counters.bytesIn, out: counters.bytesOut })),
  );
  counter(
    'websocket_closes_total',
    'Closed WebSocket connections, by close code (1006: no close frame)',
    ['code'],
    by('code', () => Object.fromEntries(counters.closes)),
  );
  counter(
    'websocket_protocol_errors_total',
    'Connections closed by the server for a protocol error (1009, 1007, 1002, 1008 for a message in too many parts)',
    ['reason'],
    by('reason', () => counters.protocolErrors),
  );
  counter(
    'websocket_http_errors_total',
    'Malformed or too slow HTTP requests refused before routing',
    ['reason'],
    by('reason', () => counters.httpErrors),
  );
  counter(
    'websocket_heartbeat_terminations_total',
    'Connections terminated because the peer missed a pong',
    [],
    single(() => counters.heartbeatTerminations),
  );
  counter(
    'websocket_backpressure_pauses_total',
    'Times reading from a client was paused because it did not read its echoes',
    [],
    single(() => counters.backpressurePauses),
  );
  gauge(
    'websocket_backpressure_paused_connections',
    'Connections whose reading is paused by backpressure now',
    [],
    single(() => connections.pausedConnections()),
  );
  gauge(
    'websocket_buffered_bytes',
    'Bytes queued for clients that have not read them yet, summed over connections',
    [],
    single(() => connections.bufferedBytes()),
  );
  gauge(
    'websocket_memory_limit_bytes',
    "The container's memory limit (MEMORY_LIMIT_BYTES or the cgroup's); 0 when none was found",
    [],
    single(() => memoryLimitBytes),
  );
  gauge(
    'websocket_memory_budget_bytes',
    'Bytes clients may make this process hold before it refuses upgrades (80 %) and closes the largest holders (100 %); 0: no budget',
    [],
    single(() => overload.budgetBytes),
  );
  gauge(
    'websocket_memory_held_bytes',
    'Bytes clients make this process hold, by kind: outbound (echoes queued), inbound (messages begun, not finished), kernel (socket buffers charged to the container)',
    ['kind'],
    by('kind', () => ({ outbound: overload.outboundBytes, inbound: overload.inboundBytes, kernel: overload.kernelBytes })),
  );
  gauge(
    'websocket_memory_overload_state',
    'Overload state: 1 for the current one (normal; soft: upgrades refused, allowances shrunk; hard: closing the largest holders)',
    ['state'],
    oneOf('state', overload.levels, () => overload.level),
  );
  counter(
    'websocket_overload_closes_total',
    'Connections the overload guard closed, by reason: memory (1013, largest holders at the budget), message_timeout (1008, a message not whole in time)',
    ['reason'],
    by('reason', () => overload.closes),
  );
  counter(
    'websocket_accept_errors_total',
    'Errors accepting TCP connections (e.g. EMFILE: out of file descriptors)',
    [],
    single(() => counters.acceptErrors),
  );
  gauge(
    'websocket_drain_state',
    'Drain state machine: 1 for the current state (serving, draining, closing, exited)',
    ['state'],
    oneOf('state', drain.states, () => drain.state),
  );
  gauge(
    'websocket_drain_connections',
    'Connections open when the drain began',
    [],
    single(() => drain.connections),
  );
  counter(
    'websocket_drain_close_frames_sent_total',
    'Close frames with 1012 (service restart) sent by the drain',
    [],
    single(() => drain.closeFramesSent),
  );
  counter(
    'websocket_drain_connections_closed_total',
    'Connections closed by the drain: graceful (close handshake done) or terminated (deadline passed)',
    ['how'],
    by('how', () => ({ graceful: drain.closedGracefully, terminated: drain.terminated })),
  );
  gauge(
    'websocket_rebalance_source',
    "1 for where the rebalancer's fair share comes from: fleet (mean of the Deployment's pods), target (REBALANCE_TARGET_CONNECTIONS), none",
    ['source'],
    oneOf('source', rebalance.sources, () => rebalance.source),
  );
  gauge(
    'websocket_rebalance_share',
    'Fair share of connections for this pod (0 when unknown)',
    [],
    single(() => rebalance.share),
  );
  gauge(
    'websocket_rebalance_excess',
    'Connections above the fair share (0 when at or below it, or when the share is unknown)',
    [],
    single(() => (rebalance.share > 0 ? Math.max(0, counters.connectionsActive - rebalance.share) : 0)),
  );
  gauge(
    'websocket_rebalance_shedding',
    '1 while this pod sheds connections and refuses upgrades to move load to emptier pods',
    [],
    single(() => (rebalance.shedding ? 1 : 0)),
  );
  counter(
    'websocket_rebalance_shed_total',
    'Connections closed (1013) to move them to emptier pods',
    [],
    single(() => rebalance.shed),
  );
  counter(
    'websocket_kubernetes_api_requests_total',
    'Kubernetes API requests (events, pod-deletion-cost patches, fleet lists) by result',
    ['call', 'result'],
    () =>
      [...counters.kubeApi].map(([key, value]) => {
        const [call = '', result = ''] = key.split(' ');
        return [{ call, result }, value] as const;
      }),
  );
  return registry;
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
