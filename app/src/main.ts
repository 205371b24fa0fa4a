// Entry point: read the configuration, start the service, handle signals.
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
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

const shutdown = (signal: string): void => {
  logger.info({ signal, connections: service.connections.size }, 'shutting down');
  service.admission.accepting = false;
  for (const ws of service.connections.snapshot()) ws.close(1001, 'server going away');
  void service.close().then(() => process.exit(0));
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
