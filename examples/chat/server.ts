// A small chat over plain `ws`, drained by ws-echo's graceful library. The
// app owns its server, its routes and its messages; the library adds the
// Kubernetes behaviour: readiness off and upgrades refused with 503 on
// SIGTERM, 1012 closes spread over DRAIN_WINDOW_SECONDS, exit 0, and, with
// the chart's variables, Events, pod-deletion-cost and rebalancing.
//
// Routes: ws /rooms/<name> joins a room (every text message is relayed to
// everyone in that room on this pod, the sender included), GET /healthz,
// GET /readyz, and /metrics on METRICS_PORT.
import { createServer } from 'node:http';
import { pino } from 'pino';
import { Gauge, Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import { attach } from 'ws-echo/graceful';

const port = Number(process.env.PORT ?? 8080);
const metricsPort = Number(process.env.METRICS_PORT ?? 9100);
const host = process.env.HOST;
const logger = pino({ base: { pod: process.env.POD_NAME } });

const rooms = new Map<string, Set<WebSocket>>();
const ROOM_PATH = /^\/rooms\/([A-Za-z0-9_-]{1,64})$/;

const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
const server = createServer((req, res) => {
  if (req.url === '/readyz') return graceful.readinessHandler(req, res);
  if (req.url === '/healthz') return void res.writeHead(200).end('ok\n');
  res.writeHead(404).end('not found\n');
});
server.on('upgrade', (req, socket, head) => {
  const room = ROOM_PATH.exec(req.url ?? '')?.[1];
  if (room === undefined) return void socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  wss.handleUpgrade(req, socket, head, (ws) => join(room, ws));
});

function join(room: string, ws: WebSocket): void {
  const members = rooms.get(room) ?? new Set<WebSocket>();
  rooms.set(room, members.add(ws));
  ws.on('message', (data, isBinary) => {
    for (const member of members) member.send(data, { binary: isBinary });
  });
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  });
}

// The library: settings from the chart's environment variables, SIGTERM handled, exit 0 at the end.
const graceful = await attach({ server, wss, env: process.env, handleSignals: true, logger });

// The one metric the chart's autoscaler and the local cluster read.
const registry = new Registry();
new Gauge({
  name: 'websocket_connections_active',
  help: 'open WebSocket connections',
  registers: [registry],
  collect() {
    this.set(graceful.connections);
  },
});
const metrics = createServer((_req, res) => {
  void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
});

server.listen(port, host, () => {
  metrics.listen(metricsPort, host, () => {
    const address = (s: typeof server): number => (s.address() as { port: number }).port;
    logger.info({ port: address(server), metricsPort: address(metrics) }, 'listening');
  });
});
// The drain closes `server` when it is over; the metrics port goes with the process.
graceful.on('finished', () => metrics.close());
