// Load from the reference client: C clients through the proxy, each sending
// messages with ids at a set rate for the whole run, reconnecting and
// resending as app/src/client.ts does.
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoClient, percentile } from '../../app/src/client.js';

export interface LoadOptions {
  /** Where every client connects; `{id}` is replaced by the client's id (a room of its own in the example app). */
  readonly url: string;
  readonly clients: number;
  /** Messages per second per client. */
  readonly rate: number;
  readonly paddingBytes?: number;
  /** Clients opened per 10 ms while starting, so the start is not one burst. */
  readonly openPerTick?: number;
  /** How often the sending timer fires (default 100 ms); short runs want a shorter tick. */
  readonly tickMs?: number;
}

export interface LoadTotals {
  readonly clients: number;
  readonly sent: number;
  readonly echoed: number;
  readonly lost: number;
  /** Transmissions repeated after a reconnect: what a client without resend would have lost. */
  readonly resent: number;
  readonly duplicated: number;
  readonly corrupted: number;
  readonly outOfOrder: number;
  readonly abnormalCloses: number;
  readonly failedUpgrades: number;
  readonly reconnects: number;
  readonly closeCodes: Record<string, number>;
  readonly reconnectGapMs: { readonly p50: number; readonly p99: number; readonly max: number; readonly count: number };
  /** The longest any message waited for its echo, ms. */
  readonly slowestEchoMs: number;
}

const DEFAULT_TICK_MS = 100;

export class Load {
  readonly clients: EchoClient[];
  #timer: NodeJS.Timeout | undefined;
  #next = 0;
  #credit = 0;

  constructor(readonly options: LoadOptions) {
    this.clients = Array.from(
      { length: options.clients },
      (_, i) => new EchoClient({ urls: [options.url.replaceAll('{id}', `c${i}`)], id: `c${i}`, paddingBytes: options.paddingBytes ?? 32 }),
    );
  }

  /** Opens every client (a few per tick) and resolves when all are connected. */
  async open(): Promise<void> {
    const perTick = this.options.openPerTick ?? 50;
    const opened: Promise<unknown>[] = [];
    for (let i = 0; i < this.clients.length; i += perTick) {
      for (const client of this.clients.slice(i, i + perTick)) opened.push(once(client.start(), 'open'));
      await sleep(10);
    }
    await Promise.all(opened);
  }

  /** Sends rate × clients messages a second, round-robin over the clients, on one timer. */
  startSending(): void {
    const tickMs = this.options.tickMs ?? DEFAULT_TICK_MS;
    const perTick = (this.options.rate * this.clients.length * tickMs) / 1000;
    this.#timer = setInterval(() => {
      this.#credit += perTick;
      for (; this.#credit >= 1; this.#credit--) {
        this.clients[this.#next]!.send();
        this.#next = (this.#next + 1) % this.clients.length;
      }
    }, tickMs);
  }

  /** Stops sending and closes every client at once (a run that failed part-way). */
  async abort(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.clients.map((c) => c.stop(0)));
  }

  /** Stops sending, waits for outstanding echoes, closes every client, and totals what they saw. */
  async finish(settleMs = 5000): Promise<LoadTotals> {
    clearInterval(this.#timer);
    const lost = (await Promise.all(this.clients.map((c) => c.stop(settleMs)))).reduce((a, b) => a + b, 0);
    return this.totals(lost);
  }

  totals(lost = this.clients.reduce((sum, c) => sum + c.unacknowledged, 0)): LoadTotals {
    const sum = (key: 'sent' | 'echoed' | 'resent' | 'duplicated' | 'corrupted' | 'outOfOrder' | 'abnormalCloses' | 'failedUpgrades' | 'reconnects'): number =>
      this.clients.reduce((total, c) => total + c.stats[key], 0);
    const gaps = this.clients.flatMap((c) => c.stats.reconnectGapsMs);
    const closeCodes: Record<string, number> = {};
    for (const client of this.clients) {
      for (const [code, count] of Object.entries(client.stats.closeCodes)) closeCodes[code] = (closeCodes[code] ?? 0) + count;
    }
    return {
      clients: this.clients.length,
      sent: sum('sent'),
      echoed: sum('echoed'),
      lost,
      resent: sum('resent'),
      duplicated: sum('duplicated'),
      corrupted: sum('corrupted'),
      outOfOrder: sum('outOfOrder'),
      abnormalCloses: sum('abnormalCloses'),
      failedUpgrades: sum('failedUpgrades'),
      reconnects: sum('reconnects'),
      closeCodes,
      reconnectGapMs: { p50: percentile(gaps, 50), p99: percentile(gaps, 99), max: gaps.length ? Math.max(...gaps) : 0, count: gaps.length },
      slowestEchoMs: Math.max(0, ...this.clients.map((c) => c.stats.slowestEchoMs)),
    };
  }
}
