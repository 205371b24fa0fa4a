// Configuration: defaults, parsing, and that every bad value stops the real
// process with one line naming the variable.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../src/config.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

describe('loadConfig', () => {
  it('has the defaults of the runtime contract', () => {
    const config = loadConfig({});
    assert.equal(config.port, 8000);
    assert.equal(config.metricsPort, 9100);
    assert.equal(config.wsPath, '/echo');
    assert.deepEqual(config.allowedOrigins, []);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.kubernetes, 'auto');
    assert.ok(Object.isFrozen(config));
  });

  it('parses every variable', () => {
    const config = loadConfig({
      PORT: '8080',
      METRICS_PORT: '9200',
      WS_PATH: '/ws/v1',
      MAX_CONNECTIONS: '123',
      MAX_PAYLOAD_BYTES: '4096',
      ALLOWED_ORIGINS: 'https://a.example, http://localhost:3000',
      HEARTBEAT_INTERVAL_SECONDS: '0',
      DRAIN_WINDOW_SECONDS: '7.5',
      DRAIN_CLOSE_TIMEOUT_SECONDS: '2',
      LOG_LEVEL: 'DEBUG',
      POD_NAME: 'ws-echo-abc',
      POD_NAMESPACE: 'apps',
      KUBERNETES_INTEGRATION: 'off',
    });
    assert.equal(config.port, 8080);
    assert.equal(config.metricsPort, 9200);
    assert.equal(config.wsPath, '/ws/v1');
    assert.equal(config.maxConnections, 123);
    assert.equal(config.maxPayloadBytes, 4096);
    assert.deepEqual(config.allowedOrigins, ['https://a.example', 'http://localhost:3000']);
    assert.equal(config.heartbeatIntervalSeconds, 0, '0 turns the heartbeat off');
    assert.equal(config.drainWindowSeconds, 7.5);
    assert.equal(config.drainCloseTimeoutSeconds, 2);
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.podName, 'ws-echo-abc');
    assert.equal(config.podNamespace, 'apps');
    assert.equal(config.kubernetes, 'off');
  });

  it('treats an empty variable as unset', () => {
    assert.equal(loadConfig({ PORT: '' }).port, 8000);
  });

  it('reports every bad variable at once', () => {
    assert.throws(
      () => loadConfig({ PORT: 'http', MAX_CONNECTIONS: '0' }),
      (err: unknown) => err instanceof ConfigError && err.problems.length === 2,
    );
  });

  it('refuses the same port for metrics and the public side', () => {
    assert.throws(() => loadConfig({ PORT: '9000', METRICS_PORT: '9000' }), /METRICS_PORT="9000" is invalid: must differ from PORT/);
  });
});

// Each case: the variable, a bad value, and words the message must contain.
const BAD_VALUES: [string, string, RegExp][] = [
  ['PORT', 'eighty', /whole number from 0 to 65535/],
  ['PORT', '70000', /whole number from 0 to 65535/],
  ['METRICS_PORT', '-1', /whole number from 0 to 65535/],
  ['WS_PATH', 'echo', /starting with "\/"/],
  ['WS_PATH', '/healthz', /must not be one of/],
  ['WS_PATH', '/echo?x=1', /without query/],
  ['MAX_CONNECTIONS', '0', /whole number from 1 to/],
  ['MAX_CONNECTIONS', '1e4', /whole number/],
  ['MAX_PAYLOAD_BYTES', '64KB', /whole number from 1 to/],
  ['ALLOWED_ORIGINS', 'example.com', /not an origin/],
  ['ALLOWED_ORIGINS', 'https://a.example/path', /not an origin/],
  ['HEARTBEAT_INTERVAL_SECONDS', '30s', /seconds from 0.1 to 3600, or 0 to turn the heartbeat off/],
  ['DRAIN_WINDOW_SECONDS', '-5', /seconds from 0 to 3600/],
  ['DRAIN_CLOSE_TIMEOUT_SECONDS', '0', /seconds from 0.1 to 600/],
  ['HTTP_HEADERS_TIMEOUT_SECONDS', 'never', /seconds from 0.1 to 600/],
  ['BACKPRESSURE_BYTES', '10', /whole number from 16384 to/],
  ['LOG_LEVEL', 'verbose', /one of fatal, error, warn, info, debug, trace, silent/],
  ['KUBERNETES_INTEGRATION', 'maybe', /one of auto, on, off/],
];

describe('the process with a bad configuration', () => {
  for (const [name, value, allowed] of BAD_VALUES) {
    it(`exits non-zero naming ${name} when it is ${JSON.stringify(value)}`, async () => {
      const child = spawn(process.execPath, [MAIN], {
        env: { PATH: process.env.PATH, PORT: '0', METRICS_PORT: '0', [name]: value },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 78, `exit code (stdout: ${stdout})`);
      const lines = stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line: ${stderr}`);
      assert.ok(lines[0]!.includes(`${name}=${JSON.stringify(value)}`), `names the variable and value: ${stderr}`);
      assert.match(lines[0]!, allowed);
    });
  }
});
