// Kubernetes integration through @kubernetes/client-node: Events on our own
// pod for drain start and end, and the pod-deletion-cost annotation kept near
// our connection count so that scale-down removes the emptiest pods first.
// It switches itself off outside a cluster, and no API failure ever stops
// serving or delays the drain past its deadline.
import { existsSync, readFileSync } from 'node:fs';
import type { ConfigurationOptions, CoreV1Api, CoreV1Event, RequestContext } from '@kubernetes/client-node';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import type { Counters } from './metrics.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
export const DELETION_COST_ANNOTATION = 'controller.kubernetes.io/pod-deletion-cost';

/**
 * Every Kubernetes API call this module makes. The chart's Role grants
 * exactly these verbs, and a chart test compares the two.
 */
export const KUBERNETES_API_CALLS = [
  { apiGroup: '', resource: 'events', verb: 'create', call: 'event', only: undefined },
  { apiGroup: '', resource: 'pods', verb: 'patch', call: 'patch', only: undefined },
  // The rebalancer's fleet view (REBALANCE_POD_SELECTOR): a rate-limited list, no watch.
  { apiGroup: '', resource: 'pods', verb: 'list', call: 'list', only: 'fleetView' },
] as const;
export type ApiCall = (typeof KUBERNETES_API_CALLS)[number]['call'];

export const API_RESULTS = ['ok', 'forbidden', 'unauthorized', 'not_found', 'server_error', 'timeout', 'unreachable', 'error'] as const;
export type ApiResult = (typeof API_RESULTS)[number];

export interface ClusterOptions {
  /** Per-request timeout: no API call may hold anything up longer. */
  apiTimeoutMs: number;
  /** At most one pod-deletion-cost patch per this many ms (60000 / this = calls per minute). */
  minPatchIntervalMs: number;
  /** How often the connection count is looked at. */
  checkIntervalMs: number;
  /** After a failed patch, wait this long before the next try. */
  failureBackoffMs: number;
  /** Prefix for SERVICE_ACCOUNT_DIR: '' in a pod; tests put a token and CA under a temporary folder. */
  serviceAccountRoot: string;
}

export const DEFAULT_CLUSTER_OPTIONS: ClusterOptions = {
  apiTimeoutMs: 2000,
  minPatchIntervalMs: 10_000,
  checkIntervalMs: 1000,
  failureBackoffMs: 60_000,
  serviceAccountRoot: '',
};

/** One pod of our Deployment as the fleet view sees it. */
export interface FleetPod {
  readonly name: string;
  /** Ready and not being deleted: a pod that takes connections. */
  readonly serving: boolean;
  /** Its pod-deletion-cost annotation: its connection count when it last reported, 0 if never. */
  readonly connections: number;
}

export interface ClusterIntegration {
  readonly enabled: boolean;
  /** The pods matching `selector` in our namespace, or undefined if the API cannot tell (logged, counted). */
  listFleet(selector: string): Promise<FleetPod[] | undefined>;
  /** Creates an Event on our pod. Resolves within the API timeout (or `timeoutMs`), never rejects. */
  podEvent(reason: string, message: string, timeoutMs?: number): Promise<void>;
  /** Starts keeping pod-deletion-cost near `connectionCount()`. */
  startDeletionCost(connectionCount: () => number): void;
  stopDeletionCost(): void;
}

const DISABLED: ClusterIntegration = {
  enabled: false,
  listFleet: async () => undefined,
  podEvent: async () => {},
  startDeletionCost: () => {},
  stopDeletionCost: () => {},
};

/** The client library, loaded only when the integration is on: it takes ~0.4 s and tens of MB of heap to load. */
type Client = typeof import('@kubernetes/client-node');

