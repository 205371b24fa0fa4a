// A kind cluster as k8s/e2e-kind.sh sees it through docker, kind, kubectl,
// helm and npm, for running the script where no Docker engine is. Whatever
// carries traffic is real: the release's pods are a LocalCluster (real
// service processes behind real nginx, scraped by real Prometheus), so the
// script's clients really connect, `kubectl rollout restart` really drains
// pods with 1012, an Ingress change really reloads nginx, the HPA's replica
// count follows the pods' real connection counts, PromQL is answered by
// Prometheus itself, and DrainFinished Events are the ones the pods posted.
// The rest (controllers installing, conditions, CRDs) answers the way the
// real tools print it, and `faults` makes a part misbehave.
import { readFileSync } from 'node:fs';
import { httpGet } from '../http.js';
import type { ToolAnswer, ToolCall } from '../fake-tools.js';
import { LocalCluster } from './local-cluster.js';
import { proxySettingsFromChart } from './from-chart.js';

export interface FakeKindOptions {
  readonly cluster: string;
  readonly namespace: string;
  readonly release: string;
  /** Folder for the local cluster's nginx, Prometheus and logs. */
  readonly dir: string;
  /** Pods before any scaling: the chart's replicaCount the script installs. */
  readonly replicas: number;
}

export interface Faults {
  /** `kind get clusters` already lists the cluster: the script must reuse it, and not delete it. */
  existingCluster?: boolean;
  /** The APIService of prometheus-adapter never becomes Available. */
  adapterUnavailable?: boolean;
  /** SIGKILL the load client of this step when its operation starts (read from the script's pid file). */
  killLoadOf?: { step: string; reportDir: string };
  /** What `kind version` prints as the release. */
  kindVersion?: string;
  /** The NetworkPolicy probe pod's final phase (Failed: blocked, as Calico does). */
  probePhase?: 'Failed' | 'Succeeded';
}

export class FakeKind {
  /** kubectl calls that did not name the kind cluster's context. */
  readonly withoutContext: ToolCall[] = [];
  /** Calls this fake has no answer for (they exit 1). */
  readonly unanswered: ToolCall[] = [];
  faults: Faults = {};
  #exists = false;
  #operation: Promise<unknown> = Promise.resolve();
  #busy = false;
  #autoscaling = { min: 0, max: Infinity, target: Infinity };

  private constructor(
    readonly options: FakeKindOptions,
    readonly pods: LocalCluster,
  ) {}

  /** Starts the release's pods with short drains and a fast rebalancer. */
  static async start(options: FakeKindOptions): Promise<FakeKind> {
    const pods = await LocalCluster.start({
      replicas: options.replicas,
      release: options.release,
      namespace: options.namespace,
      // A drain window of two of Prometheus's 1 s scrape intervals: a drain (the gauge lives from its start to the exit) is always scraped at least once.
      drain: { preStopSeconds: 0.2, windowSeconds: 2, closeTimeoutSeconds: 0.5 },
      proxy: proxySettingsFromChart(),
      naive: false,
      prometheus: true,
      dir: options.dir,
      rebalance: { intervalSeconds: 0.3, rate: 0.5, tolerance: 0.2, cooldownSeconds: 0 },
    });
    return new FakeKind(options, pods);
  }

  get url(): string {
    return `${this.pods.url}/echo`;
  }

  /** Sets up a new run: the cluster does not exist unless the faults say so. */
  reset(faults: Faults): void {
    this.faults = faults;
    this.#exists = faults.existingCluster === true;
    this.withoutContext.length = 0;
    this.unanswered.length = 0;
  }

  async stop(): Promise<void> {
    await this.#operation.catch(() => {});
    await this.pods.stop();
  }

  readonly handle = async (call: ToolCall): Promise<ToolAnswer> => {
    const answer = await this.#answer(call);
    if (answer === undefined) {
      this.unanswered.push(call);
      return { code: 1, stderr: `fake ${call.tool}: no answer for: ${call.args.join(' ')}\n` };
    }
    return answer;
  };

