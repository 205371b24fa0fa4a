// Entry point: read the configuration, start the service, connect to the
// cluster if there is one, and hand SIGTERM/SIGINT to the drain controller.
import { ConfigError, loadConfig, type Config } from './config.js';
import { DrainController } from './drain.js';
import { createClusterIntegration } from './kube.js';
import { createLogger } from './logger.js';
import { Rebalancer } from './rebalance.js';
import { startService } from './service.js';

function readConfig(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // One plain line per bad variable, on stderr, then a non-zero exit: this
    // is what `kubectl logs --previous` shows for a CrashLoopBackOff.
    for (const problem of err.problems) process.stderr.write(`ws-echo: invalid configuration: ${problem}\n`);
    process.exit(78); // EX_CONFIG (sysexits.h)
  }
}

const config = readConfig();
const logger = createLogger(config.logLevel, config.podName);
const service = await startService(config, logger);
const cluster = await createClusterIntegration(config, logger, service.counters);
cluster.startDeletionCost(() => service.connections.size);

const rebalancer = new Rebalancer(service, cluster);
rebalancer.start();

const drain = new DrainController(service, cluster, { exit: (code) => process.exit(code), rebalancer });
process.on('SIGTERM', () => drain.onSignal('SIGTERM'));
process.on('SIGINT', () => drain.onSignal('SIGINT'));
