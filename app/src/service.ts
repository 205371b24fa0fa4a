// The service assembled: the public server and its connections, the
// overload guard and its memory budget, the graceful library (graceful.ts:
// the drain, the rebalancer, the deletion-cost reports) attached to them as
// to any app, and the metrics, listening. main.ts runs it as a process
// (config, signals, exit); tests start it in-process.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Admission } from './admission.js';
import { ContainerMemory } from './cgroup.js';
import type { Config } from './config.js';
import { ConnectionRegistry, type EchoSocket } from './connections.js';
import type { DrainController } from './drain.js';
import { attach, type GracefulSettings } from './graceful.js';
import type { KubernetesApi } from './kube-api.js';
import type { Logger } from './logger.js';
import { planMemory, type MemoryPlan } from './memory-budget.js';
import { Counters, createMetricsServer, createRegistry } from './metrics.js';
import { OverloadGuard } from './overload.js';
import type { Rebalancer } from './rebalance.js';
import { createPublicServer } from './server.js';

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
  readonly drain: DrainController;
  readonly rebalancer: Rebalancer;
  readonly overload: OverloadGuard<EchoSocket>;
  readonly memory: MemoryPlan;
  /** The Kubernetes API when the integration is on. */
  readonly cluster: KubernetesApi | undefined;
  /** Starts the rebalancer's rounds and the deletion-cost reports (main.ts does; tests drive them themselves). */
  startBackground(): void;
  /**
   * Releases everything at once: terminates any socket still open and closes
   * both ports. The graceful path is the drain; this is for the end of it and
   * for tests.
   */
  close(): Promise<void>;
}

export interface ServiceDeps {
  /** What the drain calls when it is over: process.exit in main.ts, a recorder in tests. */
  readonly exit: (code: number) => void;
  /** The Kubernetes API (kube.ts connectToCluster), when the integration is on. */
  readonly cluster?: KubernetesApi | undefined;
  /** Counters shared with the cluster connection made before the service (its API calls are counted here). */
  readonly counters?: Counters;
  /** The container's memory cgroup (a fake one in tests). */
  readonly container?: ContainerMemory;
}

/**
 * Builds the service and listens on both ports. The rebalancer and the
 * deletion-cost reporter wait for `startBackground`; the drain waits for a
 * signal handed to `drain.onSignal`.
 */
export async function startService(config: Config, logger: Logger, deps: ServiceDeps): Promise<Service> {
  const container = deps.container ?? new ContainerMemory();
  // Throws a ConfigError when the settings cannot work within the memory limit.
  const memory = planMemory(config, container);
  const counters = deps.counters ?? new Counters();
  const admission: Admission = { accepting: true, rebalancing: false, memoryPressure: false };
  const connections = new ConnectionRegistry(config, counters, logger);
  const overload = new OverloadGuard({
    sockets: connections,
    admission,
    budgetBytes: memory.budgetBytes,
    messageTimeoutSeconds: config.messageTimeoutSeconds,
    backpressureBytes: config.backpressureBytes,
    allowance: connections.allowance,
    pause: (ws) => connections.pause(ws),
    kernelSocketBytes: () => container.kernelSocketBytes(),
    logger,
  });
  const cluster = deps.cluster;
  const { http, wss } = createPublicServer(config, connections, admission, counters, logger);
  // The library keeps `admission` up to date; the server reads it for /readyz and every upgrade.
  const graceful = await attach({
    ...gracefulSettings(config),
    wss,
    admission,
    cluster,
    apiCallCounter: counters,
    logger,
    exit: deps.exit,
    startBackground: false,
  });
  const { drainController: drain, rebalancer } = graceful;
  const registry = createRegistry({
    counters,
    connections,
    maxConnections: config.maxConnections,
    drain: drain.progress,
    rebalance: rebalancer.status,
    overload: overload.status,
    memoryLimitBytes: memory.limit?.bytes ?? 0,
  });
  const metricsHttp = createMetricsServer(registry);

  const port = await listen(http, config.port, config.host);
  const metricsPort = await listen(metricsHttp, config.metricsPort, config.host);
  logger.info(
    { port, metricsPort, wsPath: config.wsPath, maxConnections: config.maxConnections, heartbeatIntervalSeconds: config.heartbeatIntervalSeconds },
    'listening',
  );
  logger.info(
    {
      memoryLimitBytes: memory.limit?.bytes,
      memoryLimitSource: memory.limit?.source ?? 'none found',
      memoryBudgetBytes: memory.budgetBytes,
      memoryBudgetSource: memory.budgetSource,
      messageTimeoutSeconds: config.messageTimeoutSeconds,
      maxMessageFragments: config.maxMessageFragments,
    },
    memory.budgetBytes > 0
      ? 'memory budget: past 80 % of it upgrades are refused, at 100 % the connections holding the most are closed'
      : memory.budgetSource === 'off'
        ? 'memory budget off (MEMORY_BUDGET_BYTES=0)'
        : 'memory budget off: no memory limit found (set MEMORY_LIMIT_BYTES or MEMORY_BUDGET_BYTES, or run with a limit)',
  );
  overload.start();

  return {
    config,
    port,
    metricsPort,
    connections,
    admission,
    counters,
    registry,
    logger,
    drain,
    rebalancer,
    overload,
    memory,
    cluster,
    startBackground() {
      graceful.startBackground();
    },
    async close() {
      overload.stop();
      graceful.detach();
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

/** The library's settings as this service's configuration has them. */
function gracefulSettings(config: Config): GracefulSettings {
  const r = config.rebalance;
  return {
    drainWindowSeconds: config.drainWindowSeconds,
    drainCloseTimeoutSeconds: config.drainCloseTimeoutSeconds,
    podName: config.podName,
    podNamespace: config.podNamespace,
    podUid: config.podUid,
    kubernetesIntegration: config.kubernetes,
    kubeconfig: config.kubeconfig,
    podDeletionCostIntervalSeconds: config.podDeletionCostIntervalSeconds,
    rebalance: r.enabled,
    rebalancePodSelector: r.podSelector,
    rebalanceTargetConnections: r.targetConnections,
    rebalanceTolerance: r.tolerance,
    rebalanceRate: r.rate,
    rebalanceIntervalSeconds: r.intervalSeconds,
    rebalanceCooldownSeconds: r.cooldownSeconds,
  };
}
