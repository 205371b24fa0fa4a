// Load from the reference client: C clients through the proxy, each sending
// messages with ids at a set rate for the whole run, reconnecting and
// resending as app/src/client.ts does. The number of clients can change
// while it runs (resize): new clients connect, leaving ones finish their
// echoes and close with 1000, as users come and go.
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
  /** Distinct clients over the run (with resize, more than were connected at any one time). */
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
  /** Failed upgrades by HTTP status (0: no response); absent in totals merged from elsewhere. */
  readonly failedUpgradeStatuses?: Record<string, number>;
  readonly reconnects: number;
  readonly closeCodes: Record<string, number>;
  readonly reconnectGapMs: { readonly p50: number; readonly p99: number; readonly max: number; readonly count: number };
  /** The longest any message waited for its echo, ms. */
  readonly slowestEchoMs: number;
}

/** A close a client saw, when (ms since the epoch) and with which code. */
export interface ClientClose {
  readonly at: number;
  readonly code: number;
}

const DEFAULT_TICK_MS = 100;

export class Load {
  /** Every client of the run, those that left included. */
  readonly clients: EchoClient[] = [];
  /** Every close any client saw, in order (1000 for a client that left). */
  readonly closes: ClientClose[] = [];
  /** Every failed upgrade any client saw: when, and the HTTP status (0: no response). */
  readonly failedUpgrades: { readonly at: number; readonly status: number }[] = [];
  /** The clients that take part now (connected, or reconnecting). */
  #active: EchoClient[] = [];
  #timer: NodeJS.Timeout | undefined;
  #next = 0;
  #credit = 0;
  #resizing: Promise<void> = Promise.resolve();
  #lostLeaving = 0;

  constructor(readonly options: LoadOptions) {
    this.#active = this.#create(options.clients);
  }

  /** How many clients take part now. */
  get size(): number {
    return this.#active.length;
  }

  /** Messages of clients that left (resize) still unechoed after their settle time: sent while they could not reconnect. */
  get lostByLeavingClients(): number {
    return this.#lostLeaving;
  }

  /** How many of them are connected now (the others are reconnecting). */
  get connected(): number {
    return this.#active.reduce((n, c) => n + (c.connected ? 1 : 0), 0);
  }

  /** Opens every client (a few per tick) and resolves when all are connected. */
  async open(): Promise<void> {
    await this.#open(this.#active);
  }

  /**
   * Changes the number of clients to `clients`: new ones connect (a few per
   * tick) and take part at once; leaving ones, chosen at random, stop
   * sending, wait up to `settleMs` for their echoes and close with 1000.
   * Resolves when the new ones are connected and the leaving ones closed;
   * calls run one after another.
   */
  resize(clients: number, settleMs = 5000): Promise<void> {
    const resized = this.#resizing.then(async () => {
      const change = clients - this.#active.length;
      if (change > 0) {
        const fresh = this.#create(change);
        this.#active.push(...fresh);
        await this.#open(fresh);
      } else if (change < 0) {
        const leaving = new Set(sample(this.#active, -change));
        this.#active = this.#active.filter((c) => !leaving.has(c));
        const lost = await Promise.all([...leaving].map((c) => c.stop(settleMs)));
        this.#lostLeaving += lost.reduce((a, b) => a + b, 0);
      }
    });
    this.#resizing = resized.catch(() => {});
    return resized;
  }

  /** Sends rate × clients messages a second (the clients taking part at each tick), round-robin, on one timer. */
  startSending(): void {
    const tickMs = this.options.tickMs ?? DEFAULT_TICK_MS;
    this.#timer = setInterval(() => {
      const active = this.#active;
      if (active.length === 0) return;
      this.#credit += (this.options.rate * active.length * tickMs) / 1000;
      for (; this.#credit >= 1; this.#credit--) {
        this.#next %= active.length;
        active[this.#next]!.send();
        this.#next++;
      }
    }, tickMs);
  }

  /** Stops sending and closes every client at once (a run that failed part-way). */
  async abort(): Promise<void> {
    clearInterval(this.#timer);
    await this.#resizing;
    await Promise.all(this.clients.map((c) => c.stop(0)));
  }

  /** Stops sending, waits for outstanding echoes, closes every client, and totals what they saw. */
  async finish(settleMs = 5000): Promise<LoadTotals> {
    clearInterval(this.#timer);
    await this.#resizing;
    await Promise.all(this.#active.map((c) => c.stop(settleMs)));
    return this.totals();
  }

  #create(count: number): EchoClient[] {
    const { url, paddingBytes } = this.options;
    const fresh = Array.from({ length: count }, (_, i) => {
      const id = `c${this.clients.length + i}`;
      const client = new EchoClient({ urls: [url.replaceAll('{id}', id)], id, paddingBytes: paddingBytes ?? 32 });
      client.on('close', (code: number) => this.closes.push({ at: Date.now(), code }));
      client.on('upgrade-failed', (status: number) => this.failedUpgrades.push({ at: Date.now(), status }));
      return client;
    });
    this.clients.push(...fresh);
    return fresh;
  }

  async #open(clients: readonly EchoClient[]): Promise<void> {
    const perTick = this.options.openPerTick ?? 50;
    const opened: Promise<unknown>[] = [];
    for (let i = 0; i < clients.length; i += perTick) {
      for (const client of clients.slice(i, i + perTick)) opened.push(once(client.start(), 'open'));
      await sleep(10);
    }
    await Promise.all(opened);
  }

  /** What every client saw so far; `lost` counts what is still unechoed (after finish: what never will be). */
  totals(lost = this.clients.reduce((sum, c) => sum + c.unacknowledged, 0)): LoadTotals {
    const sum = (key: 'sent' | 'echoed' | 'resent' | 'duplicated' | 'corrupted' | 'outOfOrder' | 'abnormalCloses' | 'failedUpgrades' | 'reconnects'): number =>
      this.clients.reduce((total, c) => total + c.stats[key], 0);
    const gaps = this.clients.flatMap((c) => c.stats.reconnectGapsMs);
    const closeCodes: Record<string, number> = {};
    const failedUpgradeStatuses: Record<string, number> = {};
    for (const client of this.clients) {
      for (const [code, count] of Object.entries(client.stats.closeCodes)) closeCodes[code] = (closeCodes[code] ?? 0) + count;
      for (const [status, count] of Object.entries(client.stats.failedUpgradeStatuses))
        failedUpgradeStatuses[status] = (failedUpgradeStatuses[status] ?? 0) + count;
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
      failedUpgradeStatuses,
      reconnects: sum('reconnects'),
      closeCodes,
      reconnectGapMs: { p50: percentile(gaps, 50), p99: percentile(gaps, 99), max: gaps.length ? Math.max(...gaps) : 0, count: gaps.length },
      slowestEchoMs: Math.max(0, ...this.clients.map((c) => c.stats.slowestEchoMs)),
    };
  }
}

/** `count` distinct items of `items`, at random. */
function sample<T>(items: readonly T[], count: number): T[] {
  const pool = [...items];
  for (let i = 0; i < Math.min(count, pool.length); i++) {
    const j = i + Math.floor(Math.random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, count);
}
