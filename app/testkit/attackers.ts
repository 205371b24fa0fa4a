// Hostile clients for the memory tests: raw TCP sockets that complete a
// valid upgrade and then make the server hold memory, the cheap way an
// attacker would.
// - A fragment holder starts a fragmented message and never finishes it,
//   answering every ping so the heartbeat keeps it alive.
// - A slow reader sends echo requests as fast as the server takes them and
//   never reads a byte of the echoes.
// Each keeps its own memory small: it writes only while its socket accepts.
import { connect as tcpConnect, type Socket } from 'node:net';
import { encodeFrame, OP } from './frames.js';
import { upgradeRequest } from './websocket.js';

/** What became of one hostile socket. */
export interface AttackerOutcome {
  /** HTTP status of the upgrade answer (101 accepted, 503 refused, 0 nothing). */
  status: number;
  /** Close code the server sent, if a close frame arrived. */
  closeCode: number | undefined;
  /** The TCP connection ended (FIN, RST or our own destroy after a close frame). */
  ended: boolean;
}

export interface Attacker {
  readonly outcome: AttackerOutcome;
  /** Resolves once the upgrade was answered (accepted or not). */
  readonly upgraded: Promise<void>;
  destroy(): void;
}

/**
 * Opens a raw socket to `port` and sends the upgrade. `onOpen` runs once the
 * 101 has arrived, with the bytes that followed it; then every later chunk
 * goes to `onData`, unless the attacker paused the socket.
 */
function rawUpgrade(port: number, onOpen: (socket: Socket, rest: Buffer) => void, onData: (chunk: Buffer) => void): Attacker {
  const outcome: AttackerOutcome = { status: 0, closeCode: undefined, ended: false };
  const socket = tcpConnect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  socket.once('close', () => (outcome.ended = true));
  let head = Buffer.alloc(0);
  let open = false;
  const upgraded = new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.on('data', (chunk: Buffer) => {
      if (open) return onData(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      outcome.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head.toString('latin1'))?.[1] ?? 0);
      resolve();
      if (outcome.status !== 101) return void socket.destroy();
      open = true;
      onOpen(socket, head.subarray(end + 4));
    });
  });
  socket.write(upgradeRequest());
  return { outcome, upgraded, destroy: () => socket.destroy() };
}

/**
 * Reads the server's frames (unmasked, RFC 6455 §5.2) from a byte stream:
 * calls `onFrame` per complete frame and keeps the incomplete rest.
 */
class ServerFrames {
  #buffer: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (opcode: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) return;
      let length = b[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + length) return;
      this.onFrame(b[0]! & 0x0f, b.subarray(offset, offset + length));
      this.#buffer = b.subarray(offset + length);
    }
  }
}

/**
 * Starts a binary message in `fragments` frames of `fragmentBytes` each and
 * never sends its last frame. Answers pings with pongs (control frames may
 * come between fragments), so only a limit on the message itself ends it.
 * With `intervalMs`, the fragments go one per interval instead of at once.
 */
export function fragmentHolder(port: number, fragments: number, fragmentBytes: number, intervalMs = 0): Attacker {
  const payload = Buffer.alloc(fragmentBytes, 0x61);
  let attacker: Attacker | undefined = undefined;
  const frames = new ServerFrames((opcode, data) => {
    if (opcode === OP.ping) socket?.write(encodeFrame({ opcode: OP.pong, payload: Buffer.from(data) }));
    if (opcode === OP.close) {
      attacker!.outcome.closeCode = data.length >= 2 ? data.readUInt16BE(0) : 1005;
      socket?.destroy();
    }
  });
  let socket: Socket | undefined;
  attacker = rawUpgrade(
    port,
    (s, rest) => {
      socket = s;
      const fragment = (i: number): Buffer => encodeFrame({ opcode: i === 0 ? OP.binary : OP.continuation, fin: false, payload });
      if (intervalMs === 0) {
        for (let i = 0; i < fragments; i++) s.write(fragment(i));
      } else {
        let sent = 0;
        const timer = setInterval(() => {
          if (s.destroyed || sent === fragments) return clearInterval(timer);
          s.write(fragment(sent++));
        }, intervalMs);
        s.once('close', () => clearInterval(timer));
      }
      frames.push(rest);
    },
    (chunk) => frames.push(chunk),
  );
  return attacker;
}

/**
 * Sends `messageBytes` binary messages for as long as the socket takes them
 * and reads nothing: not the echoes, not the pings, not a close frame. The
 * server can only stop reading from it, cut it, or buffer for it.
 */
export function slowReader(port: number, messageBytes: number): Attacker {
  const frame = encodeFrame({ opcode: OP.binary, payload: Buffer.alloc(messageBytes, 0x62) });
  return rawUpgrade(
    port,
    (socket) => {
      socket.pause();
      const send = (): void => {
        while (!socket.destroyed && socket.write(frame));
        if (!socket.destroyed) socket.once('drain', send);
      };
      send();
    },
    () => {},
  );
}

/** Opens `count` attackers made by `open`, `concurrency` upgrades at a time; resolves once each was answered. */
export async function openAttackers(count: number, open: () => Attacker, concurrency = 200): Promise<Attacker[]> {
  const attackers: Attacker[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      const attacker = open();
      attackers.push(attacker);
      await attacker.upgraded;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return attackers;
}

/** How the attackers fared: accepted / refused by status, closed by code, cut without a close frame. */
export function tallyAttackers(attackers: readonly Attacker[]): {
  accepted: number;
  refused: Record<string, number>;
  closes: Record<string, number>;
  cut: number;
  open: number;
} {
  const refused: Record<string, number> = {};
  const closes: Record<string, number> = {};
  let accepted = 0;
  let cut = 0;
  let open = 0;
  for (const { outcome } of attackers) {
    if (outcome.status !== 101) {
      refused[outcome.status] = (refused[outcome.status] ?? 0) + 1;
      continue;
    }
    accepted++;
    if (outcome.closeCode !== undefined) closes[outcome.closeCode] = (closes[outcome.closeCode] ?? 0) + 1;
    else if (outcome.ended) cut++;
    else open++;
  }
  return { accepted, refused, closes, cut, open };
}
