// Connections: the echo itself, the set of open sockets, the heartbeat that
// finds dead peers, and backpressure for clients that do not read.
import type { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import type { Config } from './config.js';
import { inboundBytes, messageInProgress, receiverReadable } from './held-bytes.js';
import type { Logger } from './logger.js';
import type { Counters, ProtocolError } from './metrics.js';
import type { GuardedSocket } from './overload.js';

/**
 * The server-side socket. Extra state lives in fields of this subclass (ws
 * builds it for us through the `WebSocket` server option) so that a
 * connection costs no extra object or closure.
 */
export class EchoSocket extends WebSocket implements GuardedSocket {
  /** The TCP socket under the WebSocket; we watch its 'drain' for backpressure. */
  tcp: Duplex | undefined = undefined;
  /** Cleared when a ping goes out, set again by the pong. */
  alive = true;
  /** Reading is paused until the client reads what we queued for it. */
  backpressured = false;
  /** When reading was paused (Date.now()), while it is. */
  pausedSince: number | undefined = undefined;
  /** The socket is corked around each read (set at the first message). */
  corking = false;
  messagesReceived = 0;
  // Marks of the overload guard (overload.ts).
  messageSince: number | undefined = undefined;
  messagesAtMark = 0;
  closeDeadline: number | undefined = undefined;

  get needsDrain(): boolean {
    return this.tcp?.writableNeedDrain === true;
  }

  inboundBytes(): number {
    return inboundBytes(this);
  }

  messageInProgress(): boolean {
    return messageInProgress(this);
  }
}

// Send options allocated once, not per message.
const AS_BINARY = { binary: true } as const;
const AS_TEXT = { binary: false } as const;

// ws reports protocol errors with these codes (ws/lib/receiver.js); map them to our metric labels.
const PROTOCOL_ERROR_BY_WS_CODE: Readonly<Record<string, ProtocolError>> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'message_too_big', // close 1009
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 'message_too_big', // close 1009: a frame length over 2^53 - 1
  WS_ERR_INVALID_UTF8: 'invalid_utf8', // close 1007
  WS_ERR_TOO_MANY_BUFFERED_PARTS: 'too_many_parts', // close 1008: over maxFragments frames or maxBufferedChunks reads
};

/** Owns every open connection of this process. */
export class ConnectionRegistry {
  readonly #sockets = new Set<EchoSocket>();
  readonly #counters: Counters;
  readonly #log: Logger;
  /** Whether per-connection debug lines are wanted: checked once, so no log object is built per connection otherwise. */
  readonly #debug: boolean;
  #heartbeat: NodeJS.Timeout | undefined;
  /** Whether the first socket's receiver was checked for the fields the memory count reads. */
  #receiverChecked = false;
  /**
   * The echo queue a connection may build before we stop reading from it:
   * BACKPRESSURE_BYTES, shrunk by the overload guard under memory pressure.
   */
  readonly allowance: { backpressureBytes: number };

  // Event handlers shared by all sockets (ws calls them with `this` set to
  // the socket, typed as the base WebSocket), created once here.
  readonly #onMessage: (this: WebSocket, data: RawData, isBinary: boolean) => void;
  readonly #onClose: (this: WebSocket, code: number) => void;
  readonly #onError: (this: WebSocket, err: Error & { code?: string }) => void;

