// Entry point: read the configuration, connect to the cluster if there is
// one, start the service, and hand SIGTERM/SIGINT to the drain controller.
import { ConfigError, loadConfig, type Config } from './config.js';
import { connectToCluster } from './kube.js';
import { createLogger } from './logger.js';
import { Counters } from './metrics.js';
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
const counters = new Counters();
const cluster = await connectToCluster(config, logger, counters);
const service = await startService(config, logger, { exit: (code) => process.exit(code), cluster, counters });
service.startBackground();
process.on('SIGTERM', () => service.drain.onSignal('SIGTERM'));
process.on('SIGINT', () => service.drain.onSignal('SIGINT'));
