// A local stand-in for a Deployment behind an Ingress: N replicas (real
// service processes) behind real nginx, scraped by real Prometheus, with the
// operations Kubernetes performs on them: rolling update (maxSurge 1,
// maxUnavailable 0), scale-down by pod-deletion-cost, SIGKILL chaos, and
// spec.replicas set by an autoscaler, reconciled as a ReplicaSet does.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DELETION_COST_ANNOTATION } from '../../src/kube-api.js';
import { ChildService } from '../child-service.js';
import { exampleMain, serviceMain } from '../paths.js';
import { FakeApiServer } from '../fake-apiserver.js';
import { NginxProxy, type ProxyCapacity, type ProxySettings } from './nginx.js';
import { Prometheus } from './prometheus.js';
import { podsToDelete } from './replicaset.js';

export interface DrainTimings {
  readonly preStopSeconds: number;
  readonly windowSeconds: number;
  readonly closeTimeoutSeconds: number;
}

/** The rebalancer's settings for every replica (REBALANCE_* variables); undefined turns it off. */
export interface RebalanceSettings {
  readonly intervalSeconds: number;
  readonly rate: number;
  readonly tolerance: number;
  readonly cooldownSeconds: number;
}

/** The programs a replica can run. */
export const APPS = ['ws-echo', 'example'] as const;
export type App = (typeof APPS)[number];

export interface ClusterOptions {
  readonly replicas: number;
  /** Helm release name; pods are named `<release>-ws-echo-<hash>-<id>` as a Deployment names them. */
  readonly release: string;
  readonly namespace: string;
  readonly drain: DrainTimings;
  readonly proxy: ProxySettings;
  /** nginx's workers, connections and descriptors (default: sized for no particular load). */
  readonly proxyCapacity?: ProxyCapacity;
  /** Replicas exit at once on SIGTERM and get no preStop: the original recipe. */
  readonly naive: boolean;
  readonly prometheus: boolean;
  /** Working folder for nginx, Prometheus and logs. */
  readonly dir: string;
  /** Rebalancing with the fleet view; off when undefined. */
  readonly rebalance?: RebalanceSettings | undefined;
  /** What each replica runs: ws-echo (default) or the example app built on the graceful library. */
  readonly app?: App;
  /** Extra service environment for every replica. */
  readonly serviceEnv?: Readonly<Record<string, string>>;
}

/** The labels the chart's selectorLabels give every pod of the release. */
export function podLabels(release: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'ws-echo', 'app.kubernetes.io/instance': release };
}

export type EventKind = 'created' | 'ready' | 'added' | 'removed' | 'sigterm' | 'sigkill' | 'exited';

export interface ClusterEvent {
  /** ms since the cluster started. */
  readonly t: number;
  readonly kind: EventKind;
  readonly replica: string;
  readonly detail?: string;
}

export interface Sample {
  readonly t: number;
  /** Open connections per replica, from each replica's own /metrics. */
  readonly connections: Readonly<Record<string, number>>;
}

/** How many pods the Deployment had in each state, after every change. */
export interface ReplicaCount {
  /** ms since the cluster started. */
  readonly t: number;
  /** spec.replicas. */
  readonly spec: number;
  /** Created, not yet endpoints (Pending, or Running and not yet ready). */
  readonly starting: number;
  /** Endpoints of the Service. */
  readonly serving: number;
  /** Deleted, in their preStop or drain. */
  readonly terminating: number;
}

/** A pod the ReplicaSet stand-in could delete, as it saw it when it chose. */
export interface ScaleDownCandidate {
  readonly pod: string;
  readonly phase: string;
  readonly ready: boolean;
  /** Its pod-deletion-cost annotation: the connection count it last reported. */
  readonly cost: number;
  /** Its open connections at that moment, from its own /metrics (undefined: not serving yet). */
  readonly connections: number | undefined;
}

/** One scale-down by the ReplicaSet stand-in: what it could choose from and what it deleted. */
export interface ScaleDownChoice {
  /** ms since the cluster started. */
  readonly t: number;
  readonly from: number;
  readonly to: number;
  readonly candidates: readonly ScaleDownCandidate[];
  readonly victims: readonly string[];
}

