// The overload guard: keeps what clients make the process hold within the
// memory budget (memory-budget.ts), in steps as Envoy's overload manager
// does, and ends messages that take too long to arrive. Each check (every
// CHECK_INTERVAL_MS) adds up, over the open connections, the echoes queued
// for them, the messages they have begun and not finished (held-bytes.ts)
// and the kernel socket buffers charged to the container (cgroup.ts), then:
// - soft, from SOFT_FRACTION of the budget: upgrades are refused with 503 +
//   Retry-After, and the allowances shrink: the echo queue a connection may
//   build before we stop reading from it (SHRUNK_BACKPRESSURE_DIVISOR times
//   less), and the time a message may take to arrive, which also becomes the
//   time a peer we stopped reading from has to read its echoes
//   (SHRUNK_TIMEOUT_DIVISOR times less): such a peer holds its queue and the
//   kernel's buffers on both sides, and would otherwise keep them until the
//   heartbeat ends it;
// - hard, at the budget: the connections holding the most are closed, largest
//   first, until what is held is back under HARD_TARGET_FRACTION of it: with
//   1013 (try again later), and terminated at once if they do not read (their
//   queue would keep the close frame from them anyway), or after CLOSE_GRACE_MS;
// - back to normal under NORMAL_FRACTION, so the state does not flap.
// Independently of the budget, a message whose first byte arrived more than
// MESSAGE_TIMEOUT_SECONDS ago and is still not whole is closed with 1008:
// fragments may be interleaved with pongs, so the heartbeat alone never ends
// a client that holds one open.
import type { Admission } from './admission.js';
import type { Logger } from './logger.js';
import { OPEN, POLICY_VIOLATION, TRY_AGAIN_LATER, type ClosableSocket } from './sockets.js';

/** How often the guard looks: what arrives between two looks is what the budget's margin must absorb. */
export const CHECK_INTERVAL_MS = 100;
export const SOFT_FRACTION = 0.8;
export const NORMAL_FRACTION = 0.7;
export const HARD_TARGET_FRACTION = 0.9;
export const SHRUNK_BACKPRESSURE_DIVISOR = 16;
export const SHRUNK_TIMEOUT_DIVISOR = 4;
/** The shrunk echo queue never goes below the socket's own buffer, which must fill before we can tell. */
export const MIN_BACKPRESSURE_BYTES = 16 * 1024;
/** A connection closed for memory or a late message gets this long for its close handshake. */
export const CLOSE_GRACE_MS = 1000;

export const OVERLOAD_LEVELS = ['normal', 'soft', 'hard'] as const;
export type OverloadLevel = (typeof OVERLOAD_LEVELS)[number];
/** Why the guard closed a connection; websocket_overload_closes_total. */
export const OVERLOAD_CLOSE_REASONS = ['memory', 'message_timeout', 'slow_reader'] as const;
export type OverloadCloseReason = (typeof OVERLOAD_CLOSE_REASONS)[number];

/** A connection as the guard sees it (connections.ts EchoSocket; a fake in the unit tests). */
export interface GuardedSocket extends ClosableSocket {
  /** Echo bytes queued for the peer (ws's bufferedAmount). */
  readonly bufferedAmount: number;
  /** Bytes of a message begun and not finished (held-bytes.ts); 0 unless messageInProgress(). */
  inboundBytes(): number;
  messageInProgress(): boolean;
  /** Messages received whole so far. */
  readonly messagesReceived: number;
  /** Reading is paused because the peer does not read its echoes. */
  readonly backpressured: boolean;
  /** When reading was paused (undefined while reading). */
  readonly pausedSince: number | undefined;
  /** The socket's own buffer is full, so a 'drain' will come to resume reading after a pause. */
  readonly needsDrain: boolean;
  // The guard's own marks on the socket.
  /** When the message in progress was first seen (undefined: none, or reading paused). */
  messageSince: number | undefined;
  /** messagesReceived when messageSince was set: a message completed since means a new one. */
  messagesAtMark: number;
  /** Set when the guard closed it: terminated if still there then. */
  closeDeadline: number | undefined;
}

