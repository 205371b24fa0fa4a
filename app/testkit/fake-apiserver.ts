// A LOCAL FAKE KUBERNETES API SERVER, a stand-in for kube-apiserver in the
// tests and the local cluster: the few core/v1 endpoints ws-echo calls, with the API's real shapes (paths,
// verbs, content types, bodies, `Status` objects for errors), backed by an
// in-memory pod store. The kube tests use it to assert what the client sent;
// the local cluster uses it so replicas run their real Kubernetes code paths
// (Events, pod-deletion-cost patches, the fleet view of the rebalancer).
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly contentType: string | undefined;
  readonly authorization: string | undefined;
  readonly body: unknown;
}

/**
 * How the server answers: normally, or a failure for every request: 403, 401,
 * 500, 422 (an answer the client does not expect), never, after 1.5 s, or by
 * resetting the connection.
 */
export type Behaviour = 'ok' | 'forbidden' | 'unauthorized' | 'server_error' | 'unprocessable' | 'hang' | 'slow' | 'reset';

interface StoredPod {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    creationTimestamp: string;
    deletionTimestamp?: string;
  };
  status: { phase: string; conditions: { type: string; status: 'True' | 'False' }[] };
}

/** A stored pod as a controller reads it. */
export interface StoredPodView {
  readonly name: string;
  readonly phase: string;
  readonly ready: boolean;
  /** metadata.deletionTimestamp is set. */
  readonly deleting: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly creationTimestamp: string;
}

/** A resource the server announces in discovery, e.g. { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments' }. */
export interface ApiResource {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly plural: string;
  /** Default true. */
  readonly namespaced?: boolean;
}

/** An object stored as it is and answered to GET, e.g. the live Deployment a chart `lookup`s. */
export interface StoredObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly [key: string]: unknown };
  readonly [field: string]: unknown;
}

