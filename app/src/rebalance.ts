// Rebalancing after scale-up. WebSockets live long: after the HPA adds pods,
// the existing sockets stay on the old pods, which stay hot while the new ones
// idle (apache/apisix#12217, launchdarkly/ld-relay#92). A pod that holds more
// than its fair share sheds the excess gradually: it closes a few random
// sockets at a time with 1013 (try again later), which the reference client
// treats like 1012, and answers new upgrades with 503 meanwhile, so the
// Ingress retries them on another pod (with cookie affinity,
// session-cookie-change-on-failure moves the client's cookie along).
import type { Admission } from './admission.js';
import type { RebalanceConfig } from './config.js';
import type { FleetPod } from './kube-api.js';
import type { Logger } from './logger.js';
import { randomSample } from './sample.js';
import { OPEN, TRY_AGAIN_LATER, type ClosableSocket, type SocketSet } from './sockets.js';

/** Each interval's budget leaves in up to this many batches at random moments of the interval. */
const BATCHES_PER_INTERVAL = 5;

/** balanced: nothing to do; shedding: above share × (1 + tolerance), closing down to the share. */
export type RebalanceState = 'balanced' | 'shedding';

export interface FairShare {
  readonly source: RebalanceSource;
  /** Connections this pod should hold; 0 when unknown. */
  readonly share: number;
  /** Our own report in the same snapshot as the share (source "fleet", once we have reported). */
  readonly reported?: number;
}

/** Where the fair share comes from: the fleet's mean, the configured target, or nowhere (off). */
export const REBALANCE_SOURCES = ['fleet', 'target', 'none'] as const;
export type RebalanceSource = (typeof REBALANCE_SOURCES)[number];

/** The rebalancer's numbers, read by the metrics at scrape time. */
export class RebalanceStatus {
  readonly sources = REBALANCE_SOURCES;
  source: RebalanceSource = 'none';
  /** Connections this pod should hold; 0 when unknown. */
  share = 0;
  /** True while the pod sheds and refuses upgrades. */
  shedding = false;
  /** Connections closed with 1013 so far. */
  shed = 0;
}

/** The pods of our Deployment with their reported connection counts (kube-api.ts). */
export interface FleetView {
  listFleet(selector: string): Promise<FleetPod[] | undefined>;
}

export interface RebalancerOptions {
  readonly sockets: SocketSet;
  /** Read: no rounds while the pod drains. Set: upgrades refused while shedding. */
  readonly admission: Pick<Admission, 'accepting' | 'rebalancing'>;
  readonly config: RebalanceConfig;
  /** Our own pod, to find our report among the fleet's. */
  readonly podName: string;
  readonly fleet?: FleetView | undefined;
  readonly logger: Logger;
  /** Called just before each 1013, so an app can send its own goodbye first (graceful.ts's 'closing' event). */
  readonly onClosing?: (ws: ClosableSocket, code: number) => void;
  readonly now?: () => number;
  readonly random?: () => number;
}

/**
 * Sheds connections above the fair share after a scale-up. `start` runs a
 * round every interval; `stop` ends it for good (the drain calls it);
 * `status` holds the numbers the metrics show.
 */
export class Rebalancer {
  readonly status = new RebalanceStatus();
  #state: RebalanceState = 'balanced';
  readonly #o: RebalancerOptions;
  readonly #config: RebalanceConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  #timer: NodeJS.Timeout | undefined;
  readonly #batches = new Set<NodeJS.Timeout>();
  #cooldownUntil = 0;
  #busy = false;
  #shedThisEpisode = 0;
  #aboveLastRound = false;
  #lastSource: RebalanceSource | undefined;

