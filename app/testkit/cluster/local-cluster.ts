// A local stand-in for a Deployment behind an Ingress: N replicas (real
// service processes) behind real nginx, scraped by real Prometheus, with the
// operations Kubernetes performs on them: rolling update (maxSurge 1,
// maxUnavailable 0), scale-down by pod-deletion-cost, and SIGKILL chaos.
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
function podLabels(release: string): Record<string, string> {
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

export class LocalCluster {
  readonly events: ClusterEvent[] = [];
  readonly samples: Sample[] = [];
  /** Every replica ever started, in order. */
  readonly allReplicas: ChildService[] = [];
  /** Replicas that are endpoints of the Service (in nginx). */
  #serving: ChildService[] = [];
  /** Exit codes of replicas that were stopped, by name. */
  readonly exitCodes: Record<string, number | null> = {};
  readonly startedAt = Date.now();
  #templateHash = podTemplateHash();
  #sampler: NodeJS.Timeout | undefined;
  #nginx: NginxProxy | undefined;
  #prometheus: Prometheus | undefined;
  /** The replicas' Kubernetes API: Events, pod-deletion-cost patches and the fleet view hit it. */
  readonly api = new FakeApiServer();
  #kubeconfig = '';

  private constructor(readonly options: ClusterOptions) {}

  static async start(options: ClusterOptions): Promise<LocalCluster> {
    mkdirSync(options.dir, { recursive: true });
    const cluster = new LocalCluster(options);
    try {
      await cluster.api.listen();
      cluster.#kubeconfig = cluster.api.writeKubeconfig(join(options.dir, 'kubeconfig.yaml'), options.namespace);
      const replicas = await Promise.all(Array.from({ length: options.replicas }, () => cluster.#createReplica()));
      await Promise.all(replicas.map((r) => cluster.#waitReady(r)));
      cluster.#serving = replicas;
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
      const fresh = await this.#createReplica();
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
    const counts = this.#serving.map((r) => ({
      replica: r,
      cost: Number(this.api.annotations(this.options.namespace, r.name)?.[DELETION_COST_ANNOTATION] ?? 0),
    }));
    const victims = counts
      .sort((a, b) => a.cost - b.cost)
      .slice(0, Math.max(0, this.#serving.length - replicas))
      .map((c) => c.replica);
    await Promise.all(victims.map((victim) => this.#retire(victim)));
    return victims.map((v) => v.name);
  }

  /** Scale-up to `replicas`: the new pods start together and join the Service as each becomes ready. */
  async scaleUp(replicas: number): Promise<string[]> {
    const fresh = await Promise.all(Array.from({ length: Math.max(0, replicas - this.#serving.length) }, () => this.#createReplica()));
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
      const fresh = await this.#createReplica();
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
    const replacement = this.#createReplica();
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
    await Promise.all(this.allReplicas.map((r) => r.stop('SIGKILL')));
    await this.#nginx?.stop();
    await this.#prometheus?.stop();
    await this.api.close();
  }

  // Remove from the Service, preStop sleep, SIGTERM, wait for the exit.
  async #retire(replica: ChildService): Promise<void> {
    this.api.markTerminating(this.options.namespace, replica.name);
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
    this.#event('exited', replica, `code ${exit.code}`);
    this.api.removePod(this.options.namespace, replica.name);
    this.#updateScrapeTargets();
  }

  async #createReplica(): Promise<ChildService> {
    const name = `${this.options.release}-ws-echo-${this.#templateHash}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const { drain, rebalance, namespace, release } = this.options;
    const labels = podLabels(release);
    this.api.addPod(namespace, name, labels);
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
  }
}

/** A Deployment's pod-template-hash: 10 characters, new for every rollout. */
function podTemplateHash(): string {
  return randomBytes(8).toString('hex').slice(0, 10);
}
