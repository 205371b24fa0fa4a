// The chart's security, on every pod spec, Role and NetworkPolicy that helm
// renders for every ci/ scenario and Kubernetes release: the full restricted
// Pod Security Standard plus a read-only root filesystem, RBAC that grants
// exactly the Kubernetes API calls the service makes, and a NetworkPolicy
// that admits each port only from where it is used. Figures go into
// docs/RELIABILITY.md (suite chart-security).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KUBERNETES_API_CALLS } from '../../../src/kube-api.js';
import { evaluatePolicy } from '../../../testkit/chart/admission-policy.js';
import { NAMESPACE, one, RELEASE, render, renderScenarios, scenarios } from '../../../testkit/chart/helm.js';
import { KUBERNETES_VERSIONS, type Manifest, validateExact, validateModel } from '../../../testkit/chart/k8s-schemas.js';
import { RESTRICTED_CONTROLS, restrictedViolations, type PodLike } from '../../../testkit/chart/pod-security.js';
import { scenarioValues, valueAt } from '../../../testkit/chart/values.js';
import { Figures } from '../../../testkit/reliability.js';
import { needsFetched } from '../../../testkit/tools.js';

/** The reason these tests cannot run here (helm or the API models could not be fetched), if any. */
const skip = needsFetched('helm');

const figures = new Figures('chart-security');
const FULLNAME = `${RELEASE}-ws-echo`;
after(() => figures.write());