/** A pod the ReplicaSet created that is not an endpoint yet; `cancelled` when it was deleted before it got there. */
interface StartingPod {
  readonly name: string;
  cancelled: boolean;
}

export class LocalCluster {
  readonly events: ClusterEvent[] = [];
  readonly samples: Sample[] = [];
  /** Every replica ever started, in order. */
  readonly allReplicas: ChildService[] = [];
  /** Replicas that are endpoints of the Service (in nginx). */
  #serving: ChildService[] = [];
  /** Exit codes of replicas that were stopped, by name. */
  readonly exitCodes: Record<string, number | null> = {};
  /** Pods per state after every change (see setReplicas). */
  readonly counts: ReplicaCount[] = [];
  /** Every scale-down of setReplicas, with what the ReplicaSet stand-in chose from. */
  readonly scaleDownChoices: ScaleDownChoice[] = [];
  readonly startedAt = Date.now();
  #specReplicas: number;
  readonly #starting = new Set<StartingPod>();
  readonly #terminating = new Set<string>();
  /** Pod creations and deletions setReplicas started and that have not finished. */
  readonly #inFlight = new Set<Promise<void>>();
  readonly #failures: Error[] = [];
  #reconciling: Promise<void> = Promise.resolve();
  #templateHash = podTemplateHash();
  #sampler: NodeJS.Timeout | undefined;
  #nginx: NginxProxy | undefined;
  #prometheus: Prometheus | undefined;
  /** The replicas' Kubernetes API: Events, pod-deletion-cost patches and the fleet view hit it. */
  readonly api = new FakeApiServer();
  #kubeconfig = '';

  private constructor(readonly options: ClusterOptions) {
    this.#specReplicas = options.replicas;
  }