/** Decides whether to talk to Kubernetes, logs the decision once, and returns the integration. */
export async function createClusterIntegration(
  config: Config,
  logger: Logger,
  counters: Counters,
  options: Partial<ClusterOptions> = {},
): Promise<ClusterIntegration> {
  const log = logger.child({ module: 'kube' });
  const opts = { ...DEFAULT_CLUSTER_OPTIONS, minPatchIntervalMs: config.podDeletionCostIntervalSeconds * 1000, ...options };
  if (config.kubernetes === 'off') {
    log.info('kubernetes integration off (KUBERNETES_INTEGRATION=off)');
    return DISABLED;
  }
  const serviceAccountDir = `${opts.serviceAccountRoot}${SERVICE_ACCOUNT_DIR}`;
  const tokenFile = `${serviceAccountDir}/token`;
  const inCluster = config.kubernetesServiceHost !== undefined && existsSync(tokenFile);
  if (config.kubernetes === 'auto' && !inCluster) {
    log.info('kubernetes integration off: not running in a cluster (no KUBERNETES_SERVICE_HOST or service account token)');
    return DISABLED;
  }

  const client: Client = await import('@kubernetes/client-node');
  const kc = new client.KubeConfig();
  try {
    if (inCluster) kc.loadFromCluster(opts.serviceAccountRoot);
    else if (config.kubeconfig !== undefined) kc.loadFromFile(config.kubeconfig);
    else throw new Error('not in a cluster and KUBECONFIG is not set');
  } catch (err) {
    // Only the first line: a YAML error goes on to quote the lines around the
    // mistake, and in a kubeconfig those can hold the bearer token.
    const problem = err instanceof Error ? err.message.split('\n', 1)[0] : String(err);
    log.error({ problem, kubeconfig: config.kubeconfig }, 'kubernetes integration off: KUBERNETES_INTEGRATION=on but no usable cluster credentials');
    return DISABLED;
  }
  const namespace = config.podNamespace ?? readNamespace(serviceAccountDir);
  if (namespace === undefined) {
    log.error('kubernetes integration off: POD_NAMESPACE is not set; pass it from the downward API (metadata.namespace)');
    return DISABLED;
  }
  const server = kc.getCurrentCluster()?.server ?? 'unknown';
  log.info({ server, namespace, pod: config.podName }, 'kubernetes integration on');
  return new KubernetesCluster(client, kc.makeApiClient(client.CoreV1Api), config, namespace, server, opts, counters, log);
}