/** The guard's numbers, read by the metrics at scrape time. */
export class OverloadStatus {
  readonly levels = OVERLOAD_LEVELS;
  level: OverloadLevel = 'normal';
  /** 0: off. */
  budgetBytes = 0;
  outboundBytes = 0;
  inboundBytes = 0;
  kernelBytes = 0;
  readonly closes: Record<OverloadCloseReason, number> = { memory: 0, message_timeout: 0, slow_reader: 0 };

  get heldBytes(): number {
    return this.outboundBytes + this.inboundBytes + this.kernelBytes;
  }
}

export interface OverloadGuardOptions<S extends GuardedSocket> {
  readonly sockets: { values(): Iterable<S> };
  /** memoryPressure is set while soft or hard: upgrades refused. */
  readonly admission: Admission;
  /** The budget in bytes; 0: no budget (only the message timeout). */
  readonly budgetBytes: number;
  /** 0: no message timeout. */
  readonly messageTimeoutSeconds: number;
  /** BACKPRESSURE_BYTES, and the live allowance the echo path reads (shrunk while under pressure). */
  readonly backpressureBytes: number;
  readonly allowance: { backpressureBytes: number };
  /** Stops reading from a socket until it reads its echoes (connections.ts). */
  readonly pause: (socket: S) => void;
  /** Kernel socket buffers charged to the container (cgroup.ts). */
  readonly kernelSocketBytes: () => number;
  readonly logger: Logger;
  readonly now?: () => number;
}