  static async start(options: ClusterOptions): Promise<LocalCluster> {
    mkdirSync(options.dir, { recursive: true });
    const cluster = new LocalCluster(options);
    try {
      await cluster.api.listen();
      cluster.#kubeconfig = cluster.api.writeKubeconfig(join(options.dir, 'kubeconfig.yaml'), options.namespace);
      const replicas = await Promise.all(Array.from({ length: options.replicas }, () => cluster.#createReplica(cluster.#podName())));
      await Promise.all(replicas.map((r) => cluster.#waitReady(r)));
      cluster.#serving = replicas;
      cluster.#count();
      cluster.#nginx = await NginxProxy.start(options.proxy, cluster.#upstreams(), join(options.dir, 'nginx'), options.proxyCapacity);
      if (options.prometheus) {
        cluster.#prometheus = await Prometheus.start(join(options.dir, 'prometheus'), options.namespace);
        cluster.#updateScrapeTargets();
      }
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.nginx.port}`;
  }

  get nginx(): NginxProxy {
    if (!this.#nginx) throw new Error('nginx is not running');
    return this.#nginx;
  }

  get prometheus(): Prometheus | undefined {
    return this.#prometheus;
  }

  get serving(): readonly ChildService[] {
    return this.#serving;
  }

  /** spec.replicas of the Deployment. */
  get specReplicas(): number {
    return this.#specReplicas;
  }

  /** status.replicas: the ReplicaSet's pods that are not terminating (starting or serving). */
  get activeReplicas(): number {
    return this.#serving.length + [...this.#starting].filter((p) => !p.cancelled).length;
  }

  /** Samples every live replica's connection count every `intervalMs`. */
  startSampling(intervalMs = 250): void {
    const sample = async (): Promise<void> => {
      const live = this.allReplicas.filter((r) => r.running);
      const counts = await Promise.all(live.map((r) => r.connections()));
      const connections: Record<string, number> = {};
      live.forEach((r, i) => {
        if (counts[i] !== undefined) connections[r.name] = counts[i]!;
      });
      this.samples.push({ t: Date.now() - this.startedAt, connections });
    };
    void sample();
    this.#sampler = setInterval(() => void sample(), intervalMs);
  }

  /**
   * `kubectl rollout restart` with maxSurge 1, maxUnavailable 0: for each old
   * replica, start a new one, wait for /readyz, add it to the Service, remove
   * the old one, wait the preStop sleep, SIGTERM it, wait for its exit.
   */
  async rolloutRestart(onStep?: (done: number, total: number) => void): Promise<void> {
    this.#templateHash = podTemplateHash();
    const old = [...this.#serving];
    for (const [index, replica] of old.entries()) {
      const fresh = await this.#createReplica(this.#podName());
      await this.#waitReady(fresh);
      await this.#setServing([...this.#serving, fresh], fresh, 'added');
      await this.#retire(replica);
      onStep?.(index + 1, old.length);
    }
  }

  /**
   * Scale-down to `replicas`: the ReplicaSet deletes the pods with the lowest
   * pod-deletion-cost at once, as the replicas themselves reported it.
   */
  async scaleDown(replicas: number): Promise<string[]> {
    const candidates = this.#serving.map((replica) => ({ replica, ...this.#candidate(replica.name) }));
    const victims = podsToDelete(candidates, this.#serving.length - replicas).map((c) => c.replica);
    await Promise.all(victims.map((victim) => this.#retire(victim)));
    return victims.map((v) => v.name);
  }

  /**
   * Sets spec.replicas, as an autoscaler does through the scale
   * subresource, and reconciles like the ReplicaSet controller: missing pods
   * are created at once and join the Service as each becomes ready; surplus
   * ones are deleted in the ReplicaSet's order (podsToDelete: not yet ready
   * first, then the lowest pod-deletion-cost) and each goes through its
   * preStop and drain. Resolves once the choice is made; `settled()` waits
   * for the pods themselves.
   */
  async setReplicas(replicas: number): Promise<void> {
    this.#specReplicas = replicas;
    const reconciled = this.#reconciling.then(() => this.#reconcile());
    this.#reconciling = reconciled.catch(() => {});
    await reconciled;
  }

  /** Waits until every pod setReplicas created is serving and every pod it deleted has exited; rethrows what failed. */
  async settled(): Promise<void> {
    await this.#reconciling;
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
    const [failure] = this.#failures;
    if (failure) throw failure;
  }

  async #reconcile(): Promise<void> {
    const surplus = this.activeReplicas - this.#specReplicas;
    if (surplus < 0) {
      for (let i = 0; i < -surplus; i++) this.#track(this.#startPod());
      return;
    }
    if (surplus === 0) return;
    const starting = [...this.#starting].filter((p) => !p.cancelled);
    const serving = [...this.#serving];
    // Each serving pod's own count at the moment of the choice: what the
    // report compares the choice with (the ReplicaSet itself sees only the annotations).
    const live = await Promise.all(serving.map((r) => r.connections()));
    const candidates = [
      ...starting.map((pod) => ({ pod, replica: undefined, connections: undefined, ...this.#candidate(pod.name) })),
      ...serving.map((replica, i) => ({ pod: undefined, replica, connections: live[i], ...this.#candidate(replica.name) })),
    ];
    const victims = podsToDelete(candidates, surplus);
    this.scaleDownChoices.push({
      t: Date.now() - this.startedAt,
      from: this.activeReplicas,
      to: this.#specReplicas,
      candidates: candidates.map((c) => ({ pod: c.name, phase: c.phase, ready: c.ready, cost: c.cost, connections: c.connections })),
      victims: victims.map((v) => v.name),
    });
    for (const victim of victims) {
      if (victim.pod) {
        victim.pod.cancelled = true;
        this.#terminating.add(victim.pod.name);
        this.api.markTerminating(this.options.namespace, victim.pod.name);
      } else if (victim.replica) this.#track(this.#retire(victim.replica));
    }
    this.#count();
  }

  /** A new pod of the ReplicaSet: created, started, ready, then an endpoint; or stopped where it stands if it was deleted meanwhile. */
  async #startPod(): Promise<void> {
    const pod: StartingPod = { name: this.#podName(), cancelled: false };
    this.#starting.add(pod);
    this.#count();
    let replica: ChildService | undefined;
    try {
      replica = await this.#createReplica(pod.name);
      if (!pod.cancelled) await this.#waitReady(replica);
    } finally {
      this.#starting.delete(pod);
    }
    if (pod.cancelled) {
      const exit = await replica.stop('SIGTERM');
      this.exitCodes[replica.name] = exit.code;
      this.#terminating.delete(replica.name);
      this.#event('exited', replica, `code ${exit.code} (deleted before it was ready)`);
      this.api.removePod(this.options.namespace, replica.name);
      this.#updateScrapeTargets();
      return;
    }
    await this.#setServing([...this.#serving, replica], replica, 'added');
  }

  #track(work: Promise<void>): void {
    const tracked: Promise<void> = work
      .catch((err: unknown) => void this.#failures.push(err instanceof Error ? err : new Error(String(err))))
      .finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }

  /** How the ReplicaSet ranks a pod: its phase, readiness and pod-deletion-cost in the API, its age. */
  #candidate(name: string): { name: string; phase: string; ready: boolean; cost: number; createdAt: number } {
    const pod = this.api.pods(this.options.namespace).find((p) => p.name === name);
    const cost = Number(pod?.annotations[DELETION_COST_ANNOTATION] ?? 0);
    return {
      name,
      phase: pod?.phase ?? 'Unknown',
      ready: pod?.ready ?? false,
      cost: Number.isFinite(cost) ? cost : 0,
      createdAt: pod ? Date.parse(pod.creationTimestamp) : 0,
    };
  }

  /** Scale-up to `replicas`: the new pods start together and join the Service as each becomes ready. */
  async scaleUp(replicas: number): Promise<string[]> {
    const fresh = await Promise.all(Array.from({ length: Math.max(0, replicas - this.#serving.length) }, () => this.#createReplica(this.#podName())));
    await Promise.all(
      fresh.map(async (replica) => {
        await this.#waitReady(replica);
        await this.#setServing([...this.#serving, replica], replica, 'added');
      }),
    );
    return fresh.map((r) => r.name);
  }

  /**
   * An eviction (a node drain): one replica is deleted, so it leaves the
   * Service, gets its preStop and SIGTERM and drains, while the ReplicaSet
   * starts its replacement at the same time (no surge first, unlike a rollout).
   */
  async evictOne(): Promise<string> {
    const victim = this.#serving[0]!;
    const replace = async (): Promise<void> => {
      const fresh = await this.#createReplica(this.#podName());
      await this.#waitReady(fresh);
      await this.#setServing([...this.#serving, fresh], fresh, 'added');
    };
    await Promise.all([this.#retire(victim), replace()]);
    return victim.name;
  }

  /** Chaos: SIGKILL one replica; its endpoint goes a second later, and the ReplicaSet starts a replacement. */
  async killOne(): Promise<string> {
    const victim = this.#serving[Math.floor(this.#serving.length / 2)]!;
    const exited = victim.stop('SIGKILL');
    this.#event('sigkill', victim);
    this.exitCodes[victim.name] = (await exited).code;
    this.#event('exited', victim, 'killed');
    this.api.removePod(this.options.namespace, victim.name);
    const replacement = this.#createReplica(this.#podName());
    await sleep(1000); // endpoint propagation after the pod is gone
    await this.#setServing(
      this.#serving.filter((r) => r !== victim),
      victim,
      'removed',
    );
    const fresh = await replacement;
    await this.#waitReady(fresh);
    await this.#setServing([...this.#serving, fresh], fresh, 'added');
    this.#updateScrapeTargets();
    return victim.name;
  }

  async stop(): Promise<void> {
    clearInterval(this.#sampler);
    await this.#reconciling;
    await Promise.all(this.allReplicas.map((r) => r.stop('SIGKILL')));
    // Pods setReplicas was still starting get killed once they exist.
    await Promise.allSettled([...this.#inFlight]);
    await Promise.all(this.allReplicas.map((r) => r.stop('SIGKILL')));
    await this.#nginx?.stop();
    await this.#prometheus?.stop();
    await this.api.close();
  }

  // Remove from the Service, preStop sleep, SIGTERM, wait for the exit.
  async #retire(replica: ChildService): Promise<void> {
    this.api.markTerminating(this.options.namespace, replica.name);
    this.#terminating.add(replica.name);
    await this.#setServing(
      this.#serving.filter((r) => r !== replica),
      replica,
      'removed',
    );
    if (!this.options.naive) await sleep(this.options.drain.preStopSeconds * 1000);
    const exited = replica.stop('SIGTERM');
    this.#event('sigterm', replica);
    const exit = await exited;
    this.exitCodes[replica.name] = exit.code;
    this.#terminating.delete(replica.name);
    this.#event('exited', replica, `code ${exit.code}`);
    this.api.removePod(this.options.namespace, replica.name);
    this.#updateScrapeTargets();
  }

  /** A Deployment's pod name: `<release>-ws-echo-<pod-template-hash>-<5 characters>`. */
  #podName(): string {
    return `${this.options.release}-ws-echo-${this.#templateHash}-${randomBytes(3).toString('hex').slice(0, 5)}`;
  }

  // The pod is Pending in the API until its process listens (its container
  // started), then Running and not ready until #waitReady.
  async #createReplica(name: string): Promise<ChildService> {
    const { drain, rebalance, namespace, release } = this.options;
    const labels = podLabels(release);
    this.api.addPod(namespace, name, labels, 'Pending');
    const replica = await ChildService.start({
      name,
      naive: this.options.naive,
      entry: this.options.app === 'example' ? exampleMain : serviceMain,
      env: {
        POD_NAMESPACE: namespace,
        DRAIN_WINDOW_SECONDS: String(drain.windowSeconds),
        DRAIN_CLOSE_TIMEOUT_SECONDS: String(drain.closeTimeoutSeconds),
        // The real Kubernetes code paths, against the fake API server.
        KUBERNETES_INTEGRATION: 'on',
        KUBECONFIG: this.#kubeconfig,
        POD_DELETION_COST_INTERVAL_SECONDS: '1',
        ...(rebalance
          ? {
              REBALANCE: 'on',
              REBALANCE_POD_SELECTOR: Object.entries(labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(','),
              REBALANCE_INTERVAL_SECONDS: String(rebalance.intervalSeconds),
              REBALANCE_RATE: String(rebalance.rate),
              REBALANCE_TOLERANCE: String(rebalance.tolerance),
              REBALANCE_COOLDOWN_SECONDS: String(rebalance.cooldownSeconds),
            }
          : { REBALANCE: 'off' }),
        ...this.options.serviceEnv,
      },
    });
    this.api.setPhase(namespace, name, 'Running');
    this.allReplicas.push(replica);
    this.#event('created', replica);
    this.#updateScrapeTargets();
    return replica;
  }

  async #waitReady(replica: ChildService): Promise<void> {
    await replica.waitReady();
    this.api.setReady(this.options.namespace, replica.name, true);
    this.#event('ready', replica);
  }

  async #setServing(replicas: ChildService[], changed: ChildService, kind: 'added' | 'removed'): Promise<void> {
    this.#serving = replicas;
    await this.nginx.setUpstreams(this.#upstreams());
    this.#event(kind, changed);
  }

  #upstreams(): { name: string; port: number }[] {
    return this.#serving.map((r) => ({ name: r.name, port: r.port }));
  }

  #updateScrapeTargets(): void {
    this.#prometheus?.setTargets(this.allReplicas.filter((r) => r.running).map((r) => ({ pod: r.name, metricsPort: r.metricsPort })));
  }

  #event(kind: EventKind, replica: ChildService, detail?: string): void {
    this.events.push({ t: Date.now() - this.startedAt, kind, replica: replica.name, ...(detail ? { detail } : {}) });
    this.#count();
  }

  #count(): void {
    const count = {
      t: Date.now() - this.startedAt,
      spec: this.#specReplicas,
      starting: [...this.#starting].filter((p) => !p.cancelled).length,
      serving: this.#serving.length,
      terminating: this.#terminating.size,
    };
    const last = this.counts.at(-1);
    if (!last || last.spec !== count.spec || last.starting !== count.starting || last.serving !== count.serving || last.terminating !== count.terminating) {
      this.counts.push(count);
    }
  }
}

/** A Deployment's pod-template-hash: 10 characters, new for every rollout. */
function podTemplateHash(): string {
  return randomBytes(8).toString('hex').slice(0, 10);
}
