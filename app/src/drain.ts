// Graceful drain on SIGTERM: stop taking sockets, close the open ones with
// 1012 spread over DRAIN_WINDOW_SECONDS so clients reconnect to other pods
// gradually, terminate whatever is left at the deadline, exit 0.
// The sequence is the drain contract of DESIGN.md.
import type { EchoSocket } from './connections.js';
import type { ClusterIntegration } from './kube.js';
import type { Service } from './service.js';
import { randomSample } from './sample.js';

/** serving → draining (closing sockets over the window) → closing (waiting for handshakes) → exited. */
export const DRAIN_STATES = ['serving', 'draining', 'closing', 'exited'] as const;
export type DrainState = (typeof DRAIN_STATES)[number];

/** RFC 6455 §7.4.1 / IANA registry: 1012 "Service Restart", the client should reconnect. */
export const SERVICE_RESTART = 1012;

/** The schedule runs in batches on one timer, never one timer per socket. */
const TICK_MS = 50;
/** Progress lines at most this often. */
const PROGRESS_LOG_MS = 1000;
/** The drain-end Event may hold up the exit at most this long. */
const FINAL_EVENT_TIMEOUT_MS = 500;
/** After a second signal, handshakes get at most this long. */
const FAST_CLOSE_TIMEOUT_MS = 1000;

export interface DrainSummary {
  readonly connections: number;
  readonly closeFramesSent: number;
  readonly closedGracefully: number;
  readonly terminated: number;
  readonly durationMs: number;
}

export interface DrainDeps {
  /** process.exit in production; tests pass a recorder. */
  exit(code: number): void;
  /** Stopped when the drain begins: it must not close sockets or refuse upgrades on its own any more. */
  rebalancer?: { stop(): void };
  now?: () => number;
  random?: () => number;
}

export class DrainController {
  #state: DrainState = 'serving';
  readonly #service: Service;
  readonly #cluster: ClusterIntegration;
  readonly #exit: (code: number) => void;
  readonly #rebalancer: { stop(): void } | undefined;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #log;
  #queue: EchoSocket[] = [];
  #sent = 0;
  #startedAt = 0;
  #windowMs = 0;
  #deadline = 0;
  #lastProgressLog = 0;
  #timer: NodeJS.Timeout | undefined;
  #resolveFinished!: (summary: DrainSummary) => void;
  /** Resolves once the drain is over, just before exit(0) is called. */
  readonly finished = new Promise<DrainSummary>((resolve) => (this.#resolveFinished = resolve));

  constructor(service: Service, cluster: ClusterIntegration, deps: DrainDeps) {
    this.#service = service;
    this.#cluster = cluster;
    this.#exit = deps.exit;
    this.#rebalancer = deps.rebalancer;
    this.#now = deps.now ?? Date.now;
    this.#random = deps.random ?? Math.random;
    this.#log = service.logger.child({ module: 'drain' });
  }

  get state(): DrainState {
    return this.#state;
  }

  /** SIGTERM/SIGINT: the first starts the drain, a second closes everything at once. Safe to call any number of times. */
  onSignal(signal: string): void {
    if (this.#state === 'serving') this.#begin(signal);
    else if (this.#state !== 'exited') this.#hurry(signal);
  }

  #setState(state: DrainState): void {
    this.#state = state;
    this.#service.counters.drainState = state;
  }

  #begin(signal: string): void {
    const { config, connections, admission, counters } = this.#service;
    this.#setState('draining');
    // Readiness 503 and upgrades 503 + Retry-After, from this instant.
    admission.accepting = false;
    this.#cluster.stopDeletionCost();
    this.#rebalancer?.stop();
    this.#startedAt = this.#now();
    this.#lastProgressLog = this.#startedAt;
    this.#windowMs = config.drainWindowSeconds * 1000;
    this.#deadline = this.#startedAt + this.#windowMs + config.drainCloseTimeoutSeconds * 1000;
    const sockets = connections.snapshot();
    this.#queue = randomSample(sockets, sockets.length, this.#random);
    counters.drainConnections = this.#queue.length;
    this.#log.info(
      { signal, connections: this.#queue.length, windowSeconds: config.drainWindowSeconds, closeTimeoutSeconds: config.drainCloseTimeoutSeconds },
      'drain started',
    );
    // Not awaited: an API server that is slow must not slow the drain.
    void this.#cluster.podEvent('DrainStarted', `closing ${this.#queue.length} WebSocket connections with 1012 over ${config.drainWindowSeconds}s (${signal})`);
    this.#timer = setInterval(() => this.#tick(), TICK_MS).unref();
    this.#tick();
  }

  #hurry(signal: string): void {
    this.#log.info({ signal, open: this.#service.connections.size }, 'second signal: closing every connection now');
    this.#closeDue(this.#queue.length);
    this.#deadline = Math.min(this.#deadline, this.#now() + Math.min(FAST_CLOSE_TIMEOUT_MS, this.#service.config.drainCloseTimeoutSeconds * 1000));
    this.#tick();
  }

  #tick(): void {
    if (this.#state === 'exited') return;
    const now = this.#now();
    const elapsed = now - this.#startedAt;
    if (this.#state === 'draining') {
      // Evenly spread: by time t, ceil(n · t / window) sockets have had their close frame.
      const n = this.#queue.length;
      const due = this.#windowMs === 0 ? n : Math.min(n, Math.ceil((n * elapsed) / this.#windowMs));
      this.#closeDue(due);
    }
    const open = this.#service.connections.size;
    if (now - this.#lastProgressLog >= PROGRESS_LOG_MS) {
      this.#lastProgressLog = now;
      this.#log.info({ state: this.#state, closeFramesSent: this.#sent, open, elapsedMs: elapsed }, 'drain progress');
    }
    if (open === 0) {
      void this.#finish();
    } else if (now >= this.#deadline) {
      // Peers that never answered our close frame (or vanished without FIN).
      for (const ws of this.#service.connections.snapshot()) {
        ws.terminate();
        this.#service.counters.drainTerminated++;
      }
      void this.#finish();
    }
  }

  /** Sends 1012 to the queued sockets up to index `due`. */
  #closeDue(due: number): void {
    const counters = this.#service.counters;
    while (this.#sent < due) {
      const ws = this.#queue[this.#sent++]!;
      // Echoes already queued on this socket go out before the close frame: ws writes in order.
      if (ws.readyState === ws.OPEN) {
        ws.close(SERVICE_RESTART, 'service restart');
        counters.drainCloseFramesSent++;
      }
    }
    if (this.#sent === this.#queue.length && this.#state === 'draining') this.#setState('closing');
  }

  async #finish(): Promise<void> {
    if (this.#state === 'exited') return;
    clearInterval(this.#timer);
    this.#setState('exited');
    const counters = this.#service.counters;
    counters.drainClosedGracefully = Math.max(0, counters.drainCloseFramesSent - counters.drainTerminated);
    const summary: DrainSummary = {
      connections: counters.drainConnections,
      closeFramesSent: counters.drainCloseFramesSent,
      closedGracefully: counters.drainClosedGracefully,
      terminated: counters.drainTerminated,
      durationMs: this.#now() - this.#startedAt,
    };
    this.#log.info(summary, 'drain finished');
    await this.#cluster.podEvent(
      'DrainFinished',
      `closed ${summary.closedGracefully} connections gracefully and terminated ${summary.terminated} in ${(summary.durationMs / 1000).toFixed(1)}s`,
      FINAL_EVENT_TIMEOUT_MS,
    );
    this.#resolveFinished(summary);
    this.#exit(0);
  }
}
