// Graceful drain on SIGTERM: stop taking sockets, close the open ones with
// 1012 spread over the drain window so clients reconnect to other pods
// gradually, terminate whatever is left at the deadline, exit 0. The steps
// are the drain contract of docs/ARCHITECTURE.md.
import type { Admission } from './admission.js';
import type { Logger } from './logger.js';
import { randomSample } from './sample.js';
import { OPEN, SERVICE_RESTART, type ClosableSocket, type SocketSet } from './sockets.js';

/** serving → draining (closing sockets over the window) → closing (waiting for handshakes) → exited. */
export const DRAIN_STATES = ['serving', 'draining', 'closing', 'exited'] as const;
export type DrainState = (typeof DRAIN_STATES)[number];

/** The schedule runs in batches on one timer, never one timer per socket. */
export const TICK_MS = 50;
/** Progress lines at most this often. */
const PROGRESS_LOG_MS = 1000;
/** The drain-end Event may hold up the exit at most this long. */
const FINAL_EVENT_TIMEOUT_MS = 500;
/** After a second signal, handshakes get at most this long. */
const FAST_CLOSE_TIMEOUT_MS = 1000;

/** The drain's numbers, read by the metrics at scrape time. */
export class DrainProgress {
  readonly states = DRAIN_STATES;
  state: DrainState = 'serving';
  /** Connections open when the drain began. */
  connections = 0;
  closeFramesSent = 0;
  /** Sockets that finished the close handshake after our 1012, before the deadline. */
  closedGracefully = 0;
  /** Sockets still open at the deadline, terminated without a handshake. */
  terminated = 0;
}

export interface DrainSummary {
  readonly connections: number;
  readonly closeFramesSent: number;
  readonly closedGracefully: number;
  readonly terminated: number;
  readonly durationMs: number;
}

/** Kubernetes Events on the pod (kube-api.ts): resolve within their timeout, never reject. */
export interface PodEvents {
  podEvent(reason: string, message: string, timeoutMs?: number): Promise<void>;
}

export interface DrainOptions {
  readonly sockets: SocketSet;
  /** Set to not accepting when the drain begins: readiness 503, upgrades 503. */
  readonly admission: Pick<Admission, 'accepting'>;
  readonly windowSeconds: number;
  readonly closeTimeoutSeconds: number;
  readonly logger: Logger;
  /** process.exit in production; tests pass a recorder. */
  readonly exit: (code: number) => void;
  readonly events?: PodEvents | undefined;
  /** Called once as the drain begins: whatever else closes sockets or refuses upgrades must stop (the rebalancer, the deletion-cost reporter). */
  readonly onBegin?: (reason: string) => void;
  /** Called just before each 1012, so an app can send its own goodbye first (graceful.ts's 'closing' event). */
  readonly onClosing?: (ws: ClosableSocket, code: number) => void;
  /** Called with the summary once the drain is over, just before `exit(0)`. */
  readonly onFinished?: (summary: DrainSummary) => void;
  readonly now?: () => number;
  readonly random?: () => number;
}

/**
 * The drain state machine. `onSignal` on SIGTERM/SIGINT; `finished` resolves
 * with the summary just before `exit(0)`; `progress` holds the numbers the
 * metrics show.
 */