export class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  behaviour: Behaviour = 'ok';
  readonly server: Server;
  readonly #pods = new Map<string, StoredPod>();
  readonly #resources: ApiResource[] = [];
  /** Objects by their API path, from putObject. */
  readonly #objects = new Map<string, StoredObject>();
  readonly #hanging: ServerResponse[] = [];
  #resourceVersion = 100;
  #port = 0;

  /** `server` lets a test pass an HTTPS server; default plain HTTP. */
  constructor(server?: Server) {
    this.server = server ?? createServer();
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res));
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.#port = (this.server.address() as AddressInfo).port;
    return this.#port;
  }

  /** Stops listening and drops every connection, hanging ones included. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = once(this.server, 'close');
    for (const res of this.#hanging.splice(0)) res.destroy();
    this.server.closeAllConnections();
    this.server.close();
    await closed;
  }

  /** A kubeconfig for this server, as `kubectl` would write it. */
  writeKubeconfig(path: string, namespace: string, token = 'fake-token'): string {
    writeFileSync(
      path,
      `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://127.0.0.1:${this.#port}
    # client-node refuses plain http unless TLS checks are off.
    insecure-skip-tls-verify: true
users:
- name: ws-echo
  user:
    token: ${token}
contexts:
- name: fake
  context: { cluster: fake, user: ws-echo, namespace: ${namespace} }
current-context: fake
`,
    );
    return path;
  }

  /** Creates a pod (not yet Ready; Running unless `phase` says Pending), as a ReplicaSet would. */
  addPod(namespace: string, name: string, labels: Record<string, string>, phase: 'Pending' | 'Running' = 'Running'): void {
    this.#pods.set(`${namespace}/${name}`, {
      metadata: { name, namespace, uid: `uid-${name}`, labels, annotations: {}, creationTimestamp: new Date().toISOString() },
      status: { phase, conditions: [{ type: 'Ready', status: 'False' }] },
    });
  }

  /** The kubelet's report that the pod's container started (Pending → Running). */
  setPhase(namespace: string, name: string, phase: 'Pending' | 'Running'): void {
    const pod = this.#pods.get(`${namespace}/${name}`);
    if (pod) pod.status.phase = phase;
  }

  /** The pods of `namespace` as a controller's pod lister sees them. */
  pods(namespace: string): StoredPodView[] {
    return [...this.#pods.values()]
      .filter((p) => p.metadata.namespace === namespace)
      .map((p) => ({
        name: p.metadata.name,
        phase: p.status.phase,
        ready: p.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'),
        deleting: p.metadata.deletionTimestamp !== undefined,
        labels: { ...p.metadata.labels },
        annotations: { ...p.metadata.annotations },
        creationTimestamp: p.metadata.creationTimestamp,
      }));
  }

  setReady(namespace: string, name: string, ready: boolean): void {
    const pod = this.#pods.get(`${namespace}/${name}`);
    if (pod) pod.status.conditions = [{ type: 'Ready', status: ready ? 'True' : 'False' }];
  }

  /** `kubectl delete pod`: the pod stays listed with a deletionTimestamp until removePod. */
  markTerminating(namespace: string, name: string): void {
    const pod = this.#pods.get(`${namespace}/${name}`);
    if (pod) pod.metadata.deletionTimestamp = new Date().toISOString();
  }

  removePod(namespace: string, name: string): void {
    this.#pods.delete(`${namespace}/${name}`);
  }

  /** What /version answers, e.g. 1.34.0 (helm's .Capabilities.KubeVersion against this server). */
  kubernetesVersion = '1.34.0';

  /**
   * Announces `resources` in discovery (/version, /api, /apis and each
   * group version's resource list), as `helm --dry-run=server` and `lookup`
   * need; pods and events of core/v1 stay served as above.
   */
  serveResources(resources: readonly ApiResource[]): void {
    this.#resources.push(...resources);
  }

  /** Stores `object` (its kind among the served resources) so that a GET of its path answers it. */
  putObject(object: StoredObject): void {
    const resource = this.#resources.find((r) => `${r.group ? `${r.group}/` : ''}${r.version}` === object.apiVersion && r.kind === object.kind);
    if (!resource) throw new Error(`putObject: ${object.apiVersion} ${object.kind} is not among the served resources`);
    this.#objects.set(objectPath(resource, object.metadata.namespace, object.metadata.name), object);
  }

  annotations(namespace: string, name: string): Record<string, string> | undefined {
    return this.#pods.get(`${namespace}/${name}`)?.metadata.annotations;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString();
    const url = new URL(req.url ?? '/', 'http://fake');
    this.requests.push({
      method: req.method ?? '',
      path: `${url.pathname}${url.search}`,
      contentType: req.headers['content-type'],
      authorization: req.headers.authorization,
      body: text ? JSON.parse(text) : undefined,
    });
    if (this.behaviour === 'hang') {
      this.#hanging.push(res);
      return;
    }
    if (this.behaviour === 'reset') return void req.socket.destroy();
    if (this.behaviour === 'slow') await sleep(1500);
    const events = /^\/api\/v1\/namespaces\/([^/]+)\/events$/.exec(url.pathname);
    const podList = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
    const pod = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(url.pathname);
    const resource = events ? 'events' : 'pods';
    if (this.behaviour === 'forbidden') {
      const verb = { POST: 'create', PATCH: 'patch', GET: podList ? 'list' : 'get' }[req.method ?? ''] ?? 'get';
      return status(
        res,
        403,
        'Forbidden',
        `${resource} is forbidden: User "system:serviceaccount:apps:ws-echo" cannot ${verb} resource "${resource}" in API group "" in the namespace "${(events ?? podList ?? pod)?.[1] ?? ''}"`,
      );
    }
    if (this.behaviour === 'unauthorized') return status(res, 401, 'Unauthorized', 'Unauthorized');
    if (this.behaviour === 'server_error') return status(res, 500, 'InternalError', 'Internal error occurred: etcdserver: request timed out');
    if (this.behaviour === 'unprocessable')
      return status(res, 422, 'Invalid', `${resource === 'events' ? 'Event' : 'Pod'}.core "x" is invalid: metadata.namespace: Invalid value`);
    if (events && req.method === 'POST') {
      const event = JSON.parse(text) as { metadata: { generateName: string } };
      const created = {
        kind: 'Event',
        apiVersion: 'v1',
        ...event,
        metadata: {
          ...event.metadata,
          name: `${event.metadata.generateName}${(this.#resourceVersion++).toString(16)}`,
          uid: `e-${this.#resourceVersion}`,
          resourceVersion: String(this.#resourceVersion),
        },
      };
      return json(res, 201, created);
    }
    if (podList && req.method === 'GET') {
      const selector = parseSelector(url.searchParams.get('labelSelector') ?? '');
      const items = [...this.#pods.values()].filter(
        (p) => p.metadata.namespace === podList[1] && Object.entries(selector).every(([k, v]) => p.metadata.labels[k] === v),
      );
      return json(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.#resourceVersion) }, items: items.map(withKind) });
    }
    if (pod && req.method === 'PATCH') {
      if (req.headers['content-type'] !== 'application/merge-patch+json') {
        return status(
          res,
          415,
          'UnsupportedMediaType',
          'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml',
        );
      }
      const stored = this.#pods.get(`${pod[1]}/${pod[2]}`);
      if (!stored) return status(res, 404, 'NotFound', `pods "${pod[2]}" not found`);
      const patch = JSON.parse(text) as { metadata?: { annotations?: Record<string, string | null> } };
      // RFC 7386: null deletes a key.
      for (const [key, value] of Object.entries(patch.metadata?.annotations ?? {})) {
        if (value === null) delete stored.metadata.annotations[key];
        else stored.metadata.annotations[key] = value;
      }
      this.#resourceVersion++;
      return json(res, 200, withKind(stored));
    }
    if (pod && req.method === 'GET') {
      const stored = this.#pods.get(`${pod[1]}/${pod[2]}`);
      return stored ? json(res, 200, withKind(stored)) : status(res, 404, 'NotFound', `pods "${pod[2]}" not found`);
    }
    if (req.method === 'GET') {
      const discovery = this.#discovery(url.pathname);
      if (discovery !== undefined) return json(res, 200, discovery);
      const object = this.#objects.get(url.pathname);
      if (object) return json(res, 200, object);
    }
    return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  }

  /** The discovery document at `path` for the served resources, or undefined. */
  #discovery(path: string): unknown {
    if (path === '/version') {
      const [major, minor] = this.kubernetesVersion.split('.');
      return { major, minor, gitVersion: `v${this.kubernetesVersion}`, platform: 'linux/amd64' };
    }
    if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
    const groupVersions = [...new Set(this.#resources.filter((r) => r.group !== '').map((r) => `${r.group}/${r.version}`))];
    if (path === '/apis') {
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: groupVersions.map((gv) => {
          const [name, version] = gv.split('/') as [string, string];
          return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
        }),
      };
    }
    const list = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(path);
    if (!list) return undefined;
    const group = list[1] ? '' : (list[2] ?? '');
    const version = list[1] ?? list[3] ?? '';
    const resources = [...this.#resources, ...CORE_RESOURCES].filter((r) => r.group === group && r.version === version);
    if (resources.length === 0) return undefined;
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources: resources.map((r) => ({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced ?? true,
        kind: r.kind,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      })),
    };
  }
}

/** What the service itself calls, always announced. */
const CORE_RESOURCES: readonly ApiResource[] = [
  { group: '', version: 'v1', kind: 'Pod', plural: 'pods' },
  { group: '', version: 'v1', kind: 'Event', plural: 'events' },
];

/** /api/v1/namespaces/ns/pods/name, /apis/apps/v1/namespaces/ns/deployments/name, … */
function objectPath(resource: ApiResource, namespace: string | undefined, name: string): string {
  const base = resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  return `${base}${namespace !== undefined && (resource.namespaced ?? true) ? `/namespaces/${namespace}` : ''}/${resource.plural}/${name}`;
}

/** Equality-based label selectors ("a=b,c=d"), the only kind ws-echo sends. */
function parseSelector(selector: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const term of selector.split(',').filter(Boolean)) {
    const [key, value] = term.split('=');
    if (key && value !== undefined) pairs[key] = value;
  }
  return pairs;
}

function withKind(pod: StoredPod): unknown {
  return { kind: 'Pod', apiVersion: 'v1', ...pod };
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}
