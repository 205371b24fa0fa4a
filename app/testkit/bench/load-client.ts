// The benchmark's load client: a child process (pinned to its own core by the
// parent) that takes commands over IPC, so the parent can read the server's
// CPU time exactly around the measured interval. The same client drives every
// server under test.
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { percentile } from '../../src/client.js';

/**
 * How a client sends: "per-frame" writes every message on its own, as a
 * browser or a client with one message in flight does; "corked" gathers the
 * messages sent in reply to one read of echoes into one write, as a
 * pipelining client does (the server's best case).
 */
export type WritePattern = 'per-frame' | 'corked';
/** "ws": WebSocket frames; "tcp": the same bytes on a bare TCP socket (the node:net floor). */
export type Protocol = 'ws' | 'tcp';

export type Command =
  | {
      kind: 'throughput';
      protocol: Protocol;
      url: string;
      connections: number;
      size: number;
      depth: number;
      pattern: WritePattern;
      warmupMs: number;
      durationMs: number;
    }
  | { kind: 'open'; protocol: Protocol; url: string; connections: number; concurrency: number; localAddresses: string[] }
  | { kind: 'close' };

export type Reply =
  | { kind: 'measuring' }
  | { kind: 'throughput'; messages: number; seconds: number; rttP50Ms: number; rttP99Ms: number }
  | { kind: 'opened'; connections: number; seconds: number; failures: number }
  | { kind: 'closed' };

/** A connection the client holds: either kind is closed the same way. */
interface Held {
  terminate(): void;
}
const open: Held[] = [];

function reply(message: Reply): void {
  process.send!(message);
}

function openOne(protocol: Protocol, url: string, localAddress: string | undefined): Promise<Held> {
  return new Promise((resolve, reject) => {
    if (protocol === 'ws') {
      const ws = new WebSocket(url, { perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
      return;
    }
    openBare(url, localAddress).then(resolve, reject);
  });
}

/** Opens `n` connections, `concurrency` handshakes at a time, round-robin over local source addresses. */
async function openMany(protocol: Protocol, url: string, n: number, concurrency: number, localAddresses: string[]): Promise<{ failures: number }> {
  let next = 0;
  let failures = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const localAddress = localAddresses.length > 0 ? localAddresses[i % localAddresses.length] : undefined;
      await openOne(protocol, url, localAddress).then(
        (held) => open.push(held),
        () => failures++,
      );
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { failures };
}

/** The TCP socket under a connection: ws's, or the bare socket itself. */
function tcpOf(held: Held): Socket {
  return held instanceof WebSocket ? (held as unknown as { _socket: Socket })._socket : (held as unknown as { socket: Socket }).socket;
}

/**
 * Each connection keeps `depth` messages in flight: every echo sends the next
 * one. Echoes come back in order, so each connection's send times form a FIFO.
 * On bare TCP a message is `size` bytes of the echoed stream.
 */
async function throughput(command: Extract<Command, { kind: 'throughput' }>): Promise<void> {
  await openMany(command.protocol, command.url, command.connections, 50, []);
  const payload = Buffer.alloc(command.size, 0x61); // 'a': valid UTF-8, sent as binary
  let measuring = false;
  let messages = 0;
  const rtts: number[] = [];
  const connections = open.splice(0);
  for (const held of connections) {
    const tcp = tcpOf(held);
    if (command.pattern === 'corked') {
      // The messages sent in reply to one read of echoes leave in one write.
      tcp.prependListener('data', () => tcp.cork());
      tcp.on('data', () => tcp.uncork());
    }
    const sentAt: number[] = [];
    const send = held instanceof WebSocket ? (): void => held.send(payload) : (): boolean => tcp.write(payload);
    const onEcho = (): void => {
      const started = sentAt.shift()!;
      if (measuring) {
        messages++;
        if ((messages & 15) === 0) rtts.push(performance.now() - started); // a sample of 1 in 16 keeps the client light
      }
      sentAt.push(performance.now());
      send();
    };
    if (held instanceof WebSocket) held.on('message', onEcho);
    else {
      // Echoed bytes arrive in arbitrary chunks: every `size` of them is one message back.
      let pending = 0;
      tcp.on('data', (chunk: Buffer) => {
        pending += chunk.length;
        while (pending >= command.size) {
          pending -= command.size;
          onEcho();
        }
      });
    }
    for (let i = 0; i < command.depth; i++) {
      sentAt.push(performance.now());
      send();
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
  for (const held of connections) held.terminate();
}

/** A bare TCP connection that keeps its socket reachable for the throughput loop. */
function openBare(url: string, localAddress: string | undefined): Promise<Held & { socket: Socket }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ...(localAddress ? { localAddress } : {}) });
    socket.setNoDelay(true); // as ws does on its sockets
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => socket.destroy());
      resolve({ socket, terminate: () => socket.destroy() });
    });
  });
}

process.on('message', (command: Command) => {
  void (async () => {
    if (command.kind === 'throughput') {
      await throughput(command);
    } else if (command.kind === 'open') {
      const started = performance.now();
      const { failures } = await openMany(command.protocol, command.url, command.connections, command.concurrency, command.localAddresses);
      reply({ kind: 'opened', connections: open.length, seconds: (performance.now() - started) / 1000, failures });
    } else {
      for (const ws of open.splice(0)) ws.terminate();
      reply({ kind: 'closed' });
    }
  })();
});