describe('chart security', { skip }, () => {
  let rendered = new Map<string, Manifest[]>();
  before(async () => {
    if (skip) return;
    rendered = await renderScenarios();
  });

  const podsOf = (docs: Manifest[]): { name: string; pod: PodLike }[] =>
    docs.flatMap((d) => {
      if (d.kind === 'Pod') return [{ name: `Pod/${d.metadata.name}`, pod: { metadata: d.metadata, spec: d.spec as Record<string, unknown> } }];
      const template = (d.spec as { template?: PodLike } | undefined)?.template;
      return template ? [{ name: `${d.kind}/${d.metadata.name}`, pod: template }] : [];
    });

  it('passes every control of the restricted Pod Security Standard, with a read-only root filesystem, for every pod spec of every scenario', () => {
    const problems: string[] = [];
    let pods = 0;
    for (const [name, docs] of rendered) {
      for (const { name: podName, pod } of podsOf(docs)) {
        pods++;
        for (const v of restrictedViolations(pod)) problems.push(`${name} ${podName}: ${v}`);
        // Not part of the standard, but the chart's promise: the service writes nothing.
        for (const c of (pod.spec as { containers: { name: string; securityContext?: { readOnlyRootFilesystem?: boolean } }[] }).containers) {
          if (c.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${name} ${podName}: ${c.name} must have readOnlyRootFilesystem: true`);
        }
      }
    }
    assert.deepEqual(problems, []);
    // A Deployment and the helm test pod in each of the scenarios, for both releases.
    assert.equal(pods, rendered.size * 2);
    figures.add({
      case: `chart: restricted Pod Security Standard (${Object.keys(RESTRICTED_CONTROLS).length} controls) and a read-only root filesystem on every pod spec rendered by helm for ${scenarios().length} chart/ci scenarios × Kubernetes 1.30 and 1.34 (Deployment and helm test pod)`,
      inputs: pods,
      offender: `${pods} pod specs, 0 violations`,
      others: '-',
      lost: 0,
    });
  });

  // The breaks below reach into any field of a pod spec, as a hostile or
  // careless values file could: they are typed loosely on purpose.
  /* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-assignment */
  it('the checker itself flags each control when the rendered spec is broken that way', () => {
    const base = podsOf(rendered.get('default@1.34')!).find((p) => p.name.startsWith('Deployment'))!.pod;
    const container = (spec: Record<string, any>): Record<string, any> => spec.containers[0];
    const breaks: [string, (spec: Record<string, any>, pod: { metadata: { annotations: Record<string, string> } }) => void][] = [
      ['HostProcess', (s) => (s.securityContext.windowsOptions = { hostProcess: true })],
      ['Host Namespaces', (s) => (s.hostNetwork = true)],
      ['Host Namespaces', (s) => (s.hostPID = true)],
      ['Host Namespaces', (s) => (s.hostIPC = true)],
      ['Privileged Containers', (s) => (container(s).securityContext.privileged = true)],
      [
        'Privileged Containers',
        (s) => (s.initContainers = [{ name: 'init', image: 'x', securityContext: { ...container(s).securityContext, privileged: true } }]),
      ],
      ['Capabilities (Baseline)', (s) => (container(s).securityContext.capabilities.add = ['SYS_ADMIN'])],
      ['Capabilities (Restricted)', (s) => (container(s).securityContext.capabilities.add = ['CHOWN'])],
      ['Capabilities (Restricted)', (s) => (container(s).securityContext.capabilities.drop = ['NET_RAW'])],
      ['HostPath Volumes', (s) => (s.volumes = [{ name: 'host', hostPath: { path: '/' } }])],
      ['Volume Types', (s) => (s.volumes = [{ name: 'nfs', nfs: { server: 'x', path: '/' } }])],
      ['Host Ports', (s) => (container(s).ports[0].hostPort = 8000)],
      ['Host Probes / Lifecycle Hooks', (s) => (container(s).readinessProbe.httpGet.host = '169.254.169.254')],
      ['AppArmor', (s) => (container(s).securityContext.appArmorProfile = { type: 'Unconfined' })],
      ['AppArmor', (_s, p) => (p.metadata.annotations = { 'container.apparmor.security.beta.kubernetes.io/ws-echo': 'unconfined' })],
      ['SELinux', (s) => (container(s).securityContext.seLinuxOptions = { type: 'spc_t' })],
      ['SELinux', (s) => (s.securityContext.seLinuxOptions = { user: 'system_u' })],
      ['/proc Mount Type', (s) => (container(s).securityContext.procMount = 'Unmasked')],
      ['Seccomp (Baseline)', (s) => (container(s).securityContext.seccompProfile = { type: 'Unconfined' })],
      [
        'Seccomp (Restricted)',
        (s) => {
          delete s.securityContext.seccompProfile;
          delete container(s).securityContext.seccompProfile;
        },
      ],
      ['Sysctls', (s) => (s.securityContext.sysctls = [{ name: 'kernel.msgmax', value: '1' }])],
      ['Privilege Escalation', (s) => delete container(s).securityContext.allowPrivilegeEscalation],
      ['Running as Non-root', (s) => (container(s).securityContext.runAsNonRoot = false)],
      [
        'Running as Non-root',
        (s) => {
          delete s.securityContext.runAsNonRoot;
          delete container(s).securityContext.runAsNonRoot;
        },
      ],
      ['Running as Non-root user', (s) => (container(s).securityContext.runAsUser = 0)],
    ];
    const fine: [string, (spec: Record<string, any>) => void][] = [
      ['NET_BIND_SERVICE', (s) => (container(s).securityContext.capabilities.add = ['NET_BIND_SERVICE'])],
      ['an emptyDir', (s) => (s.volumes = [{ name: 'tmp', emptyDir: {} }])],
      ['a safe sysctl', (s) => (s.securityContext.sysctls = [{ name: 'net.ipv4.tcp_syncookies', value: '1' }])],
      ['a Localhost seccomp profile', (s) => (container(s).securityContext.seccompProfile = { type: 'Localhost', localhostProfile: 'ws-echo.json' })],
      ['container_t', (s) => (container(s).securityContext.seLinuxOptions = { type: 'container_t' })],
    ];
    for (const [control, breakIt] of breaks) {
      const pod = structuredClone({ metadata: { annotations: {} }, spec: base.spec as Record<string, any> });
      breakIt(pod.spec, pod);
      const violations = restrictedViolations(pod);
      assert.ok(
        violations.some((v) => v.startsWith(`${control}: `)),
        `${control} not flagged: ${JSON.stringify(violations)}`,
      );
    }
    for (const [what, change] of fine) {
      const pod = structuredClone({ spec: base.spec as Record<string, any> });
      change(pod.spec);
      assert.deepEqual(restrictedViolations(pod), [], `${what} is allowed`);
    }
    assert.equal(new Set(breaks.map(([c]) => c)).size, Object.keys(RESTRICTED_CONTROLS).length, 'every control is exercised');
  });
  /* eslint-enable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-assignment */

  it('ships a NetworkPolicy example that admits the WebSocket port only from the ingress controller and metrics only from monitoring', async () => {
    const docs = await render({ set: ['networkPolicy.enabled=true'] });
    const policies = docs.filter((d) => d.kind === 'NetworkPolicy');
    assert.equal(policies.length, 1);
    const spec = policies[0]!.spec as {
      podSelector: { matchLabels: Record<string, string> };
      policyTypes: string[];
      ingress: { from?: Record<string, unknown>[]; ports?: { port: string }[] }[];
    };
    const deployment = docs.find((d) => d.kind === 'Deployment')!;
    assert.deepEqual(
      spec.podSelector.matchLabels,
      (deployment.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
      'selects the service pods',
    );
    assert.deepEqual(spec.policyTypes, ['Ingress'], 'ingress is default-deny for the selected pods');
    for (const rule of spec.ingress) {
      assert.ok(rule.from && rule.from.length > 0, 'no rule admits every source');
      assert.ok(rule.ports && rule.ports.length > 0, 'no rule admits every port');
    }
    const metricsRules = spec.ingress.filter((r) => r.ports!.some((p) => p.port === 'metrics'));
    assert.deepEqual(
      metricsRules.flatMap((r) => r.from),
      [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      'metrics only from the monitoring namespace',
    );
    assert.ok(
      spec.ingress.filter((r) => r.ports!.some((p) => p.port === 'ws')).every((r) => !r.ports!.some((p) => p.port === 'metrics')),
      'the ingress controller cannot reach metrics',
    );
    const wsRules = spec.ingress.filter((r) => r.ports!.some((p) => p.port === 'ws'));
    assert.deepEqual(
      wsRules.flatMap((r) => r.from),
      [
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
        { podSelector: { matchLabels: { 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': 'helm-test' } } },
      ],
      'ws only from the ingress controller and the helm test pod',
    );
    figures.add({
      case: 'chart: NetworkPolicy example (networkPolicy.enabled=true)',
      inputs: 1,
      offender: 'ws port: ingress-nginx namespace and the helm test pod only; metrics port: monitoring namespace only; everything else denied',
      others: '-',
      lost: 0,
    });
  });

  it('grants exactly the Kubernetes API calls the service makes, in its namespace only, in every scenario', () => {
    // Every call of app/src/kube.ts; the fleet view's list only where the rebalancer reads the fleet.
    const calls = KUBERNETES_API_CALLS as readonly { apiGroup: string; resource: string; verb: string; only?: string | undefined }[];
    const rulesFor = (fleetView: boolean): unknown[] =>
      calls.filter((c) => c.only === undefined || fleetView).map((c) => ({ apiGroups: [c.apiGroup], resources: [c.resource], verbs: [c.verb] }));
    let roles = 0;
    for (const [name, docs] of rendered) {
      assert.ok(!docs.some((d) => d.kind === 'ClusterRole' || d.kind === 'ClusterRoleBinding'), `${name}: no cluster-wide RBAC`);
      const values = scenarioValues(name.split('@')[0]!);
      const fleetView = ['rebalance.enabled', 'rebalance.fleetView', 'kubernetesIntegration.enabled'].every((key) => valueAt(values, key) === true);
      for (const role of docs.filter((d) => d.kind === 'Role')) {
        roles++;
        assert.deepEqual((role as unknown as { rules: unknown }).rules, rulesFor(fleetView), `${name}: the Role grants exactly what the service calls`);
      }
      for (const binding of docs.filter((d) => d.kind === 'RoleBinding')) {
        const b = binding as unknown as { roleRef: { kind: string }; subjects: { kind: string; name: string }[] };
        assert.equal(b.roleRef.kind, 'Role');
        const account = docs.find((d) => d.kind === 'ServiceAccount');
        assert.deepEqual(
          b.subjects.map((s) => [s.kind, s.name]),
          [['ServiceAccount', account?.metadata.name]],
          `${name}: bound to the chart's own service account only`,
        );
      }
      const testPod = docs.find((d) => d.kind === 'Pod');
      if (testPod)
        assert.equal((testPod.spec as { automountServiceAccountToken?: boolean }).automountServiceAccountToken, false, `${name}: the test pod gets no token`);
    }
    assert.ok(roles > 0);
    figures.add({
      case: `chart: RBAC in every scenario × release (${rendered.size} renders)`,
      inputs: rendered.size,
      offender: `no ClusterRole or ClusterRoleBinding; each Role (${roles}) grants exactly calls of KUBERNETES_API_CALLS (${calls.map((c) => `${c.verb} ${c.resource}${c.only ? ` with ${c.only}` : ''}`).join(', ')}), one verb and resource per rule, no wildcard; bound to the chart's service account only; the helm test pod mounts no token`,
      others: '-',
      lost: 0,
    });
  });

  it('never puts metrics on the public Service, even a LoadBalancer; the ServiceMonitor gets a ClusterIP metrics Service of its own', async () => {
    const docs = await render({ set: ['service.type=LoadBalancer', 'metrics.serviceMonitor.enabled=true'] });
    const services = docs.filter((d) => d.kind === 'Service');
    const publicService = services.find((d) => d.metadata.name === FULLNAME)!;
    assert.deepEqual(
      (publicService.spec as { ports: { name: string }[] }).ports.map((p) => p.name),
      ['ws'],
    );
    const metricsService = services.find((d) => d.metadata.name === `${FULLNAME}-metrics`)!;
    assert.deepEqual(
      [(metricsService.spec as { type: string }).type, (metricsService.spec as { ports: { name: string }[] }).ports.map((p) => p.name)],
      ['ClusterIP', ['metrics']],
    );
    const monitor = docs.find((d) => d.kind === 'ServiceMonitor')!;
    const selector = (monitor.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
    for (const service of services) {
      const selected = Object.entries(selector).every(([k, v]) => service.metadata.labels?.[k] === v);
      assert.equal(selected, service === metricsService, `${service.metadata.name} is ${selected ? '' : 'not '}scraped`);
    }
    assert.ok(!(await render()).some((d) => d.metadata.name === `${FULLNAME}-metrics`), 'no metrics Service without the ServiceMonitor');
  });

  it('admits the Gateway\'s data plane on the WebSocket port when the HTTPRoute is on, and restricts egress to DNS and the API server when asked', async () => {
    const ingressFrom = (docs: Manifest[]): unknown[] =>
      (docs.find((d) => d.kind === 'NetworkPolicy')!.spec as { ingress: { from: unknown[]; ports: { port: string }[] }[] }).ingress.find((r) =>
        r.ports.some((p) => p.port === 'ws'),
      )!.from;
    const testPod = { podSelector: { matchLabels: { 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': 'helm-test' } } };
    const viaGateway = await render({ scenario: 'gateway', set: ['networkPolicy.enabled=true'] });
    assert.deepEqual(ingressFrom(viaGateway), [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'gateway-system' } } }, testPod], "the parentRefs' namespaces");
    const peers = await render({
      scenario: 'gateway',
      set: [
        'networkPolicy.enabled=true',
        'networkPolicy.gatewayPeers[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=envoy-gateway-system',
        'networkPolicy.gatewayPeers[0].podSelector.matchLabels.app\\.kubernetes\\.io/name=envoy',
      ],
    });
    assert.deepEqual(ingressFrom(peers), [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'envoy-gateway-system' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'envoy' } } },
      testPod,
    ]);
    const restricted = await render({ set: ['networkPolicy.enabled=true', 'networkPolicy.egress.enabled=true', 'networkPolicy.egress.apiServerCIDRs[0]=10.96.0.1/32'] });
    const policy = restricted.find((d) => d.kind === 'NetworkPolicy')!.spec as { policyTypes: string[]; egress: { to: unknown[]; ports: { port: number; protocol: string }[] }[] };
    assert.deepEqual(policy.policyTypes, ['Ingress', 'Egress']);
    assert.deepEqual(
      policy.egress.map((r) => r.ports.map((p) => `${p.protocol}/${p.port}`)),
      [['UDP/53', 'TCP/53'], ['TCP/6443']],
    );
    assert.deepEqual(policy.egress[1]!.to, [{ ipBlock: { cidr: '10.96.0.1/32' } }]);
    await assert.rejects(render({ set: ['networkPolicy.enabled=true', 'networkPolicy.egress.enabled=true'] }), /networkPolicy\.egress\.apiServerCIDRs is empty: the pods could not reach the API server/);
  });
});

