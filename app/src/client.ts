// The reference client: what a ws-echo client should do so that nothing it
// sends is lost across rollouts. Copy it into your own code; the tests, the
// load scripts and the chart's `helm test` pod use it as is.
//
// - Every message carries an id ("<client> <seq> <padding>"); every echo is
//   checked against what was sent.
// - On close 1012 (service restart), 1001 (going away), 1013 (try again
//   later), 1006 (connection lost) or a failed upgrade, it reconnects with
//   jittered exponential backoff and resends every message not yet echoed.
// - Like a browser, it keeps the cookies the server (or the ingress's session
//   affinity) set on the upgrade response and sends them when it reconnects.
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';

/** Close codes after which the client reconnects (plus failed upgrades). */
export const RECONNECT_CODES: ReadonlySet<number> = new Set([1001, 1006, 1012, 1013]);

export interface EchoClientOptions {
  /** Where to connect; each reconnect tries the next URL (usually one URL behind a load balancer). */
  readonly urls: readonly string[];
  /** Identifies this client's messages; must not contain a space. */
  readonly id: string;
  /** Bytes of padding in each message after the id. */
  readonly paddingBytes?: number;
  /** First backoff ceiling; doubles per failed attempt up to maxBackoffMs. */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** An upgrade that takes longer fails (and is retried). */
  readonly handshakeTimeoutMs?: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly random?: () => number;
}

export interface EchoClientStats {
  /** Distinct messages handed to send(). */
  sent: number;
  /** Distinct messages whose echo came back intact. */
  echoed: number;
  /** Transmissions repeated after a reconnect. */
  resent: number;
  /** Echoes of a message that had already been echoed. */
  duplicated: number;
  /** Echoes that did not match any message sent, or came back altered. */
  corrupted: number;
  /** Echoes that came back out of order on one connection. */
  outOfOrder: number;
  /** Closes without a close frame (1006). */
  abnormalCloses: number;
  /** Upgrades answered with something other than 101, or connections that failed before it. */
  failedUpgrades: number;
  /** Successful opens after the first. */
  reconnects: number;
  /** ms from losing a connection to the next open. */
  readonly reconnectGapsMs: number[];
  /** The longest a message waited for its echo, ms, from `send` (resends and reconnects included). */
  slowestEchoMs: number;
  /** Close codes seen, by code. */
  readonly closeCodes: Record<number, number>;
  /** HTTP statuses of failed upgrades, by status (0: no response). */
  readonly failedUpgradeStatuses: Record<number, number>;
}

interface Pending {
  /** Times written to a socket so far (0: waiting for a connection). */
  transmissions: number;
  /** When `send` was called (performance.now()). */
  readonly sentAt: number;
}

/**
 * Events: 'open' (servedBy: string | undefined), 'close' (code: number),
 * 'upgrade-failed' (status: number), 'fatal' (code: number) for a close code
 * that is not worth reconnecting for.
 */
export class EchoClient extends EventEmitter {
  readonly stats: EchoClientStats = {
    sent: 0,
    echoed: 0,
    resent: 0,
    duplicated: 0,
    corrupted: 0,
    outOfOrder: 0,
    abnormalCloses: 0,
    failedUpgrades: 0,
    reconnects: 0,
    reconnectGapsMs: [],
    slowestEchoMs: 0,
    closeCodes: {},
    failedUpgradeStatuses: {},
  };
  /** The replica (X-Served-By) of the current connection. */
  servedBy: string | undefined;