export class DrainController {
  readonly progress = new DrainProgress();
  readonly #o: DrainOptions;
  readonly #now: () => number;
  readonly #log: Logger;
  #queue: ClosableSocket[] = [];
  /** Queue positions handed a close so far (sockets already closed get none). */
  #sent = 0;
  #startedAt = 0;
  #windowMs = 0;
  #deadline = 0;
  #lastProgressLog = 0;
  #timer: NodeJS.Timeout | undefined;
  #resolveFinished!: (summary: DrainSummary) => void;
  /** Resolves once the drain is over, just before exit(0) is called. */
  readonly finished = new Promise<DrainSummary>((resolve) => (this.#resolveFinished = resolve));

  constructor(options: DrainOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#log = options.logger.child({ module: 'drain' });
  }

  get state(): DrainState {
    return this.progress.state;
  }

  /** SIGTERM/SIGINT: the first starts the drain, a second closes everything at once. Safe to call any number of times. */
  onSignal(signal: string): void {
    if (this.state === 'serving') this.#begin(signal);
    else if (this.state !== 'exited') this.#hurry(signal);
  }

  #begin(signal: string): void {
    const { windowSeconds, closeTimeoutSeconds } = this.#o;
    this.progress.state = 'draining';
    // Readiness 503 and upgrades 503 + Retry-After, from this instant.
    this.#o.admission.accepting = false;
    this.#o.onBegin?.(signal);
    this.#startedAt = this.#now();
    this.#lastProgressLog = this.#startedAt;
    this.#windowMs = windowSeconds * 1000;
    this.#deadline = this.#startedAt + this.#windowMs + closeTimeoutSeconds * 1000;
    const sockets = this.#o.sockets.snapshot();
    this.#queue = randomSample(sockets, sockets.length, this.#o.random ?? Math.random);
    this.progress.connections = this.#queue.length;
    this.#log.info({ signal, connections: this.#queue.length, windowSeconds, closeTimeoutSeconds }, 'drain started');
    // Not awaited: an API server that is slow must not slow the drain.
    void this.#o.events?.podEvent('DrainStarted', `closing ${this.#queue.length} WebSocket connections with 1012 over ${windowSeconds}s (${signal})`);
    this.#timer = setInterval(() => this.#tick(), TICK_MS).unref();
    this.#tick();
  }

  #hurry(signal: string): void {
    this.#log.info({ signal, open: this.#o.sockets.size }, 'second signal: closing every connection now');
    this.#closeDue(this.#queue.length);
    this.#deadline = Math.min(this.#deadline, this.#now() + Math.min(FAST_CLOSE_TIMEOUT_MS, this.#o.closeTimeoutSeconds * 1000));
    this.#tick();
  }

  #tick(): void {
    if (this.state === 'exited') return;
    const now = this.#now();
    const elapsed = now - this.#startedAt;
    if (this.state === 'draining') {
      // Evenly spread: by time t, ceil(n · t / window) sockets have had their close frame.
      const n = this.#queue.length;
      this.#closeDue(this.#windowMs === 0 ? n : Math.min(n, Math.ceil((n * elapsed) / this.#windowMs)));
    }
    const open = this.#o.sockets.size;
    if (now - this.#lastProgressLog >= PROGRESS_LOG_MS) {
      this.#lastProgressLog = now;
      this.#log.info({ state: this.state, closeFramesSent: this.progress.closeFramesSent, open, elapsedMs: elapsed }, 'drain progress');
    }
    if (open === 0) {
      void this.#finish();
    } else if (now >= this.#deadline) {
      // Peers that never answered our close frame (or vanished without FIN).
      for (const ws of this.#o.sockets.snapshot()) {
        ws.terminate();
        this.progress.terminated++;
      }
      void this.#finish();
    }
  }

  /** Sends 1012 to the queued sockets up to index `due`. */
  #closeDue(due: number): void {
    while (this.#sent < due) {
      const ws = this.#queue[this.#sent++]!;
      // Echoes already queued on this socket go out before the close frame: ws writes in order.
      if (ws.readyState === OPEN) {
        this.#o.onClosing?.(ws, SERVICE_RESTART);
        ws.close(SERVICE_RESTART, 'service restart');
        this.progress.closeFramesSent++;
      }
    }
    if (this.#sent === this.#queue.length && this.state === 'draining') this.progress.state = 'closing';
  }

  async #finish(): Promise<void> {
    if (this.state === 'exited') return;
    clearInterval(this.#timer);
    const progress = this.progress;
    progress.state = 'exited';
    progress.closedGracefully = Math.max(0, progress.closeFramesSent - progress.terminated);
    const summary: DrainSummary = {
      connections: progress.connections,
      closeFramesSent: progress.closeFramesSent,
      closedGracefully: progress.closedGracefully,
      terminated: progress.terminated,
      durationMs: this.#now() - this.#startedAt,
    };
    this.#log.info(summary, 'drain finished');
    await this.#o.events?.podEvent(
      'DrainFinished',
      `closed ${summary.closedGracefully} connections gracefully and terminated ${summary.terminated} in ${(summary.durationMs / 1000).toFixed(1)}s`,
      FINAL_EVENT_TIMEOUT_MS,
    );
    this.#resolveFinished(summary);
    this.#o.onFinished?.(summary);
    this.#o.exit(0);
  }
}
