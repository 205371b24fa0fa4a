// Entry point: read the configuration, connect to the cluster if there is
// one, start the service, and hand SIGTERM/SIGINT to the drain controller.
import { ContainerMemory } from './cgroup.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { connectToCluster } from './kube.js';
import { createLogger } from './logger.js';
import { planMemory } from './memory-budget.js';
import { Counters } from './metrics.js';
import { startService } from './service.js';

function readConfig(container: ContainerMemory): Config {
  try {
    const config = loadConfig(process.env);
    // The settings must also fit the memory limit; startService plans the same way.
    planMemory(config, container);
    return config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // One plain line per bad variable, on stderr, then a non-zero exit: this
    // is what `kubectl logs --previous` shows for a CrashLoopBackOff.
    for (const problem of err.problems) process.stderr.write(`ws-echo: invalid configuration: ${problem}\n`);
    process.exit(78); // EX_CONFIG (sysexits.h)
  }
}

const container = new ContainerMemory();
const config = readConfig(container);
const logger = createLogger(config.logLevel, config.podName);
const counters = new Counters();
const cluster = await connectToCluster(config, logger, counters);
const service = await startService(config, logger, { exit: (code) => process.exit(code), cluster, counters, container });
service.startBackground();
process.on('SIGTERM', () => service.drain.onSignal('SIGTERM'));
process.on('SIGINT', () => service.drain.onSignal('SIGINT'));
