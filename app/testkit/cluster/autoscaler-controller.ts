// The autoscaler STAND-IN's control loop over the local cluster: every sync
// period (kube-controller-manager's --horizontal-pod-autoscaler-sync-period,
// 15 s unless told otherwise) it reads the pods from the fake API server (the
// controller's pod lister), the metric from the real Prometheus the way the
// metrics API would answer (prometheus-adapter's rule of k8s/ for the HPA,
// the ScaledObject's trigger query for KEDA), runs the HPA algorithm
// (autoscaler.ts) and sets the Deployment's spec.replicas (LocalCluster.setReplicas).
import { HorizontalPodAutoscaler, type MetricReading, type PodView, type SyncResult } from './autoscaler.js';
import { adapterQuery, type ChartAutoscaler } from './from-chart.js';
import type { LocalCluster } from './local-cluster.js';

/** One sync as the report shows it: what the stand-in read and what it decided. */
export interface AutoscalerDecision extends SyncResult {
  /** ms since the cluster started (`now` is the same instant on the wall clock). */
  readonly t: number;
  readonly statusReplicas: number;
  /** The metric as read: per pod (HPA) or the total (KEDA), or the error. */
  readonly reading: { readonly perPod?: Record<string, number>; readonly total?: number; readonly error?: string };
}

export interface AutoscalerControllerOptions {
  readonly cluster: LocalCluster;
  readonly autoscaler: ChartAutoscaler;
  readonly syncPeriodSeconds: number;
  /** The pod labels of the Deployment's selector. */
  readonly selector: Readonly<Record<string, string>>;
}

export class AutoscalerController {
  readonly decisions: AutoscalerDecision[] = [];
  readonly #hpa: HorizontalPodAutoscaler;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  #cached: { value: MetricReading; at: number } | undefined;
  #stopped = false;
  #failure: Error | undefined;

  constructor(readonly options: AutoscalerControllerOptions) {
    this.#hpa = new HorizontalPodAutoscaler(options.autoscaler.spec);
  }

  /** Syncs now and then every sync period; a sync that runs long delays the next one, as the controller's work queue does. */
  start(): void {
    const loop = (): void => {
      this.#running = this.sync().then(
        () => {
          if (!this.#stopped) this.#timer = setTimeout(loop, this.options.syncPeriodSeconds * 1000);
        },
        (err: unknown) => {
          this.#stopped = true;
          this.#failure = err instanceof Error ? err : new Error(String(err));
        },
      );
    };
    loop();
  }

  /** Stops syncing; rethrows what made a sync fail. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** One pass of the controller. */
  async sync(): Promise<AutoscalerDecision> {
    const { cluster, autoscaler } = this.options;
    const now = Date.now();
    const pods = this.#pods();
    const reading = await this.#read(pods, now);
    const statusReplicas = cluster.activeReplicas;
    const result = this.#hpa.sync({ now, specReplicas: cluster.specReplicas, statusReplicas, pods, readings: autoscaler.spec.metrics.map(() => reading) });
    const decision: AutoscalerDecision = {
      ...result,
      t: now - cluster.startedAt,
      statusReplicas,
      reading: 'error' in reading ? { error: reading.error } : 'total' in reading ? { total: reading.total } : { perPod: Object.fromEntries(reading.perPod) },
    };
    this.decisions.push(decision);
    if (result.rescaled) await cluster.setReplicas(result.desiredReplicas);
    return decision;
  }

  /** The Deployment's pods as the HPA's pod lister has them: the selector's pods of the namespace. */
  #pods(): PodView[] {
    const { cluster, selector } = this.options;
    return cluster.api
      .pods(cluster.options.namespace)
      .filter((p) => Object.entries(selector).every(([key, value]) => p.labels[key] === value))
      .map((p) => ({ name: p.name, phase: phaseOf(p.phase), ready: p.ready, deleting: p.deleting }));
  }

  // The metrics API's answer. HPA: prometheus-adapter runs its rule for the
  // pods the HPA's selector lists (terminating ones included; the HPA drops
  // them itself) and answers one value per pod it found. KEDA: its metrics
  // server runs the trigger's query on every HPA request, unless
  // useCachedMetrics serves the value of its last poll.
  async #read(pods: readonly PodView[], now: number): Promise<MetricReading> {
    const { cluster, autoscaler } = this.options;
    const prometheus = cluster.prometheus;
    if (!prometheus) return { error: 'no Prometheus: the autoscaler reads its metric from it' };
    try {
      if (autoscaler.kind === 'hpa') {
        if (pods.length === 0) return { error: 'no pods returned by selector while calculating replica count' };
        const { query } = adapterQuery(
          prometheus.namespace,
          pods.map((p) => p.name),
        );
        const perPod = new Map<string, number>();
        for (const sample of await prometheus.query(query)) if (sample.labels.pod) perPod.set(sample.labels.pod, sample.value);
        return { perPod };
      }
      const keda = autoscaler.keda!;
      if (keda.useCachedMetrics && this.#cached && now - this.#cached.at < keda.pollingIntervalSeconds * 1000) return this.#cached.value;
      const samples = await prometheus.query(keda.query);
      let value: MetricReading;
      if (samples.length === 0)
        value = keda.ignoreNullValues ? { total: 0 } : { error: `prometheus query ${keda.query} returned no value (ignoreNullValues: false)` };
      else value = { total: samples[0]!.value };
      this.#cached = { value, at: now };
      return value;
    } catch (err) {
      return { error: (err as Error).message };
    }
  }
}

function phaseOf(phase: string): PodView['phase'] {
  return phase === 'Pending' || phase === 'Running' || phase === 'Succeeded' || phase === 'Failed' ? phase : 'Unknown';
}
