// The Kubernetes API calls of the service, through @kubernetes/client-node:
// an Event on its own pod, a merge patch of its pod-deletion-cost annotation,
// and the list of its Deployment's pods (the rebalancer's fleet view). Every
// call has a timeout, never throws, is counted by result, and each kind of
// failure is logged once with what to fix.
import type { ConfigurationOptions, CoreV1Api, CoreV1Event, RequestContext } from '@kubernetes/client-node';
import type { Logger } from './logger.js';

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

/** The client library; loaded by kube.ts only when the integration is on. */
export type Client = typeof import('@kubernetes/client-node');

/** One pod of our Deployment as the fleet view sees it. */
export interface FleetPod {
  readonly name: string;
  /** Ready and not being deleted: a pod that takes connections. */
  readonly serving: boolean;
  /** Its pod-deletion-cost annotation: its connection count when it last reported, 0 if never. */
  readonly connections: number;
}

/** Where call results are counted: websocket_kubernetes_api_requests_total. */
export interface ApiCallCounter {
  countKubeApi(call: ApiCall, result: ApiResult, calls?: number): void;
}

export interface KubernetesApiOptions {
  readonly client: Client;
  readonly api: CoreV1Api;
  /** The API server's URL, for hints. */
  readonly server: string;
  readonly namespace: string;
  readonly podName: string;
  /** The pod's UID: lets `kubectl describe pod` find our Events. */
  readonly podUid: string | undefined;
  /** Per-request timeout: no call may hold anything up longer. */
  readonly timeoutMs: number;
  readonly counter: ApiCallCounter;
  readonly logger: Logger;
}

/** The service's three API calls, each bounded in time and never throwing. */
export class KubernetesApi {
  readonly #o: KubernetesApiOptions;
  /** Failures already logged, by `${call}:${result}`: each is logged once, then only counted. */
  readonly #logged = new Set<string>();

  constructor(options: KubernetesApiOptions) {
    this.#o = options;
    // Every call and result exported from 0: a rate (the dashboard, an
    // alert) cannot see the first call of a kind in a series that appears
    // with it, and a first 403 is the one that matters.
    for (const { call } of KUBERNETES_API_CALLS) for (const result of API_RESULTS) options.counter.countKubeApi(call, result, 0);
  }

  get namespace(): string {
    return this.#o.namespace;
  }

  /** Creates an Event on our pod. Resolves within the timeout (or `timeoutMs`), never rejects. */
  async podEvent(reason: string, message: string, timeoutMs = this.#o.timeoutMs): Promise<void> {
    const { namespace, podName, podUid } = this.#o;
    const now = new Date();
    const body: CoreV1Event = {
      metadata: { generateName: `${podName}.`, namespace },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: podName, namespace, ...(podUid ? { uid: podUid } : {}) },
      reason,
      message,
      type: 'Normal',
      source: { component: 'ws-echo' },
      reportingComponent: 'ws-echo',
      reportingInstance: podName,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.#call('event', () => this.#o.api.createNamespacedEvent({ namespace, body }, this.#withTimeout(timeoutMs)));
  }

  /** The pods matching `selector` in our namespace, or undefined if the API cannot tell (logged, counted). */
  async listFleet(selector: string): Promise<FleetPod[] | undefined> {
    let pods: FleetPod[] | undefined;
    await this.#call('list', async () => {
      const list = await this.#o.api.listNamespacedPod({ namespace: this.#o.namespace, labelSelector: selector }, this.#withTimeout(this.#o.timeoutMs));
      pods = list.items.map((pod) => ({
        name: pod.metadata?.name ?? '',
        serving: pod.metadata?.deletionTimestamp === undefined && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
        connections: Number(pod.metadata?.annotations?.[DELETION_COST_ANNOTATION] ?? 0) || 0,
      }));
    });
    return pods;
  }

  /** Sets our pod's pod-deletion-cost; resolves with whether the API took it. */
  patchDeletionCost(cost: number): Promise<boolean> {
    const { client, api, podName, namespace } = this.#o;
    const body = { metadata: { annotations: { [DELETION_COST_ANNOTATION]: String(cost) } } };
    return this.#call('patch', () =>
      api.patchNamespacedPod(
        { name: podName, namespace, body },
        // RFC 7386 merge patch: touches only our annotation.
        client.setHeaderOptions('Content-Type', client.PatchStrategy.MergePatch, this.#withTimeout(this.#o.timeoutMs)),
      ),
    );
  }

  /** Request options that abort the HTTP request after `ms`. */
  #withTimeout(ms: number): ConfigurationOptions {
    const { Observable } = this.#o.client;
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
      result = classify(err, this.#o.client);
    }
    this.#o.counter.countKubeApi(call, result);
    if (result === 'ok') return true;
    const key = `${call}:${result}`;
    if (!this.#logged.has(key)) {
      this.#logged.add(key);
      this.#o.logger.warn(
        {
          call,
          result,
          status: error instanceof this.#o.client.ApiException ? error.code : undefined,
          hint: this.#hint(call, result),
          ...(result === 'error' ? { err: error } : {}),
        },
        'kubernetes api call failed; serving goes on (logged once, counted in websocket_kubernetes_api_requests_total)',
      );
    }
    return false;
  }

  #hint(call: ApiCall, result: ApiResult): string {
    const { namespace, podName, server, timeoutMs } = this.#o;
    const what = KUBERNETES_API_CALLS.find((c) => c.call === call)!;
    switch (result) {
      case 'forbidden':
        return `the service account may not ${what.verb} ${what.resource} in namespace ${namespace}: grant a Role rule apiGroups [""] resources ["${what.resource}"] verbs ["${what.verb}"] (the chart does this with rbac.create=true)`;
      case 'unauthorized':
        return 'the API server rejected our credentials: check that the service account token is mounted (automountServiceAccountToken) and valid';
      case 'not_found':
        return `pod ${podName} not found in namespace ${namespace}: set POD_NAME and POD_NAMESPACE from the downward API`;
      case 'timeout':
        return `the API server at ${server} did not answer within ${timeoutMs} ms`;
      case 'unreachable':
        return `cannot connect to the API server at ${server}: check NetworkPolicy egress to the API server`;
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
