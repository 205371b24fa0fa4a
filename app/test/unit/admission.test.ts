// Which upgrade requests become WebSockets, and what the others are told:
// admission.ts's rules in their order. The same answers over real sockets:
// integration/server.test.ts and integration/reliability/upgrades.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideUpgrade, type AdmissionPolicy, type Decision, type UpgradeRequest } from '../../src/admission.js';

const POLICY: AdmissionPolicy = { wsPath: '/echo', allowedOrigins: new Set(['https://app.example']), maxConnections: 100 };
const REQUEST: UpgradeRequest = { host: 'echo.example', path: '/echo', origin: undefined };
const SERVING = { accepting: true, rebalancing: false, memoryPressure: false, connections: 0 };

const decide = (request: Partial<UpgradeRequest>, state: Partial<typeof SERVING> = {}, policy: Partial<AdmissionPolicy> = {}): Decision =>
  decideUpgrade({ ...REQUEST, ...request }, { ...SERVING, ...state }, { ...POLICY, ...policy });
const outcome = (d: Decision): string => (d.admit ? 'admit' : `${d.status} ${d.reason}${d.retryLater ? ' retry-later' : ''}`);

describe('upgrade admission', () => {
  it('admits a well-formed upgrade on the WebSocket path while serving', () => {
    assert.equal(outcome(decide({})), 'admit');
    assert.equal(outcome(decide({ origin: 'https://APP.example' })), 'admit', 'origins compare in canonical form');
    assert.equal(outcome(decide({ origin: 'https://evil.example' }, {}, { allowedOrigins: new Set() })), 'admit', 'no list: any origin');
  });

  it('refuses each case with its status, reason and whether a retry may help', () => {
    assert.equal(outcome(decide({ host: undefined })), '400 invalid_handshake');
    assert.equal(outcome(decide({ path: '/other' })), '404 path');
    assert.equal(outcome(decide({}, { accepting: false })), '503 draining retry-later');
    assert.equal(outcome(decide({ origin: 'https://evil.example' })), '403 origin');
    assert.equal(outcome(decide({ origin: 'not an origin' })), '403 origin');
    assert.equal(outcome(decide({}, { memoryPressure: true })), '503 memory retry-later');
    assert.equal(outcome(decide({}, { rebalancing: true })), '503 rebalancing retry-later');
    assert.equal(outcome(decide({}, { connections: 100 })), '503 max_connections retry-later');
    assert.equal(outcome(decide({}, { connections: 99 })), 'admit');
  });

  it('applies the rules in order: malformed, misrouted, draining, foreign origin, short of memory, rebalancing, full', () => {
    const everything = { accepting: false, rebalancing: true, memoryPressure: true, connections: 1000 };
    assert.equal(outcome(decide({ host: undefined, path: '/other', origin: 'https://evil.example' }, everything)), '400 invalid_handshake');
    assert.equal(outcome(decide({ path: '/other', origin: 'https://evil.example' }, everything)), '404 path');
    assert.equal(outcome(decide({ origin: 'https://evil.example' }, everything)), '503 draining retry-later');
    assert.equal(outcome(decide({ origin: 'https://evil.example' }, { rebalancing: true, memoryPressure: true, connections: 1000 })), '403 origin');
    assert.equal(outcome(decide({}, { rebalancing: true, memoryPressure: true, connections: 1000 })), '503 memory retry-later');
    assert.equal(outcome(decide({}, { rebalancing: true, connections: 1000 })), '503 rebalancing retry-later');
  });

  it('says where to connect in the 404', () => {
    const d = decide({ path: '/' });
    assert.ok(!d.admit && d.message === 'no WebSocket endpoint here; connect to /echo');
  });
});
