// The public port: probes, routing, upgrade admission (origin, connection
// limit) and HTTP timeouts, over real sockets.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { Service } from '../../src/service.js';
import { exchange, httpGet } from '../../testkit/http.js';
import { scrape, startTestService, waitFor } from '../../testkit/service.js';
import { closed, connect, UpgradeRefused, upgradeRequest } from '../../testkit/websocket.js';

describe('public HTTP endpoints', () => {
  let service: Service;
  before(async () => {
    service = await startTestService();
  });
  after(() => service.close());

  it('answers /healthz and /readyz with 200 while serving', async () => {
    assert.equal((await httpGet(service.port, '/healthz')).status, 200);
    assert.equal((await httpGet(service.port, '/readyz')).status, 200);
  });

  it('answers /readyz with 503 once the service stops accepting', async () => {
    service.admission.accepting = false;
    try {
      assert.equal((await httpGet(service.port, '/readyz')).status, 503);
      assert.equal((await httpGet(service.port, '/healthz')).status, 200, 'liveness is unaffected');
      const refused = await connect(service.port).catch((err: unknown) => err);
      assert.ok(refused instanceof UpgradeRefused);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers['retry-after'], '1');
    } finally {
      service.admission.accepting = true;
    }
  });

  it('never serves metrics on the public port, and serves them on METRICS_PORT', async () => {
    assert.equal((await httpGet(service.port, '/metrics')).status, 404);
    const metrics = await httpGet(service.metricsPort, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^# TYPE websocket_connections_active gauge$/m);
    assert.match(metrics.body, /^process_cpu_seconds_total /m, 'default process metrics are on');
  });

  it('answers a plain GET on the WebSocket path with 426 Upgrade Required', async () => {
    const res = await httpGet(service.port, '/echo');
    assert.equal(res.status, 426);
    assert.equal(res.headers.upgrade, 'websocket');
  });

  it('refuses an upgrade on another path with 404', async () => {
    const refused = await connect(service.port, {}, '/other').catch((err: unknown) => err);
    assert.ok(refused instanceof UpgradeRefused);
    assert.equal(refused.status, 404);
    assert.equal(await scrape(service.metricsPort, 'websocket_upgrades_rejected_total', { reason: 'path' }), 1);
  });

  it('names the replica in X-Served-By on the 101 response', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${service.port}/echo`);
    const [res] = (await once(ws, 'upgrade')) as [import('node:http').IncomingMessage];
    assert.equal(res.headers['x-served-by'], 'test-pod');
    ws.close();
  });

  it('serves the demo page at / with a CSP that allows only itself', async () => {
    const res = await httpGet(service.port, '/');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(res.body, /const WS_PATH = "\/echo";/);
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'.*connect-src 'self'/);
  });

  it('announces the replica as the first message only when asked with ?served-by=1', async () => {
    // Listen before the upgrade completes: the announcement can arrive with the 101.
    const asked = new WebSocket(`ws://127.0.0.1:${service.port}/echo?served-by=1`);
    const [first] = (await once(asked, 'message')) as [Buffer];
    assert.equal(first.toString(), 'served-by test-pod');
    asked.close();
    // Without the parameter the first message is the echo of ours: nothing is injected.
    const plain = await connect(service.port);
    plain.send('only echoes');
    const [echo] = (await once(plain, 'message')) as [Buffer];
    assert.equal(echo.toString(), 'only echoes');
    plain.close();
  });

  it('accepts a query string on the WebSocket path', async () => {
    const ws = await connect(service.port, {}, '/echo?client=42');
    ws.close();
  });

  it('refuses a handshake with a missing Sec-WebSocket-Key with 400 and keeps serving', async () => {
    const reply = await rawRequest(service.port, upgradeRequest({ key: null }));
    assert.match(reply, /^HTTP\/1\.1 400 /);
    assert.match(reply, /Sec-WebSocket-Key/);
    assert.equal(await scrape(service.metricsPort, 'websocket_upgrades_rejected_total', { reason: 'invalid_handshake' }), 1);
    const ws = await connect(service.port);
    ws.close();
  });

  it('refuses an unsupported WebSocket version with 400 and names the one it speaks', async () => {
    const reply = await rawRequest(service.port, upgradeRequest({ version: '99' }));
    assert.match(reply, /^HTTP\/1\.1 400 /);
    assert.match(reply, /Sec-WebSocket-Version: 13/i);
  });
});

