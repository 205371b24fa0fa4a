// Configuration, derived from the settings table: for every variable, good
// values (each bound included) reach the Config, and bad ones (just past each
// bound, or not a value of the kind) are refused with a line naming the
// variable, the value and what is allowed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, type Config } from '../../src/config.js';
import { SETTINGS, type Parser, type SettingName } from '../../src/settings.js';
import { casesOf } from '../../testkit/setting-cases.js';

/** Paths where two configs differ, e.g. ['rebalance.rate']. */
function differences(a: unknown, b: unknown, path = ''): string[] {
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => differences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

function valueAt(config: Config, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], config);
}

const defaults = loadConfig({});

describe('loadConfig, for every setting of the table', () => {
  for (const [name, setting] of Object.entries(SETTINGS) as [SettingName, (typeof SETTINGS)[SettingName]][]) {
    const parser = setting.parser as Parser<unknown>;
    const { good, bad } = casesOf(name);

    it(`${name}: accepts ${good.map((g) => JSON.stringify(g)).join(', ')} and puts the value in the config`, () => {
      for (const text of good) {
        const parsed = parser.parse(text);
        assert.notEqual(parsed, undefined, `${name}=${text} parses`);
        const config = loadConfig({ [name]: text });
        const changed = differences(defaults, config);
        // A value equal to the default changes nothing; any other lands in exactly one field.
        assert.ok(changed.length <= 1, `${name}=${text} changed ${changed.join(', ')}`);
        if (changed.length === 1 && typeof valueAt(config, changed[0]!) !== 'boolean') assert.deepEqual(valueAt(config, changed[0]!), parsed);
      }
    });

    if (bad.length > 0) {
      it(`${name}: refuses ${bad.map((b) => JSON.stringify(b)).join(', ')}, naming the variable, the value and what is allowed`, () => {
        for (const text of bad) {
          assert.throws(
            () => loadConfig({ [name]: text }),
            (err: unknown) =>
              err instanceof ConfigError &&
              err.problems.length === 1 &&
              err.problems[0] === `${name}=${JSON.stringify(text)} is invalid: must be ${parser.allowed}`,
            `${name}=${JSON.stringify(text)}`,
          );
        }
      });
    }
  }

  it('reaches every setting: set to a value other than its default, each one changes the config', () => {
    const untouched = (Object.keys(SETTINGS) as SettingName[]).filter((name) => {
      const parser = SETTINGS[name].parser as Parser<unknown>;
      const other = casesOf(name).good.find((text) => JSON.stringify(parser.parse(text)) !== JSON.stringify(SETTINGS[name].default));
      return other === undefined || differences(defaults, loadConfig({ [name]: other })).length !== 1;
    });
    assert.deepEqual(untouched, []);
  });
});

describe('loadConfig', () => {
  it('has the defaults of the table', () => {
    assert.equal(defaults.port, 8000);
    assert.equal(defaults.metricsPort, 9100);
    assert.equal(defaults.wsPath, '/echo');
    assert.deepEqual(defaults.allowedOrigins, []);
    assert.equal(defaults.logLevel, 'info');
    assert.equal(defaults.kubernetes, 'auto');
    assert.equal(defaults.rebalance.enabled, true);
    assert.ok(Object.isFrozen(defaults));
  });

  it('treats an empty or blank variable as unset', () => {
    assert.equal(loadConfig({ PORT: '' }).port, 8000);
    assert.equal(loadConfig({ MAX_CONNECTIONS: '  ' }).maxConnections, 10_000);
  });

  it('reads KUBERNETES_SERVICE_HOST, which the kubelet sets, to detect a cluster', () => {
    assert.equal(loadConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }).kubernetesServiceHost, '10.0.0.1');
  });

  it('reports every bad variable at once', () => {
    assert.throws(
      () => loadConfig({ PORT: 'http', MAX_CONNECTIONS: '0', LOG_LEVEL: 'loud' }),
      (err: unknown) => err instanceof ConfigError && err.problems.length === 3,
    );
  });

  it('refuses the same port for metrics and the public side', () => {
    assert.throws(() => loadConfig({ PORT: '9000', METRICS_PORT: '9000' }), /METRICS_PORT="9000" is invalid: must differ from PORT/);
    assert.equal(loadConfig({ PORT: '0', METRICS_PORT: '0' }).port, 0, 'two free ports are two different ports');
  });
});