  async #answer(call: ToolCall): Promise<ToolAnswer | undefined> {
    switch (call.tool) {
      case 'docker':
        return this.#docker(call.args.join(' '));
      case 'kind':
        return this.#kind(call.args.join(' '));
      case 'npm':
        return /^(ls --depth=0|run build --silent)$/.test(call.args.join(' ')) ? {} : undefined;
      case 'helm':
        return this.#helm(call);
      case 'kubectl': {
        const context = `kind-${this.options.cluster}`;
        const at = call.args.indexOf('--context');
        if (at < 0 || call.args[at + 1] !== context) {
          this.withoutContext.push(call);
          if (call.args.join(' ') === 'version --client') return { stdout: 'Client Version: v1.36.1\nKustomize Version: v5.7.1\n' };
          if (call.args.join(' ') === `config get-contexts ${context}`) return { stdout: `CURRENT   NAME   CLUSTER\n*   ${context}   ${context}\n` };
          return undefined;
        }
        return this.#kubectl(
          call.args.filter((_, i) => i !== at && i !== at + 1),
          call.stdin,
        );
      }
      default:
        return undefined;
    }
  }

  #docker(line: string): ToolAnswer | undefined {
    if (line === 'version --format {{.Server.Version}}') return { stdout: '29.1.3\n' };
    if (/^build -t ws-echo:\S+ \.$/.test(line)) return { stdout: 'naming to docker.io/library/ws-echo done\n' };
    if (/^save -o \S+ ws-echo:\S+$/.test(line)) return {};
    return undefined;
  }

  #kind(line: string): ToolAnswer | undefined {
    const name = this.options.cluster;
    if (line === 'version') return { stdout: `kind ${this.faults.kindVersion ?? 'v0.32.0'} go1.24.6 linux/amd64\n` };
    if (line === 'get clusters') return this.#exists ? { stdout: `${name}\n` } : { stderr: 'No kind clusters found.\n' };
    if (line.startsWith(`create cluster --name ${name} --image kindest/node:`)) {
      if (this.#exists) return { code: 1, stderr: `ERROR: failed to create cluster: node(s) already exist for a cluster with the name "${name}"\n` };
      this.#exists = true;
      return { stderr: `Creating cluster "${name}" ...\n ✓ Ensuring node image\nSet kubectl context to "kind-${name}"\n` };
    }
    if (new RegExp(`^load image-archive \\S+ --name ${name}$`).test(line)) return {};
    if (line === `delete cluster --name ${name}`) {
      this.#exists = false;
      return { stderr: `Deleting cluster "${name}" ...\n` };
    }
    if (line === `export kubeconfig --name ${name}`) return { stderr: `Set kubectl context to "kind-${name}"\n` };
    return undefined;
  }

  #helm(call: ToolCall): ToolAnswer | undefined {
    const args = call.args;
    if (args.join(' ') === 'version --template {{.Version}}') return { stdout: 'v3.19.0' };
    if (args[0] !== '--kube-context' || args[1] !== `kind-${this.options.cluster}`) return undefined;
    const [verb, second, third] = args.slice(2);
    if (verb === 'repo' && second === 'add') return { stdout: `"${third}" has been added to your repositories\n` };
    const name = verb === 'upgrade' && second === '--install' ? args[4] : second;
    if (verb === 'upgrade' && name !== undefined) {
      if (name === this.options.release) this.#readAutoscaling(args);
      return { stdout: `Release "${name}" has been upgraded. Happy Helming!\nSTATUS: deployed\n` };
    }
    if (verb === 'test' && name === this.options.release) {
      return { stdout: `NAME: ${name}\nTEST SUITE:     ${name}-ws-echo-test\nPhase:          Succeeded\nselftest: 100/100 echoed\n` };
    }
    if (verb === 'list') return { stdout: 'NAME\tNAMESPACE\tREVISION\tSTATUS\n' };
    return undefined;
  }

  // The HPA follows what the chart was installed with.
  #readAutoscaling(args: readonly string[]): void {
    const set = (key: string): number | undefined => {
      const arg = args.find((a) => a.startsWith(`${key}=`));
      return arg === undefined ? undefined : Number(arg.slice(key.length + 1));
    };
    const on = args.includes('autoscaling.enabled=true') || args.includes('keda.enabled=true');
    const replicas = set('replicaCount') ?? this.options.replicas;
    this.#autoscaling = on
      ? { min: set('autoscaling.minReplicas') ?? 3, max: set('autoscaling.maxReplicas') ?? 20, target: set('autoscaling.targetConnectionsPerPod') ?? 5000 }
      : { min: replicas, max: replicas, target: Infinity };
  }

  async #kubectl(args: string[], stdin: string): Promise<ToolAnswer | undefined> {
    const line = args.join(' ');
    const ns = this.options.namespace;
    const deploy = `${this.options.release}-ws-echo`;
    const jsonpath = args.find((a) => a.startsWith('jsonpath='))?.slice('jsonpath='.length) ?? args[args.indexOf('-o') + 1]?.replace(/^jsonpath=/, '');
    if (!this.#exists) return { code: 1, stderr: `error: context "kind-${this.options.cluster}" does not exist\n` };

    // Nodes, CRDs, controllers.
    if (line.startsWith('wait --for=condition=Ready nodes --all'))
      return {
        stdout: this.#nodes()
          .map((n) => `node/${n} condition met\n`)
          .join(''),
      };
    if (line === 'get nodes --no-headers')
      return {
        stdout: this.#nodes()
          .map((n) => `${n}   Ready   <none>   3m   v1.36.1\n`)
          .join(''),
      };
    if (line.startsWith('wait --for condition=established')) {
      return {
        stdout: args
          .filter((a) => a.startsWith('crd/'))
          .map((c) => `customresourcedefinition.apiextensions.k8s.io/${c.slice(4)} condition met\n`)
          .join(''),
      };
    }
    if (line === 'get daemonset kindnet -n kube-system') return { stdout: 'NAME      DESIRED   CURRENT   READY\nkindnet   4         4         4\n' };
    if (line.startsWith('get ') && jsonpath?.startsWith('{.status.conditions[?(@.type==')) {
      const [, resource] = args;
      if (resource === 'apiservice/v1beta1.custom.metrics.k8s.io') return { stdout: this.faults.adapterUnavailable ? 'False' : 'True' };
      if (/^(apiservice\/v1beta1\.external\.metrics\.k8s\.io|tigerastatus\/calico|gateway\/ws-echo|scaledobject\/|hpa\/)/.test(resource ?? ''))
        return { stdout: 'True' };
      return undefined;
    }
    if (line.startsWith(`get httproute/${deploy} -n ${ns}`)) return { stdout: 'True' };
    if (line === 'apply -f k8s/envoy-gateway.yaml') {
      return {
        stdout:
          'envoyproxy.gateway.envoyproxy.io/ws-echo-kind created\ngatewayclass.gateway.networking.k8s.io/ws-echo-envoy created\ngateway.gateway.networking.k8s.io/ws-echo created\n',
      };
    }

    // Prometheus, through the API server's service proxy: the real one.
    const proxy = /^get --raw \/api\/v1\/namespaces\/monitoring\/services\/kube-prometheus-stack-prometheus:9090\/proxy(\/api\/v1\/query\?query=.*)$/.exec(
      line,
    );
    if (proxy) {
      const answer = await httpGet(this.pods.prometheus!.port, proxy[1]!);
      return answer.status === 200 ? { stdout: answer.body } : { code: 1, stderr: `Error from server (BadRequest): ${answer.body}\n` };
    }
    if (line === `get --raw /apis/custom.metrics.k8s.io/v1beta1/namespaces/${ns}/pods/*/websocket_connections_active`) {
      const items = await Promise.all(
        this.pods.serving.map(async (pod) => ({
          describedObject: { kind: 'Pod', namespace: ns, name: pod.name, apiVersion: '/v1' },
          metricName: 'websocket_connections_active',
          timestamp: new Date().toISOString(),
          value: String((await pod.connections()) ?? 0),
        })),
      );
      return { stdout: JSON.stringify({ kind: 'MetricValueList', apiVersion: 'custom.metrics.k8s.io/v1beta1', metadata: {}, items }) };
    }

    // The release's pods.
    const selector = `-l app.kubernetes.io/name=ws-echo,app.kubernetes.io/instance=${this.options.release}`;
    if (line.startsWith(`get pods -n ${ns} ${selector} -o jsonpath=`)) {
      const live = this.pods.allReplicas.filter((r) => r.running);
      const terminating = (name: string): boolean => !this.pods.serving.some((s) => s.name === name);
      if (jsonpath === '{range .items[*]}{.metadata.deletionTimestamp}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}') {
        return { stdout: live.map((r) => `${terminating(r.name) ? '2026-11-30T10:00:00Z' : ''} True\n`).join('') };
      }
      if (jsonpath === '{range .items[*]}{.metadata.name}{" "}{.metadata.deletionTimestamp}{"\\n"}{end}') {
        return { stdout: live.map((r) => `${r.name} ${terminating(r.name) ? '2026-11-30T10:00:00Z' : ''}\n`).join('') };
      }
      if (jsonpath === '{.items[0].spec.nodeName}') return { stdout: `${this.options.cluster}-worker` };
      return undefined;
    }
    if (line === `get pods -n ${ns} ${selector} --field-selector spec.nodeName=${this.options.cluster}-worker -o name`) {
      return { stdout: `pod/${this.pods.serving[0]?.name ?? 'none'}\n` };
    }
    if (line === `get deployment/${deploy} -n ${ns} -o jsonpath={.spec.template.spec.terminationGracePeriodSeconds}`) return { stdout: '3' };
    if (line === `rollout restart deployment/${deploy} -n ${ns}`) {
      // A killed client is the fault under test: no need for the rollout then.
      if (!this.#killLoad('rollout') && !this.#killLoad('gateway')) this.#start(() => this.pods.rolloutRestart());
      return { stdout: `deployment.apps/${deploy} restarted\n` };
    }
    if (line.startsWith(`rollout status deployment/${deploy} -n ${ns} --timeout`)) {
      await this.#operation;
      return { stdout: `deployment "${deploy}" successfully rolled out\n` };
    }
    if (line === `get events -n ${ns} --field-selector reason=DrainFinished -o jsonpath={range .items[*]}{.involvedObject.name}{": "}{.message}{"\\n"}{end}`) {
      const events = this.pods.api.requests
        .filter((r) => r.method === 'POST' && r.path.endsWith('/events'))
        .map((r) => r.body as { reason?: string; message?: string; involvedObject?: { name?: string } })
        .filter((e) => e.reason === 'DrainFinished');
      return { stdout: events.map((e) => `${e.involvedObject?.name}: ${e.message}\n`).join('') };
    }
    if (line === `get hpa/${deploy} -n ${ns} -o jsonpath={.status.currentReplicas}`) return { stdout: String(await this.#hpa()) };

    // ingress-nginx: the Ingress change reloads the real nginx.
    if (line === 'get configmap ingress-nginx-controller -n ingress-nginx -o jsonpath={.data.worker-shutdown-timeout}') return { stdout: '3600s' };
    if (line === 'logs -n ingress-nginx deployment/ingress-nginx-controller --tail=-1') {
      return {
        stdout: this.pods.nginx.reloads.map((r) => `I1130 ${new Date(r.at).toISOString()} controller.go:214] "Backend successfully reloaded"\n`).join(''),
      };
    }
    if (line === 'apply -f -' && /kind: Ingress\n/.test(stdin)) {
      await this.pods.nginx.setUpstreams(this.pods.nginx.upstreams);
      return { stdout: `ingress.networking.k8s.io/${/name: (\S+)/.exec(stdin)?.[1]} created\n` };
    }
    if (line === `delete ingress ${deploy}-reload-probe -n ${ns}`) {
      await this.pods.nginx.setUpstreams(this.pods.nginx.upstreams);
      return { stdout: `ingress.networking.k8s.io "${deploy}-reload-probe" deleted\n` };
    }

    // A node drain: the release's pod on that node is evicted and replaced elsewhere.
    if (line.startsWith(`drain ${this.options.cluster}-worker --ignore-daemonsets --delete-emptydir-data --timeout`)) {
      if (!this.#killLoad('drain')) this.#start(() => this.pods.evictOne());
      await this.#operation;
      return { stdout: `node/${this.options.cluster}-worker cordoned\nnode/${this.options.cluster}-worker drained\n` };
    }
    if (line === `uncordon ${this.options.cluster}-worker`) return { stdout: `node/${this.options.cluster}-worker uncordoned\n` };

    // The NetworkPolicy probe.
    if (line.startsWith('delete pod ws-echo-netpol-probe -n default --ignore-not-found')) return {};
    if (line.startsWith('run ws-echo-netpol-probe -n default --image=ws-echo:')) return { stdout: 'pod/ws-echo-netpol-probe created\n' };
    if (line === 'get pod ws-echo-netpol-probe -n default -o jsonpath={.status.phase}') return { stdout: this.faults.probePhase ?? 'Failed' };
    if (line === 'logs ws-echo-netpol-probe -n default') {
      return { stdout: `selftest: could not open ws://${deploy}.${ns}.svc:8000/echo within 10s (failed upgrades: {"0":4})\n` };
    }

    // Diagnostics.
    if (/^(get (nodes|pods -A) -o wide|get events -A --sort-by=\.lastTimestamp|get apiservices|get tigerastatus -o wide)$/.test(line))
      return { stdout: `(${line})\n` };
    if (/^(describe|logs) /.test(line)) return { stdout: `(${line})\n` };
    return undefined;
  }

  #nodes(): string[] {
    const name = this.options.cluster;
    return [`${name}-control-plane`, `${name}-worker`, `${name}-worker2`, `${name}-worker3`];
  }

  // Runs one cluster operation at a time, as a Deployment controller would.
  #start(operation: () => Promise<unknown>): void {
    this.#busy = true;
    this.#operation = this.#operation.then(operation).finally(() => {
      this.#busy = false;
    });
  }

  /** The HPA: ceil(connections / target) within min and max, acted on as it is read. */
  async #hpa(): Promise<number> {
    const counts = await Promise.all(this.pods.serving.map((p) => p.connections()));
    const total = counts.reduce<number>((a, b) => a + (b ?? 0), 0);
    const { min, max, target } = this.#autoscaling;
    const desired = Math.min(max, Math.max(min, Math.ceil(total / target)));
    const current = this.pods.serving.length;
    if (!this.#busy && desired > current) this.#start(() => this.pods.scaleUp(desired));
    if (!this.#busy && desired < current) this.#start(() => this.pods.scaleDown(desired));
    return current;
  }

  /** SIGKILLs the load client of `step` if the faults say so; whether it did. */
  #killLoad(step: string): boolean {
    const kill = this.faults.killLoadOf;
    if (kill?.step !== step) return false;
    const pid = Number(readFileSync(`${kill.reportDir}/load-${step}.pid`, 'utf8'));
    process.kill(pid, 'SIGKILL');
    return true;
  }
}