  readonly #opts: Required<Omit<EchoClientOptions, 'headers'>> & { headers: Readonly<Record<string, string>> };
  readonly #padding: string;
  readonly #pending = new Map<number, Pending>();
  readonly #cookies = new Map<string, string>();
  #seq = 0;
  #ws: WebSocket | undefined;
  #urlIndex = 0;
  #attempt = 0;
  #opened = false;
  #lostAt: number | undefined;
  #lastEchoSeq = 0;
  #stopping = false;
  #stopped = false;
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(options: EchoClientOptions) {
    super();
    if (options.urls.length === 0) throw new Error('EchoClient needs at least one URL');
    if (/\s/.test(options.id)) throw new Error(`EchoClient id must not contain spaces, got ${JSON.stringify(options.id)}`);
    this.#opts = {
      paddingBytes: 0,
      initialBackoffMs: 100,
      maxBackoffMs: 5000,
      handshakeTimeoutMs: 5000,
      random: Math.random,
      headers: {},
      ...options,
    };
    this.#padding = 'x'.repeat(this.#opts.paddingBytes);
  }

  /** Messages sent and not (yet) echoed; after stop(), these are lost. */
  get unacknowledged(): number {
    return this.#pending.size;
  }

  get connected(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  start(): this {
    this.#connect();
    return this;
  }

  /** Sends one new message now, or as soon as a connection is open. */
  send(): void {
    if (this.#stopping) return;
    const seq = ++this.#seq;
    const pending: Pending = { transmissions: 0, sentAt: performance.now() };
    this.#pending.set(seq, pending);
    this.stats.sent++;
    if (this.connected) this.#transmit(seq, pending);
  }

  /**
   * Stops sending, waits up to `settleMs` for outstanding echoes (still
   * reconnecting if needed), then closes with 1000. Returns what was lost.
   */
  async stop(settleMs = 2000): Promise<number> {
    this.#stopping = true;
    const deadline = Date.now() + settleMs;
    while (this.#pending.size > 0 && Date.now() < deadline) await sleep(20);
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    const ws = this.#ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.close(1000, 'client done');
      await Promise.race([closed, sleep(2000)]);
      ws.terminate();
    }
    return this.#pending.size;
  }

  #payload(seq: number): string {
    return `${this.#opts.id} ${seq} ${this.#padding}`;
  }

  #transmit(seq: number, pending: Pending): void {
    if (pending.transmissions > 0) this.stats.resent++;
    pending.transmissions++;
    this.#ws!.send(this.#payload(seq));
  }

  #connect(): void {
    if (this.#stopped) return;
    const url = this.#opts.urls[this.#urlIndex % this.#opts.urls.length]!;
    this.#urlIndex++;
    const headers: Record<string, string> = { ...this.#opts.headers };
    if (this.#cookies.size > 0) headers.cookie = [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const ws = new WebSocket(url, { headers, handshakeTimeout: this.#opts.handshakeTimeoutMs, perMessageDeflate: false });
    this.#ws = ws;
    let opened = false;
    let failedStatus: number | undefined;

    ws.on('upgrade', (res: IncomingMessage) => {
      this.#keepCookies(res.headers['set-cookie']);
      const servedBy = res.headers['x-served-by'];
      this.servedBy = typeof servedBy === 'string' ? servedBy : undefined;
    });
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      failedStatus = res.statusCode ?? 0;
      this.#keepCookies(res.headers['set-cookie']);
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => {
      // Reported through 'close'; without a listener ws would throw.
    });
    ws.on('open', () => {
      opened = true;
      this.#attempt = 0;
      this.#lastEchoSeq = 0;
      if (this.#opened) this.stats.reconnects++;
      this.#opened = true;
      if (this.#lostAt !== undefined) this.stats.reconnectGapsMs.push(Date.now() - this.#lostAt);
      this.#lostAt = undefined;
      this.emit('open', this.servedBy);
      // Resend what the previous connection never echoed, then what was queued while down, in order.
      for (const [seq, pending] of this.#pending) this.#transmit(seq, pending);
    });
    ws.on('message', (data: Buffer) => this.#onEcho(data.toString()));
    ws.on('close', (code: number) => {
      if (this.#ws !== ws) return;
      if (!opened) {
        this.stats.failedUpgrades++;
        const status = failedStatus ?? 0;
        this.stats.failedUpgradeStatuses[status] = (this.stats.failedUpgradeStatuses[status] ?? 0) + 1;
        this.emit('upgrade-failed', status);
        this.#lostAt ??= Date.now();
        this.#scheduleReconnect();
        return;
      }
      this.stats.closeCodes[code] = (this.stats.closeCodes[code] ?? 0) + 1;
      if (code === 1006) this.stats.abnormalCloses++;
      this.emit('close', code);
      if (this.#stopped) return;
      this.#lostAt = Date.now();
      if (RECONNECT_CODES.has(code)) {
        this.#scheduleReconnect();
      } else {
        this.#stopped = true;
        this.emit('fatal', code);
      }
    });
  }

  #onEcho(text: string): void {
    const space = text.indexOf(' ');
    const second = text.indexOf(' ', space + 1);
    const seq = Number(text.slice(space + 1, second));
    if (text.slice(0, space) !== this.#opts.id || !Number.isSafeInteger(seq) || text !== this.#payload(seq)) {
      this.stats.corrupted++;
      return;
    }
    const pending = this.#pending.get(seq);
    if (pending === undefined) {
      this.stats.duplicated++;
      return;
    }
    this.#pending.delete(seq);
    this.stats.echoed++;
    this.stats.slowestEchoMs = Math.max(this.stats.slowestEchoMs, performance.now() - pending.sentAt);
    if (seq <= this.#lastEchoSeq) this.stats.outOfOrder++;
    this.#lastEchoSeq = seq;
  }

  // Full jitter (a random delay up to the exponential ceiling): after a 1012
  // a whole pod's clients reconnect spread out, not in one herd.
  #scheduleReconnect(): void {
    if (this.#stopped) return;
    const ceiling = Math.min(this.#opts.maxBackoffMs, this.#opts.initialBackoffMs * 2 ** this.#attempt);
    this.#attempt++;
    this.#retryTimer = setTimeout(() => this.#connect(), this.#opts.random() * ceiling);
  }

  #keepCookies(setCookie: string[] | undefined): void {
    for (const line of setCookie ?? []) {
      const pair = line.split(';', 1)[0] ?? '';
      const eq = pair.indexOf('=');
      if (eq > 0) this.#cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
  }
}

/** Percentile (0–100) of a list of numbers, nearest-rank; 0 for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
