// Keeps the pod's controller.kubernetes.io/pod-deletion-cost annotation near
// its connection count, so that a scale-down removes the emptiest pods first
// (the ReplicaSet deletes the lowest cost first). Rate-limited by design: the
// scheduler only compares pods, so an approximate, slightly stale count is
// enough, and the API server has other work.

export interface DeletionCostOptions {
  /** Sends one patch; resolves with whether the API took it (kube-api.ts). */
  readonly patch: (cost: number) => Promise<boolean>;
  /** The connection count now. */
  readonly connectionCount: () => number;
  /** At most one patch per this many ms (POD_DELETION_COST_INTERVAL_SECONDS). */
  readonly minIntervalMs: number;
  /** How often the count is looked at. */
  readonly checkIntervalMs: number;
  /** After a failed patch, wait this long before the next try. */
  readonly failureBackoffMs: number;
  /** Injected in tests. */
  readonly now?: () => number;
  readonly random?: () => number;
}

/** Each interval is stretched or shortened by up to this fraction, so pods started together do not patch together. */
export const JITTER = 0.1;

/** A change smaller than this fraction of the reported cost (and at least one connection) is not worth a call. */
export const MIN_CHANGE = 0.05;

/** Patches the pod's deletion cost from its connection count: start() it, stop() it at the drain. */
export class DeletionCostReporter {
  readonly #o: DeletionCostOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  #timer: NodeJS.Timeout | undefined;
  #reported: number | undefined;
  #nextPatchAt = 0;
  #inFlight = false;

  constructor(options: DeletionCostOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  /** The last cost the API accepted, if any. */
  get reported(): number | undefined {
    return this.#reported;
  }

  /** Starts looking at the count every checkIntervalMs, and patches at once if it is due. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.check(), this.#o.checkIntervalMs).unref();
    void this.check();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * One look at the count: patches when the interval since the last patch
   * (jittered, or the backoff after a failure) has passed and the count moved by at
   * least MIN_CHANGE of the reported cost; one patch at a time.
   */
  async check(): Promise<void> {
    const now = this.#now();
    if (this.#inFlight || now < this.#nextPatchAt) return;
    const cost = this.#o.connectionCount();
    const last = this.#reported;
    if (last !== undefined && Math.abs(cost - last) < Math.max(1, Math.ceil(last * MIN_CHANGE))) return;
    this.#inFlight = true;
    this.#nextPatchAt = now + this.#o.minIntervalMs * (1 - JITTER + 2 * JITTER * this.#random());
    const ok = await this.#o.patch(cost);
    if (ok) this.#reported = cost;
    else this.#nextPatchAt = this.#now() + this.#o.failureBackoffMs;
    this.#inFlight = false;
  }
}