  constructor(config: Config, counters: Counters, logger: Logger) {
    this.#counters = counters;
    this.#log = logger.child({ module: 'connections' });
    this.#debug = this.#log.isLevelEnabled('debug');
    // The handlers below are plain functions (ws calls them with `this` set to
    // the socket), so what they need of the registry is captured here.
    const allowance = (this.allowance = { backpressureBytes: config.backpressureBytes });
    const sockets = this.#sockets;
    const log = this.#log;
    const debug = this.#debug;
    const pause = (ws: EchoSocket): void => this.pause(ws);

    this.#onMessage = function onMessage(data, isBinary) {
      const ws = this as EchoSocket;
      if (!ws.corking) corkEachRead(ws);
      // binaryType is the default 'nodebuffer', so every message is one Buffer.
      const length = (data as Buffer).length;
      ws.messagesReceived++;
      counters.messagesIn++;
      counters.bytesIn += length;
      ws.send(data, isBinary ? AS_BINARY : AS_TEXT);
      counters.messagesOut++;
      counters.bytesOut += length;
      // writableNeedDrain (a flag) first: most messages never fill the socket's 16 KiB buffer.
      if (ws.tcp!.writableNeedDrain && !ws.backpressured && ws.bufferedAmount > allowance.backpressureBytes) pause(ws);
    };
    this.#onClose = function onClose(code) {
      sockets.delete(this as EchoSocket);
      counters.connectionsActive--;
      counters.countClose(code);
      if (debug) log.debug({ code, connections: counters.connectionsActive }, 'connection closed');
    };
    this.#onError = function onError(err) {
      // ws has already sent the matching close frame (1009, 1007 or 1002); we only count and log.
      const reason = PROTOCOL_ERROR_BY_WS_CODE[err.code ?? ''] ?? 'invalid_frame';
      counters.protocolErrors[reason]++;
      log.debug({ reason, wsCode: err.code }, 'protocol error');
    };

    if (config.heartbeatIntervalSeconds > 0) {
      this.#heartbeat = setInterval(() => this.#beat(), config.heartbeatIntervalSeconds * 1000).unref();
    }
  }

  get size(): number {
    return this.#sockets.size;
  }

  /** Takes ownership of a socket that has just completed its upgrade. */
  add(ws: EchoSocket, tcp: Duplex): void {
    ws.tcp = tcp;
    this.#sockets.add(ws);
    this.#counters.connectionsActive++;
    this.#counters.upgradesAccepted++;
    ws.on('message', this.#onMessage);
    ws.on('close', this.#onClose);
    ws.on('error', this.#onError);
    ws.on('pong', markAlive);
    if (!this.#receiverChecked) {
      this.#receiverChecked = true;
      if (!receiverReadable(ws)) {
        this.#log.warn('this version of ws does not expose what the memory budget reads of a message being received: those bytes count as 0');
      }
    }
    if (this.#debug) this.#log.debug({ connections: this.#counters.connectionsActive }, 'connection opened');
  }

  /** A snapshot of the open sockets (the drain shuffles and closes them). */
  snapshot(): EchoSocket[] {
    return [...this.#sockets];
  }

  /** The open sockets, not copied: the overload guard looks at every one of them ten times a second. */
  values(): Iterable<EchoSocket> {
    return this.#sockets.values();
  }

  bufferedBytes(): number {
    let total = 0;
    for (const ws of this.#sockets) total += ws.bufferedAmount;
    return total;
  }

  pausedConnections(): number {
    let paused = 0;
    for (const ws of this.#sockets) if (ws.backpressured) paused++;
    return paused;
  }

  /** Stops the heartbeat; the sockets themselves are closed by their owner (the drain). */
  stopHeartbeat(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  // One timer for all sockets: a peer that has not answered the previous ping
  // by now is gone (half-open TCP, frozen laptop) and is terminated.
  #beat(): void {
    for (const ws of this.#sockets) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (!ws.alive) {
        this.#counters.heartbeatTerminations++;
        this.#log.debug('peer missed a pong, terminating');
        ws.terminate();
        continue;
      }
      ws.alive = false;
      ws.ping();
    }
  }

  /**
   * Backpressure: stops reading from a client whose echoes pile up, so it
   * cannot make us buffer without bound; reads again once the kernel has
   * taken our queue ('drain'). A client paused for a whole heartbeat interval
   * cannot answer pings and is terminated, as a dead one would be.
   */
  pause(ws: EchoSocket): void {
    ws.backpressured = true;
    ws.pausedSince = Date.now();
    ws.pause();
    this.#counters.backpressurePauses++;
    ws.tcp?.once('drain', () => {
      ws.backpressured = false;
      ws.pausedSince = undefined;
      ws.resume();
    });
  }
}

/**
 * Cork around each TCP read from now on: ws parses a whole chunk
 * synchronously (allowSynchronousEvents), so the echoes of every message in
 * one read leave in one writev instead of one syscall each. ws's own 'data'
 * listener is attached by now; ours run just before and just after it. Done
 * at a socket's first message, so idle sockets cost nothing.
 */
function corkEachRead(ws: EchoSocket): void {
  ws.corking = true;
  ws.tcp!.prependListener('data', corkSocket);
  ws.tcp!.on('data', uncorkSocket);
}

function corkSocket(this: Duplex): void {
  this.cork();
}

function uncorkSocket(this: Duplex): void {
  this.uncork();
}

function markAlive(this: WebSocket): void {
  (this as EchoSocket).alive = true;
}