describe('allowed origins', () => {
  let service: Service;
  before(async () => {
    service = await startTestService({ ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:3000' });
  });
  after(() => service.close());

  it('refuses a foreign origin with 403 and counts it', async () => {
    const refused = await connect(service.port, { origin: 'https://evil.example.net' }).catch((err: unknown) => err);
    assert.ok(refused instanceof UpgradeRefused);
    assert.equal(refused.status, 403);
    assert.equal(await scrape(service.metricsPort, 'websocket_upgrades_rejected_total', { reason: 'origin' }), 1);
  });

  it('accepts a listed origin, whatever the case of its host, and a client that sends no Origin', async () => {
    (await connect(service.port, { origin: 'https://APP.example.com' })).close();
    (await connect(service.port, { origin: 'http://localhost:3000' })).close();
    (await connect(service.port)).close();
  });
});

describe('MAX_CONNECTIONS', () => {
  let service: Service;
  before(async () => {
    service = await startTestService({ MAX_CONNECTIONS: '5' });
  });
  after(() => service.close());

  it('answers upgrades past the limit with 503 while existing clients keep echoing', async () => {
    const clients = await Promise.all(Array.from({ length: 5 }, () => connect(service.port)));
    const results = await Promise.all(Array.from({ length: 3 }, () => connect(service.port).catch((err: unknown) => err)));
    for (const result of results) {
      assert.ok(result instanceof UpgradeRefused, 'upgrade past the limit is refused');
      assert.equal(result.status, 503);
    }
    assert.equal(await scrape(service.metricsPort, 'websocket_upgrades_rejected_total', { reason: 'max_connections' }), 3);
    assert.equal(await scrape(service.metricsPort, 'websocket_connections_active'), 5);
    for (const [i, ws] of clients.entries()) {
      ws.send(`still here ${i}`);
      const [data] = (await once(ws, 'message')) as [Buffer];
      assert.equal(data.toString(), `still here ${i}`);
    }
    // A slot freed is a slot usable again.
    const first = clients[0]!;
    const done = closed(first);
    first.close();
    await done;
    await waitFor('server to see the close', () => service.connections.size === 4);
    const again = await connect(service.port);
    again.close();
    for (const ws of clients.slice(1)) ws.close();
  });
});

describe('HTTP timeouts', () => {
  let service: Service;
  before(async () => {
    service = await startTestService({ HTTP_HEADERS_TIMEOUT_SECONDS: '0.5' });
  });
  after(() => service.close());

  it('cuts off a client that trickles its request head (slowloris) with 408', async () => {
    const socket = tcpConnect(service.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /echo HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => socket.write('X-Slow: 1\r\n'), 100);
    const started = Date.now();
    let reply = '';
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
    await once(socket, 'close');
    clearInterval(trickle);
    const elapsed = Date.now() - started;
    assert.match(reply, /^HTTP\/1\.1 408 /);
    assert.ok(elapsed < 3000, `cut off after ${elapsed} ms`);
    assert.equal(await scrape(service.metricsPort, 'websocket_http_errors_total', { reason: 'headers_timeout' }), 1);
  });

  it('leaves an open WebSocket alone well past the header timeout', async () => {
    const ws = await connect(service.port);
    await sleep(2000);
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.send('late');
    const [data] = (await once(ws, 'message')) as [Buffer];
    assert.equal(data.toString(), 'late');
    ws.close();
  });

  it('answers garbage that is not HTTP with 400', async () => {
    const reply = await rawRequest(service.port, '\x16\x03\x01 definitely not http\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 400 /);
  });
});

/** Writes raw bytes to the public port and returns everything the server answers before closing. */
/** Sends `text` on a raw connection and returns all the server answered before closing it. */
async function rawRequest(port: number, text: string): Promise<string> {
  return (await exchange(port, [text], { end: false })).received.toString();
}