describe('the admission policy that confines the pods\' patches', { skip }, () => {
  const COST = 'controller.kubernetes.io/pod-deletion-cost';
  const ACCOUNT = `system:serviceaccount:${NAMESPACE}:${FULLNAME}`;
  const VAP = 'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
  let policy: Manifest;
  let binding: Manifest;
  before(async () => {
    if (skip) return;
    const docs = await render({ apiVersions: [VAP] });
    policy = one(docs, 'ValidatingAdmissionPolicy');
    binding = one(docs, 'ValidatingAdmissionPolicyBinding');
  });

  it('is rendered where the cluster serves the API (auto), when asked (true), never without the integration or the chart\'s RBAC', async () => {
    const kinds = async (options: Parameters<typeof render>[0]): Promise<string[]> =>
      (await render(options)).filter((d) => d.kind.startsWith('ValidatingAdmissionPolicy')).map((d) => d.kind);
    assert.deepEqual(await kinds({}), [], 'auto, and the cluster does not announce the API');
    assert.deepEqual(await kinds({ set: ['rbac.admissionPolicy=true'] }), ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
    assert.deepEqual(await kinds({ apiVersions: [VAP], set: ['rbac.admissionPolicy=false'] }), []);
    assert.deepEqual(await kinds({ apiVersions: [VAP], scenario: 'integration-off' }), []);
    assert.deepEqual(await kinds({ apiVersions: [VAP], set: ['rbac.create=false'] }), []);
    assert.equal((binding.spec as { policyName: string }).policyName, policy.metadata.name);
    assert.deepEqual((binding.spec as { validationActions: string[] }).validationActions, ['Deny']);
    assert.deepEqual(
      (binding.spec as { matchResources: unknown }).matchResources,
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NAMESPACE } } },
      'only this namespace',
    );
  });

  it('validates against the Kubernetes 1.30 and 1.34 APIs', async () => {
    for (const doc of [policy, binding]) {
      for (const version of KUBERNETES_VERSIONS) assert.deepEqual(validateExact(doc, version), [], `${doc.kind} on ${version}`);
      assert.deepEqual(await validateModel(doc), [], doc.kind);
    }
  });

  it('lets the service account change only the pod-deletion-cost annotation (CEL evaluated by @marcbachmann/cel-js)', () => {
    interface PodFixture {
      apiVersion: string;
      kind: string;
      metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: unknown[]; finalizers?: string[] };
      spec: { containers: { name: string; image: string }[] };
    }
    const pod: PodFixture = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${FULLNAME}-abc`, labels: { app: 'ws-echo' }, annotations: { 'kubectl.kubernetes.io/restartedAt': 't0' }, ownerReferences: [{ kind: 'ReplicaSet', name: 'rs' }] },
      spec: { containers: [{ name: 'ws-echo', image: 'ws-echo:0.1.0' }] },
    };
    const changed = (change: (p: PodFixture) => void): PodFixture => {
      const copy = structuredClone(pod);
      change(copy);
      return copy;
    };
    const verdict = (object: unknown, oldObject: unknown = pod, username = ACCOUNT) => evaluatePolicy(policy, { username, object, oldObject });
    const allowed: [string, unknown, unknown?][] = [
      ['the cost added', changed((p) => (p.metadata.annotations = { ...pod.metadata.annotations, [COST]: '12' }))],
      ['the cost changed', changed((p) => (p.metadata.annotations = { ...pod.metadata.annotations, [COST]: '40' })), changed((p) => (p.metadata.annotations = { ...pod.metadata.annotations, [COST]: '12' }))],
      ['the cost removed', pod, changed((p) => (p.metadata.annotations = { ...pod.metadata.annotations, [COST]: '12' }))],
      ['the cost added to a pod without annotations', changed((p) => (p.metadata.annotations = { [COST]: '3' })), changed((p) => delete p.metadata.annotations)],
      ['nothing changed', pod],
    ];
    const refused: [string, unknown, unknown?][] = [
      ['another annotation added', changed((p) => (p.metadata.annotations = { ...pod.metadata.annotations, 'example.com/x': 'y' }))],
      ['another annotation changed', changed((p) => (p.metadata.annotations = { 'kubectl.kubernetes.io/restartedAt': 't1' }))],
      ['another annotation removed', changed((p) => (p.metadata.annotations = {}))],
      ['a label changed', changed((p) => (p.metadata.labels = { app: 'other' }))],
      ['the image changed', changed((p) => (p.spec.containers[0]!.image = 'evil:latest'))],
      ['the owner removed', changed((p) => delete p.metadata.ownerReferences)],
      ['a finalizer added', changed((p) => (p.metadata.finalizers = ['example.com/hold']))],
    ];
    for (const [what, object, oldObject] of allowed) assert.deepEqual(verdict(object, oldObject), { applies: true, allowed: true, messages: [] }, what);
    for (const [what, object, oldObject] of refused) {
      const v = verdict(object, oldObject);
      assert.equal(v.allowed, false, what);
      assert.match(v.messages.join('; '), /this service account may (change only the controller\.kubernetes\.io\/pod-deletion-cost annotation|not change a pod's spec)/, what);
    }
    // Anyone else (the kubelet, a controller, an admin) is not this policy's business.
    assert.deepEqual(verdict(refused[4]![1], pod, 'system:serviceaccount:realtime:other'), { applies: false, allowed: true, messages: [] });
  });
});

