// The benchmark's load client: a child process (pinned to its own core by the
// parent) that takes commands over IPC, so the parent can read the server's
// CPU time exactly around the measured interval. The same client drives every
// server under test.
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { percentile } from '../../src/client.js';

export type Command =
  | { kind: 'throughput'; url: string; connections: number; size: number; depth: number; warmupMs: number; durationMs: number }
  | { kind: 'open'; url: string; connections: number; concurrency: number; localAddresses: string[] }
  | { kind: 'close' };

export type Reply =
  | { kind: 'measuring' }
  | { kind: 'throughput'; messages: number; seconds: number; rttP50Ms: number; rttP99Ms: number }
  | { kind: 'opened'; connections: number; seconds: number; failures: number }
  | { kind: 'closed' };

const open: WebSocket[] = [];

function reply(message: Reply): void {
  process.send!(message);
}

/** Opens `n` sockets, `concurrency` handshakes at a time, round-robin over local source addresses. */
async function openMany(url: string, n: number, concurrency: number, localAddresses: string[]): Promise<{ failures: number }> {
  let next = 0;
  let failures = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const localAddress = localAddresses.length > 0 ? localAddresses[i % localAddresses.length] : undefined;
      const ws = new WebSocket(url, { perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
      await new Promise<void>((resolve) => {
        ws.once('open', () => {
          open.push(ws);
          resolve();
        });
        ws.once('error', () => {
          failures++;
          resolve();
        });
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { failures };
}

/**
 * Each connection keeps `depth` messages in flight: every echo sends the next
 * one. Echoes come back in order, so each connection's send times form a FIFO.
 */
async function throughput(command: Extract<Command, { kind: 'throughput' }>): Promise<void> {
  await openMany(command.url, command.connections, 50, []);
  const payload = Buffer.alloc(command.size, 0x61); // 'a': valid UTF-8, sent as binary
  let measuring = false;
  let messages = 0;
  const rtts: number[] = [];
  const sockets = open.splice(0);
  for (const ws of sockets) {
    // Like a pipelining client would: the messages sent in reply to one read
    // of echoes leave in one write, so pipelined messages arrive together.
    const tcp = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    tcp.prependListener('data', () => tcp.cork());
    tcp.on('data', () => tcp.uncork());
    const sentAt: number[] = [];
    ws.on('message', () => {
      const started = sentAt.shift()!;
      if (measuring) {
        messages++;
        if ((messages & 15) === 0) rtts.push(performance.now() - started); // a sample of 1 in 16 keeps the client light
      }
      sentAt.push(performance.now());
      ws.send(payload);
    });
    for (let i = 0; i < command.depth; i++) {
      sentAt.push(performance.now());
      ws.send(payload);
    }
  }
  await sleep(command.warmupMs);
  measuring = true;
  reply({ kind: 'measuring' });
  const started = performance.now();
  await sleep(command.durationMs);
  measuring = false;
  const seconds = (performance.now() - started) / 1000;
  reply({ kind: 'throughput', messages, seconds, rttP50Ms: percentile(rtts, 50), rttP99Ms: percentile(rtts, 99) });
  for (const ws of sockets) ws.terminate();
}

process.on('message', (command: Command) => {
  void (async () => {
    if (command.kind === 'throughput') {
      await throughput(command);
    } else if (command.kind === 'open') {
      const started = performance.now();
      const { failures } = await openMany(command.url, command.connections, command.concurrency, command.localAddresses);
      reply({ kind: 'opened', connections: open.length, seconds: (performance.now() - started) / 1000, failures });
    } else {
      for (const ws of open.splice(0)) ws.terminate();
      reply({ kind: 'closed' });
    }
  })();
});