export class OverloadGuard<S extends GuardedSocket = GuardedSocket> {
  readonly status = new OverloadStatus();
  readonly #o: OverloadGuardOptions<S>;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  readonly #shrunkTimeoutMs: number;
  readonly #shrunkBackpressure: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: OverloadGuardOptions<S>) {
    this.#o = options;
    this.#log = options.logger.child({ module: 'overload' });
    this.#now = options.now ?? Date.now;
    this.#timeoutMs = options.messageTimeoutSeconds * 1000;
    this.#shrunkTimeoutMs = this.#timeoutMs / SHRUNK_TIMEOUT_DIVISOR;
    this.#shrunkBackpressure = Math.max(MIN_BACKPRESSURE_BYTES, Math.floor(options.backpressureBytes / SHRUNK_BACKPRESSURE_DIVISOR));
    this.status.budgetBytes = options.budgetBytes;
  }

  start(): void {
    this.#timer ??= setInterval(() => this.check(), CHECK_INTERVAL_MS).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One look at every connection: totals, message timeouts, then the budget's step. Exposed for tests. */
  check(): void {
    const now = this.#now();
    const pressured = this.status.level !== 'normal';
    let outbound = 0;
    let inbound = 0;
    const open: S[] = [];
    for (const ws of this.#o.sockets.values()) {
      if (ws.readyState !== OPEN) {
        if (ws.closeDeadline !== undefined && now >= ws.closeDeadline) ws.terminate();
        continue;
      }
      const out = ws.bufferedAmount;
      outbound += out;
      // Between messages (most sockets, most of the time) nothing is held on the way in.
      const receiving = ws.messageInProgress();
      if (receiving) inbound += ws.inboundBytes();
      const timeoutMs = pressured ? this.#shrunkTimeoutMs : this.#timeoutMs;
      if (timeoutMs > 0 && this.#messageTimedOut(ws, receiving, now, timeoutMs)) {
        this.#close(ws, POLICY_VIOLATION, `message not completed within ${timeoutMs / 1000} s`, 'message_timeout', now);
        continue;
      }
      if (pressured && timeoutMs > 0 && ws.pausedSince !== undefined && now - ws.pausedSince >= timeoutMs) {
        this.#close(ws, TRY_AGAIN_LATER, 'server short of memory: echoes not read in time', 'slow_reader', now);
        continue;
      }
      // The echo path applies the shrunk allowance at the next message; a peer that sends nothing more is paused here.
      if (pressured && !ws.backpressured && ws.needsDrain && out > this.#shrunkBackpressure) this.#o.pause(ws);
      open.push(ws);
    }
    this.status.outboundBytes = outbound;
    this.status.inboundBytes = inbound;
    this.status.kernelBytes = this.#o.kernelSocketBytes();
    if (this.#o.budgetBytes > 0) this.#step(open, now);
  }

  /** Marks when a message began and says whether it has now taken too long. Paused sockets are not timed: we stopped reading. */
  #messageTimedOut(ws: GuardedSocket, receiving: boolean, now: number, timeoutMs: number): boolean {
    if (ws.backpressured || !receiving) {
      ws.messageSince = undefined;
      return false;
    }
    if (ws.messageSince === undefined || ws.messagesAtMark !== ws.messagesReceived) {
      ws.messageSince = now;
      ws.messagesAtMark = ws.messagesReceived;
      return false;
    }
    return now - ws.messageSince >= timeoutMs;
  }

  #step(open: GuardedSocket[], now: number): void {
    const budget = this.#o.budgetBytes;
    const held = this.status.heldBytes;
    const before = this.status.level;
    const level = nextLevel(before, held / budget);
    if (level === 'hard') this.#closeLargest(open, held - HARD_TARGET_FRACTION * budget, now);
    this.#setLevel(level, before);
  }

  /**
   * Closes the connections holding the most until `excess` bytes are on
   * their way out. A paused connection is also charged an equal part of the
   * kernel socket buffers: it is the one whose buffers we stopped emptying.
   */
  #closeLargest(open: GuardedSocket[], excess: number, now: number): void {
    const paused = open.filter((ws) => ws.backpressured).length;
    const kernelShare = paused > 0 ? this.status.kernelBytes / paused : 0;
    const held = open
      .map((ws) => ({ ws, bytes: ws.bufferedAmount + ws.inboundBytes() + (ws.backpressured ? kernelShare : 0) }))
      .filter((h) => h.bytes > 0)
      .sort((a, b) => b.bytes - a.bytes);
    let freed = 0;
    let closed = 0;
    for (const { ws, bytes } of held) {
      if (freed >= excess) break;
      this.#close(ws, TRY_AGAIN_LATER, 'server memory overloaded: reconnect later', 'memory', now);
      freed += bytes;
      closed++;
    }
    this.#log.warn(
      { held: this.status.heldBytes, budget: this.#o.budgetBytes, closed, freed: Math.round(freed), ...this.#breakdown() },
      closed > 0 ? 'memory budget reached: closed the connections holding the most' : 'memory budget reached, but no connection holds anything to free',
    );
  }

  #close(ws: GuardedSocket, code: number, reason: string, why: OverloadCloseReason, now: number): void {
    this.status.closes[why]++;
    ws.close(code, reason);
    // A paused peer reads nothing, the close frame included: free its buffers now.
    if (ws.backpressured) ws.terminate();
    else ws.closeDeadline = now + CLOSE_GRACE_MS;
  }

  #setLevel(level: OverloadLevel, before: OverloadLevel): void {
    if (level === before) return;
    this.status.level = level;
    const pressured = level !== 'normal';
    this.#o.admission.memoryPressure = pressured;
    this.#o.allowance.backpressureBytes = pressured ? this.#shrunkBackpressure : this.#o.backpressureBytes;
    const fields = { held: this.status.heldBytes, budget: this.#o.budgetBytes, ...this.#breakdown() };
    if (level === 'soft' && before === 'normal') {
      this.#log.warn(
        { ...fields, backpressureBytes: this.#shrunkBackpressure },
        'memory above the soft watermark: refusing upgrades and shrinking the echo queue allowance',
      );
    } else if (level === 'normal') {
      this.#log.info(fields, 'memory back under the watermark: accepting upgrades again');
    }
  }

  #breakdown(): Record<string, number> {
    return { outbound: this.status.outboundBytes, inbound: this.status.inboundBytes, kernel: this.status.kernelBytes };
  }
}

/** The level after `before` with `used` (held / budget): hard at the budget and until under the hard target, soft from the soft watermark, normal under the normal one. */
export function nextLevel(before: OverloadLevel, used: number): OverloadLevel {
  if (used >= 1 || (before === 'hard' && used >= HARD_TARGET_FRACTION)) return 'hard';
  if (used >= SOFT_FRACTION) return 'soft';
  if (used < NORMAL_FRACTION) return 'normal';
  return before === 'normal' ? 'normal' : 'soft';
}
