// The service assembled: public server, connection registry and metrics,
// listening. main.ts runs it as a process; tests start it in-process.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Config } from './config.js';
import { ConnectionRegistry } from './connections.js';
import type { Logger } from './logger.js';
import { Counters, createMetricsServer, createRegistry } from './metrics.js';
import { createPublicServer, type Admission } from './server.js';

export interface Service {
  readonly config: Config;
  /** The bound public port (differs from config.port when that is 0). */
  readonly port: number;
  readonly metricsPort: number;
  readonly connections: ConnectionRegistry;
  readonly admission: Admission;
  readonly counters: Counters;
  readonly registry: Registry;
  readonly logger: Logger;
  /**
   * Releases everything at once: terminates any socket still open and closes
   * both ports. The graceful path is the drain; this is for the end of it and
   * for tests.
   */
  close(): Promise<void>;
}

export async function startService(config: Config, logger: Logger): Promise<Service> {
  const counters = new Counters();
  const admission: Admission = { accepting: true, rebalancing: false };
  const connections = new ConnectionRegistry(config, counters, logger);
  const registry = createRegistry(counters, connections, config.maxConnections);
  const { http } = createPublicServer(config, connections, admission, counters, logger);
  const metricsHttp = createMetricsServer(registry);

  const port = await listen(http, config.port, config.host);
  const metricsPort = await listen(metricsHttp, config.metricsPort, config.host);
  logger.info(
    { port, metricsPort, wsPath: config.wsPath, maxConnections: config.maxConnections, heartbeatIntervalSeconds: config.heartbeatIntervalSeconds },
    'listening',
  );

  return {
    config,
    port,
    metricsPort,
    connections,
    admission,
    counters,
    registry,
    logger,
    async close() {
      connections.stopHeartbeat();
      for (const ws of connections.snapshot()) ws.terminate();
      await Promise.all([closeServer(http), closeServer(metricsHttp)]);
    },
  };
}

async function listen(server: Server, port: number, host: string | undefined): Promise<number> {
  server.listen({ port, host });
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Stops accepting and resolves once every connection the server accepted has ended. */
async function closeServer(server: Server): Promise<void> {
  const closed = once(server, 'close');
  server.close();
  server.closeAllConnections();
  await closed;
}
