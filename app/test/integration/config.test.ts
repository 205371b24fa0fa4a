// A bad configuration stops the real process before it listens: exit code 78
// (EX_CONFIG) and one line per bad variable on stderr, naming the variable,
// the value and what is allowed. (Which values are bad, for every variable:
// unit/config.test.ts.)
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { SETTINGS, type Parser, type SettingName } from '../../src/settings.js';
import { serviceMain } from '../../testkit/paths.js';
import { spawnOwned } from '../../testkit/processes.js';

async function start(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawnOwned(process.execPath, [serviceMain], {
    env: { PATH: process.env.PATH, PORT: '0', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr, stdout };
}

// One variable of each kind of parser.
const CASES: [SettingName, string][] = [
  ['MAX_CONNECTIONS', '0'],
  ['DRAIN_WINDOW_SECONDS', '-5'],
  ['REBALANCE_RATE', '2'],
  ['LOG_LEVEL', 'verbose'],
  ['ALLOWED_ORIGINS', 'example.com'],
];

describe('the process with a bad configuration', () => {
  for (const [name, value] of CASES) {
    it(`exits 78 with one line naming ${name}=${JSON.stringify(value)} and what is allowed`, async () => {
      const { code, stderr, stdout } = await start({ [name]: value });
      assert.equal(code, 78, `exit code (stdout: ${stdout})`);
      const allowed = (SETTINGS[name].parser as Parser<unknown>).allowed;
      assert.equal(stderr, `ws-echo: invalid configuration: ${name}=${JSON.stringify(value)} is invalid: must be ${allowed}\n`);
      assert.equal(stdout, '', 'nothing is logged before the configuration is valid');
    });
  }

  it('names every bad variable, one line each, in one run', async () => {
    const { code, stderr } = await start({ PORT: 'http', HEARTBEAT_INTERVAL_SECONDS: '30s' });
    assert.equal(code, 78);
    assert.deepEqual(
      stderr
        .trim()
        .split('\n')
        .map((line) => line.split('=')[0]),
      ['ws-echo: invalid configuration: PORT', 'ws-echo: invalid configuration: HEARTBEAT_INTERVAL_SECONDS'],
    );
  });
});
