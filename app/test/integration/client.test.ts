// The reference client must see every failure it claims to survive: tested
// against small misbehaving ws servers that drop, duplicate, alter, cut and
// refuse.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer, type WebSocket } from 'ws';
import { EchoClient, percentile } from '../../src/client.js';

// Everything a test opens is closed after it, pass or fail, so a failing test cannot hang the run.
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function track(client: EchoClient): EchoClient {
  cleanups.push(() => client.stop(0));
  return client;
}

/** A ws server on a free port whose connections are handled by `onConnection`. */
async function misbehavingServer(onConnection: (ws: WebSocket, index: number) => void, refuseFirst = 0) {
  const http = createServer();
  const wss = new WebSocketServer({ noServer: true });
  let upgrades = 0;
  let connections = 0;
  http.on('upgrade', (req, socket, head) => {
    if (upgrades++ < refuseFirst) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, connections++));
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/echo`;
  cleanups.push(() => {
    for (const ws of wss.clients) ws.terminate();
    http.close();
  });
  return { url };
}

describe('EchoClient', () => {
  it('counts messages the server never echoes as lost', async () => {
    const server = await misbehavingServer((ws) => {
      let n = 0;
      ws.on('message', (data, binary) => {
        if (++n % 3 !== 0) ws.send(data, { binary });
      });
    });
    const client = track(new EchoClient({ urls: [server.url], id: 'a' })).start();
    await once(client, 'open');
    for (let i = 0; i < 30; i++) client.send();
    const lost = await client.stop(300);
    assert.equal(lost, 10);
    assert.equal(client.stats.echoed, 20);
  });

  it('counts duplicated, altered and out-of-order echoes', async () => {
    const server = await misbehavingServer((ws) => {
      const held: Buffer[] = [];
      ws.on('message', (data: Buffer) => {
        const text = data.toString();
        if (text.startsWith('b 1 ')) {
          ws.send(text);
          ws.send(text); // duplicate
        } else if (text.startsWith('b 2 '))
          ws.send(text.replace('b 2', 'b 2x')); // altered
        else if (text.startsWith('b 3 '))
          held.push(data); // held back, sent after 4
        else {
          ws.send(text);
          for (const h of held.splice(0)) ws.send(h.toString());
        }
      });
    });
    const client = track(new EchoClient({ urls: [server.url], id: 'b' })).start();
    await once(client, 'open');
    for (let i = 0; i < 4; i++) client.send();
    const lost = await client.stop(300);
    assert.equal(client.stats.duplicated, 1);
    assert.equal(client.stats.corrupted, 1);
    assert.equal(client.stats.outOfOrder, 1);
    assert.equal(lost, 1, 'the altered one never came back intact');
  });

  it('after a 1006 cut, reconnects and resends what was not echoed: nothing lost', async () => {
    const server = await misbehavingServer((ws, index) => {
      if (index === 0) {
        // First connection: swallow everything, then drop the TCP connection without a close frame.
        ws.on('message', () => {});
        setTimeout(() => ws.terminate(), 200);
      } else {
        ws.on('message', (data, binary) => ws.send(data, { binary }));
      }
    });
    const client = track(new EchoClient({ urls: [server.url], id: 'c', initialBackoffMs: 50 })).start();
    await once(client, 'open');
    for (let i = 0; i < 20; i++) client.send();
    await once(client, 'open'); // the reconnect
    for (let i = 0; i < 5; i++) client.send();
    const lost = await client.stop(1000);
    assert.equal(lost, 0);
    assert.equal(client.stats.abnormalCloses, 1);
    assert.equal(client.stats.resent, 20);
    assert.equal(client.stats.echoed, 25);
    assert.equal(client.stats.reconnects, 1);
    assert.equal(client.stats.reconnectGapsMs.length, 1);
  });

  it('retries failed upgrades with backoff, counting each one', async () => {
    const server = await misbehavingServer((ws) => ws.on('message', (data, binary) => ws.send(data, { binary })), 3);
    const client = track(new EchoClient({ urls: [server.url], id: 'd', initialBackoffMs: 20 })).start();
    client.send(); // queued until a connection opens
    await once(client, 'open');
    const lost = await client.stop(1000);
    assert.equal(client.stats.failedUpgrades, 3);
    assert.deepEqual(client.stats.failedUpgradeStatuses, { 503: 3 });
    assert.equal(lost, 0);
  });

  it('stops reconnecting on a close code that is not worth retrying', async () => {
    const server = await misbehavingServer((ws) => ws.close(1008, 'policy violation'));
    const client = track(new EchoClient({ urls: [server.url], id: 'e', initialBackoffMs: 10 })).start();
    const [code] = (await once(client, 'fatal')) as [number];
    assert.equal(code, 1008);
    await sleep(100);
    assert.equal(client.stats.reconnects, 0);
  });
});

describe('percentile', () => {
  it('uses nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(values, 50), 50);
    assert.equal(percentile(values, 99), 99);
    assert.equal(percentile(values, 100), 100);
    assert.equal(percentile([], 50), 0);
  });
});
