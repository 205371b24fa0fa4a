// The service in this process, on free loopback ports, and what tests read
// from it: samples of its /metrics and conditions polled until they hold.
import { setTimeout as sleep } from 'node:timers/promises';
import { ContainerMemory } from '../src/cgroup.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import type { Logger } from '../src/logger.js';
import { connectToCluster } from '../src/kube.js';
import { Counters } from '../src/metrics.js';
import { startService, type Service } from '../src/service.js';
import { httpGet } from './http.js';
import { sampleOf } from './metrics-text.js';

/** A cgroup directory that does not exist: no memory limit, no kernel socket bytes, whatever machine the tests run on. */
const NO_CGROUP = new ContainerMemory('/nonexistent/cgroup');

/**
 * Starts the service in this process on free ports, as main.ts does (the
 * Kubernetes integration as the env says); `env` overrides the test defaults.
 * The memory cgroup is `container` (default: none, so no budget unless
 * MEMORY_BUDGET_BYTES is set).
 * The drain's exit(code) calls land in `exits`, not process.exit; the
 * rebalancer and the deletion-cost reporter are not started (tests drive
 * them, or call startBackground).
 */
export async function startTestService(
  env: Record<string, string> = {},
  logger?: Logger,
  container: ContainerMemory = NO_CGROUP,
): Promise<Service & { readonly exits: number[] }> {
  const config = loadConfig({ PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', POD_NAME: 'test-pod', ...env });
  const log = logger ?? createLogger(config.logLevel, config.podName);
  const counters = new Counters();
  const cluster = await connectToCluster(config, log, counters);
  const exits: number[] = [];
  const service = await startService(config, log, { exit: (code) => exits.push(code), cluster, counters, container });
  return Object.assign(service, { exits });
}

/** Reads one sample from the live /metrics endpoint; throws when it is not there. */
export async function scrape(metricsPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { status, body } = await httpGet(metricsPort, '/metrics');
  if (status !== 200) throw new Error(`/metrics answered ${status}`);
  const value = sampleOf(body, name, labels);
  if (value === undefined) throw new Error(`metric ${name}${JSON.stringify(labels)} not found`);
  return value;
}

/** Polls `check` until it returns true or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