function readNamespace(dir: string): string | undefined {
  try {
    return readFileSync(`${dir}/namespace`, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

class KubernetesCluster implements ClusterIntegration {
  readonly enabled = true;
  readonly #client: Client;
  readonly #api: CoreV1Api;
  readonly #config: Config;
  readonly #namespace: string;
  readonly #server: string;
  readonly #opts: ClusterOptions;
  readonly #counters: Counters;
  readonly #log: Logger;
  /** Failures already logged, by `${call}:${result}`: each is logged once, then only counted. */
  readonly #logged = new Set<string>();
  #costTimer: NodeJS.Timeout | undefined;
  #reportedCost: number | undefined;
  #nextPatchAt = 0;
  #patchInFlight = false;

  constructor(client: Client, api: CoreV1Api, config: Config, namespace: string, server: string, opts: ClusterOptions, counters: Counters, log: Logger) {
    this.#client = client;
    this.#api = api;
    this.#config = config;
    this.#namespace = namespace;
    this.#server = server;
    this.#opts = opts;
    this.#counters = counters;
    this.#log = log;
  }

  async podEvent(reason: string, message: string, timeoutMs = this.#opts.apiTimeoutMs): Promise<void> {
    const now = new Date();
    const pod = this.#config.podName;
    const body: CoreV1Event = {
      metadata: { generateName: `${pod}.`, namespace: this.#namespace },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod, namespace: this.#namespace, ...(this.#config.podUid ? { uid: this.#config.podUid } : {}) },
      reason,
      message,
      type: 'Normal',
      source: { component: 'ws-echo' },
      reportingComponent: 'ws-echo',
      reportingInstance: pod,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.#call('event', () => this.#api.createNamespacedEvent({ namespace: this.#namespace, body }, this.#withTimeout(timeoutMs)));
  }

  async listFleet(selector: string): Promise<FleetPod[] | undefined> {
    let pods: FleetPod[] | undefined;
    await this.#call('list', async () => {
      const list = await this.#api.listNamespacedPod({ namespace: this.#namespace, labelSelector: selector }, this.#withTimeout(this.#opts.apiTimeoutMs));
      pods = list.items.map((pod) => ({
        name: pod.metadata?.name ?? '',
        serving: pod.metadata?.deletionTimestamp === undefined && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
        connections: Number(pod.metadata?.annotations?.[DELETION_COST_ANNOTATION] ?? 0) || 0,
      }));
    });
    return pods;
  }

  startDeletionCost(connectionCount: () => number): void {
    if (this.#costTimer !== undefined) return;
    this.#costTimer = setInterval(() => void this.#updateCost(connectionCount()), this.#opts.checkIntervalMs).unref();
    void this.#updateCost(connectionCount());
  }

  stopDeletionCost(): void {
    clearInterval(this.#costTimer);
    this.#costTimer = undefined;
  }

  // Patch only on a meaningful change (5 %, at least 1 connection) and at
  // most once per minPatchIntervalMs: the scheduler compares pods, it needs
  // the order, not the exact count, and the API server has other work.
  async #updateCost(connections: number): Promise<void> {
    if (this.#patchInFlight || Date.now() < this.#nextPatchAt) return;
    const last = this.#reportedCost;
    if (last !== undefined && Math.abs(connections - last) < Math.max(1, Math.ceil(last * 0.05))) return;
    this.#patchInFlight = true;
    this.#nextPatchAt = Date.now() + this.#opts.minPatchIntervalMs;
    const body = { metadata: { annotations: { [DELETION_COST_ANNOTATION]: String(connections) } } };
    const ok = await this.#call('patch', () =>
      this.#api.patchNamespacedPod(
        { name: this.#config.podName, namespace: this.#namespace, body },
        // RFC 7386 merge patch: touches only our annotation.
        this.#client.setHeaderOptions('Content-Type', this.#client.PatchStrategy.MergePatch, this.#withTimeout(this.#opts.apiTimeoutMs)),
      ),
    );
    if (ok) this.#reportedCost = connections;
    else this.#nextPatchAt = Date.now() + this.#opts.failureBackoffMs;
    this.#patchInFlight = false;
  }

  /** Request options that abort the HTTP request after `ms`. */
  #withTimeout(ms: number): ConfigurationOptions {
    const { Observable } = this.#client;
    return {
      middleware: [
        {
          pre: (request: RequestContext) => {
            request.setSignal(AbortSignal.timeout(ms));
            return new Observable(Promise.resolve(request));
          },
          post: (response) => new Observable(Promise.resolve(response)),
        },
      ],
      middlewareMergeStrategy: 'append',
    };
  }

  /** Runs one API call; counts the result and logs each kind of failure once with what to fix. Never throws. */
  async #call(call: ApiCall, request: () => Promise<unknown>): Promise<boolean> {
    let result: ApiResult;
    let error: unknown;
    try {
      await request();
      result = 'ok';
    } catch (err) {
      error = err;
      result = classify(err, this.#client);
    }
    this.#counters.countKubeApi(call, result);
    if (result === 'ok') return true;
    const key = `${call}:${result}`;
    if (!this.#logged.has(key)) {
      this.#logged.add(key);
      this.#log.warn(
        {
          call,
          result,
          status: error instanceof this.#client.ApiException ? error.code : undefined,
          hint: this.#hint(call, result),
          ...(result === 'error' ? { err: error } : {}),
        },
        'kubernetes api call failed; serving goes on (logged once, counted in websocket_kubernetes_api_requests_total)',
      );
    }
    return false;
  }

  #hint(call: ApiCall, result: ApiResult): string {
    const what = KUBERNETES_API_CALLS.find((c) => c.call === call)!;
    switch (result) {
      case 'forbidden':
        return `the service account may not ${what.verb} ${what.resource} in namespace ${this.#namespace}: grant a Role rule apiGroups [""] resources ["${what.resource}"] verbs ["${what.verb}"] (the chart does this with rbac.create=true)`;
      case 'unauthorized':
        return 'the API server rejected our credentials: check that the service account token is mounted (automountServiceAccountToken) and valid';
      case 'not_found':
        return `pod ${this.#config.podName} not found in namespace ${this.#namespace}: set POD_NAME and POD_NAMESPACE from the downward API`;
      case 'timeout':
        return `the API server at ${this.#server} did not answer within ${this.#opts.apiTimeoutMs} ms`;
      case 'unreachable':
        return `cannot connect to the API server at ${this.#server}: check NetworkPolicy egress to the API server`;
      case 'server_error':
        return 'the API server answered with a 5xx error; later calls will retry';
      default:
        return 'unexpected error; see err';
    }
  }
}

function classify(err: unknown, client: Client): ApiResult {
  if (err instanceof client.ApiException) {
    const code = err.code;
    if (code === 401) return 'unauthorized';
    if (code === 403) return 'forbidden';
    if (code === 404) return 'not_found';
    if (code >= 500) return 'server_error';
    return 'error';
  }
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timeout';
  const cause = err instanceof Error ? (err.cause as { code?: string } | undefined) : undefined;
  if (cause?.code !== undefined && /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|UND_ERR_SOCKET)$/.test(cause.code))
    return 'unreachable';
  if (cause instanceof Error && (cause.name === 'TimeoutError' || cause.name === 'AbortError')) return 'timeout';
  return 'error';
}