  constructor(options: RebalancerOptions) {
    this.#o = options;
    this.#config = options.config;
    this.#log = options.logger.child({ module: 'rebalance' });
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  get state(): RebalanceState {
    return this.#state;
  }

  start(): void {
    if (!this.#config.enabled) {
      this.#log.info('rebalancing off (REBALANCE=off)');
      return;
    }
    this.#timer = setInterval(() => void this.tick(), this.#config.intervalSeconds * 1000).unref();
  }

  /** Stops for good (the drain takes over): no more shedding, upgrades no longer refused for balance. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const batch of this.#batches) clearTimeout(batch);
    this.#batches.clear();
    this.#setState('balanced');
  }

  /**
   * One round: learn the share, decide, and schedule this interval's closes.
   * Shedding starts after two rounds in a row above share × (1 + tolerance)
   * and stops at the share. Exposed for tests.
   */
  async tick(): Promise<void> {
    if (this.#busy || !this.#o.admission.accepting) return;
    this.#busy = true;
    try {
      const { source, share, reported } = await this.fairShare();
      this.status.source = source;
      this.status.share = share;
      if (source !== this.#lastSource) {
        this.#log.info(
          { source, share },
          source === 'none' ? 'rebalancing idle: no fleet view and no REBALANCE_TARGET_CONNECTIONS' : `fair share from ${source}`,
        );
        this.#lastSource = source;
      }
      const own = this.#o.sockets.size;
      const now = this.#now();
      if (this.#state === 'balanced') {
        // Above only if both our live count and our report in the share's
        // snapshot are: while clients connect to every pod (a deploy, a
        // reconnect storm) the reports lag the live counts everywhere, so the
        // live count alone would exceed the stale share on every pod at once.
        // Two rounds in a row: one stale report or a burst of connects is no
        // reason to move anyone.
        const ours = reported === undefined ? own : Math.min(own, reported);
        const above = share > 0 && ours > share * (1 + this.#config.tolerance) && now >= this.#cooldownUntil;
        if (above && this.#aboveLastRound) {
          this.#log.info({ connections: own, share, source }, 'above the fair share: shedding the excess and refusing new upgrades');
          this.#shedThisEpisode = 0;
          this.#setState('shedding');
        }
        this.#aboveLastRound = above;
      }
      if (this.#state === 'shedding') {
        if (share === 0 || own <= share) {
          this.#log.info({ connections: own, share, shed: this.#shedThisEpisode }, 'back at the fair share: shedding stopped');
          this.#cooldownUntil = now + this.#config.cooldownSeconds * 1000;
          this.#setState('balanced');
        } else {
          this.#scheduleBatches(Math.min(own - share, Math.max(1, Math.floor(this.#config.rate * own))), share);
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /** The mean of the fleet when we can see it, else the configured target, else unknown. */
  async fairShare(): Promise<FairShare> {
    const own = this.#o.sockets.size;
    const selector = this.#config.podSelector;
    if (selector !== undefined && this.#o.fleet !== undefined) {
      const pods = await this.#o.fleet.listFleet(selector);
      if (pods !== undefined) {
        // The mean of the serving pods' pod-deletion-cost reports, ours
        // included: all equally stale, so their sum is the fleet's total as of
        // a moment ago (clients only move between pods). Mixing our live count
        // with the others' old reports would count moved clients twice or not
        // at all. A pod that just started reports 0 until its first patch.
        const serving = pods.filter((p) => p.serving);
        const mine = serving.find((p) => p.name === this.#o.podName);
        const counts = serving.map((p) => p.connections);
        if (mine === undefined) counts.push(own);
        const total = counts.reduce((a, b) => a + b, 0);
        const share = total > 0 ? Math.ceil(total / counts.length) : 0;
        return mine === undefined ? { source: 'fleet', share } : { source: 'fleet', share, reported: mine.connections };
      }
    }
    if (this.#config.targetConnections > 0) return { source: 'target', share: this.#config.targetConnections };
    return { source: 'none', share: 0 };
  }

  #setState(state: RebalanceState): void {
    this.#state = state;
    this.#o.admission.rebalancing = state === 'shedding';
    this.status.shedding = state === 'shedding';
  }

  // The interval's budget leaves in a few batches at random moments, so the
  // reconnects do not arrive at the other pods as one herd.
  #scheduleBatches(budget: number, share: number): void {
    const batches = Math.min(budget, BATCHES_PER_INTERVAL);
    const intervalMs = this.#config.intervalSeconds * 1000;
    for (let i = 0; i < batches; i++) {
      const size = Math.floor(budget / batches) + (i < budget % batches ? 1 : 0);
      const timer = setTimeout(() => {
        this.#batches.delete(timer);
        this.#shed(size, share);
      }, this.#random() * intervalMs).unref();
      this.#batches.add(timer);
    }
  }

  #shed(count: number, share: number): void {
    if (this.#state !== 'shedding') return;
    const open = this.#o.sockets.snapshot().filter((ws) => ws.readyState === OPEN);
    // Never below the share, whatever happened since the budget was set.
    const n = Math.min(count, open.length - share);
    for (const ws of randomSample(open, n, this.#random)) {
      this.#o.onClosing?.(ws, TRY_AGAIN_LATER);
      ws.close(TRY_AGAIN_LATER, 'rebalancing: reconnect');
      this.status.shed++;
      this.#shedThisEpisode++;
    }
  }
}
