// Whether to talk to Kubernetes, and with which credentials: inside a pod
// (KUBERNETES_SERVICE_HOST and a mounted service account token) the pod's
// own; outside, with KUBERNETES_INTEGRATION=on, a kubeconfig file. The
// decision is logged once; without a usable cluster the service runs on
// without the integration (Events, pod-deletion-cost, the fleet view).
import { existsSync, readFileSync } from 'node:fs';
import type { GracefulConfig } from './config.js';
import { KubernetesApi, type ApiCallCounter, type Client } from './kube-api.js';
import type { Logger } from './logger.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface ConnectOptions {
  /** Per-request timeout of every API call. */
  readonly apiTimeoutMs?: number;
  /** Prefix for SERVICE_ACCOUNT_DIR: '' in a pod; tests put a token and CA under a temporary folder. */
  readonly serviceAccountRoot?: string;
}

/** No API call may hold anything up longer than this by default. */
export const API_TIMEOUT_MS = 2000;

/** The API client when the integration is on and has credentials, else undefined (the reason logged once). */
export async function connectToCluster(
  config: Pick<GracefulConfig, 'kubernetes' | 'kubernetesServiceHost' | 'kubeconfig' | 'podName' | 'podNamespace' | 'podUid'>,
  logger: Logger,
  counter: ApiCallCounter,
  options: ConnectOptions = {},
): Promise<KubernetesApi | undefined> {
  const log = logger.child({ module: 'kube' });
  const root = options.serviceAccountRoot ?? '';
  if (config.kubernetes === 'off') {
    log.info('kubernetes integration off (KUBERNETES_INTEGRATION=off)');
    return undefined;
  }
  const serviceAccountDir = `${root}${SERVICE_ACCOUNT_DIR}`;
  const inCluster = config.kubernetesServiceHost !== undefined && existsSync(`${serviceAccountDir}/token`);
  if (config.kubernetes === 'auto' && !inCluster) {
    log.info('kubernetes integration off: not running in a cluster (no KUBERNETES_SERVICE_HOST or service account token)');
    return undefined;
  }

  // Loaded only now: the library takes ~0.4 s and tens of MB of heap to load.
  const client: Client = await import('@kubernetes/client-node');
  const kc = new client.KubeConfig();
  try {
    if (inCluster) kc.loadFromCluster(root);
    else if (config.kubeconfig !== undefined) kc.loadFromFile(config.kubeconfig);
    else throw new Error('not in a cluster and KUBECONFIG is not set');
  } catch (err) {
    // Only the first line: a YAML error goes on to quote the lines around the
    // mistake, and in a kubeconfig those can hold the bearer token.
    const problem = err instanceof Error ? err.message.split('\n', 1)[0] : String(err);
    log.error({ problem, kubeconfig: config.kubeconfig }, 'kubernetes integration off: KUBERNETES_INTEGRATION=on but no usable cluster credentials');
    return undefined;
  }
  const namespace = config.podNamespace ?? readNamespace(serviceAccountDir);
  if (namespace === undefined) {
    log.error('kubernetes integration off: POD_NAMESPACE is not set; pass it from the downward API (metadata.namespace)');
    return undefined;
  }
  const server = kc.getCurrentCluster()?.server ?? 'unknown';
  log.info({ server, namespace, pod: config.podName }, 'kubernetes integration on');
  return new KubernetesApi({
    client,
    api: kc.makeApiClient(client.CoreV1Api),
    server,
    namespace,
    podName: config.podName,
    podUid: config.podUid,
    timeoutMs: options.apiTimeoutMs ?? API_TIMEOUT_MS,
    counter,
    logger: log,
  });
}

function readNamespace(dir: string): string | undefined {
  try {
    return readFileSync(`${dir}/namespace`, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
