// The Helm chart, rendered by the real helm binary (helm v4.1.4 from
// scripts/fetch-helm.sh): every ci/ scenario lints, renders for Kubernetes
// 1.30 and 1.34 and validates against both releases' API schemas and the CRD
// schemas; then the promises the chart makes are checked on the rendered
// objects. Schema sources (details in k8s-schemas.ts):
//   Kubernetes 1.30: @kubernetes/client-node 0.22.3 models (OpenAPI release-1.30), strict fields, ajv
//   Kubernetes 1.34: @kubernetes/client-node 1.4.0 models (OpenAPI v1.34.0), strict fields, ajv
//   required fields, enums, formats: kubernetes-models 5.1.0 (OpenAPI v1.36.0)
//   CRDs: @kubernetes-models/prometheus-operator 6.0.0 (v0.91.0), keda 2.0.0 (v2.19.0), gateway-api 2.0.0 (v1.5.1)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { before, describe, it } from 'node:test';
import { loadConfig } from '../../../src/config.js';
import { SETTINGS, type Parser, type Setting, type SettingName } from '../../../src/settings.js';
import { renderFailure as failure, helm, HELM_MAJORS, kubeVersionOf, NAMESPACE, one, pool, RELEASE, render, renderScenarios, scenarios } from '../../../testkit/chart/helm.js';
import { isBuiltIn, KUBERNETES_VERSIONS, type KubernetesVersion, type Manifest, validateExact, validateModel } from '../../../testkit/chart/k8s-schemas.js';
import { chartValues, scenarioValues, valueAt, type Values } from '../../../testkit/chart/values.js';
import { exportedMetrics } from '../../../testkit/metrics-text.js';
import { chartDir } from '../../../testkit/paths.js';
import { casesOf } from '../../../testkit/setting-cases.js';
import { needs, needsFetched, requireTool } from '../../../testkit/tools.js';

/** The reason these tests cannot run here (helm or the API models could not be fetched), if any. */
const skip = needsFetched('helm', 'Kubernetes API models');

const FULLNAME = `${RELEASE}-ws-echo`;

/** Every scenario rendered for every release, once: `${scenario}@${release}`. */
let rendered = new Map<string, Manifest[]>();
const lint = new Map<string, { ok: boolean; output: string }>();
function docsOf(scenario: string, version: KubernetesVersion = '1.34'): Manifest[] {
  const docs = rendered.get(`${scenario}@${version}`);
  assert.ok(docs, `scenario ${scenario} was not rendered for ${version}`);
  return docs;
}
const at = (scenario: string, path: string): unknown => valueAt(scenarioValues(scenario), path);

interface Container {
  name: string;
  image: string;
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string }; resourceFieldRef?: { resource: string } } }[];
  ports?: { name: string; containerPort: number }[];
  lifecycle?: { preStop?: { sleep?: { seconds: number }; exec?: { command: string[] } } };
  securityContext?: Record<string, unknown>;
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  startupProbe?: { httpGet?: { path: string; port: string | number } };
}
interface PodSpec {
  containers: Container[];
  securityContext?: Record<string, unknown>;
  terminationGracePeriodSeconds?: number;
  automountServiceAccountToken?: boolean;
  serviceAccountName?: string;
}
const podSpec = (docs: Manifest[]): PodSpec => (one(docs, 'Deployment') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
const container = (docs: Manifest[]): Container => podSpec(docs).containers[0] as Container;
const env = (c: Container): Record<string, string> => Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string]));
const spec = <T>(doc: Manifest): T => doc.spec as T;

before(async () => {
  if (skip) return;
  rendered = await renderScenarios();
  await pool(scenarios(), 3, async (scenario) => {
    const r = await helm(['lint', '--strict', chartDir, '--namespace', NAMESPACE, '--kube-version', kubeVersionOf('1.34'), '--values', join(chartDir, 'ci', `${scenario}-values.yaml`)]);
    lint.set(scenario, { ok: r.ok, output: `${r.stdout}${r.stderr}` });
  });
});


describe('chart scenarios (ci/*-values.yaml)', { skip }, () => {
  it('has the scenarios the chart documents', () => {
    for (const s of ['default', 'ingress-tls', 'ingress-hash', 'gateway', 'hpa', 'keda', 'monitoring', 'servicemonitor', 'integration-off', 'exec-prestop', 'custom-config', 'operations', 'gateway-experimental', 'another-app']) {
      assert.ok(scenarios().includes(s), `chart/ci/${s}-values.yaml is missing`);
    }
  });

  it('passes helm lint --strict for every scenario', () => {
    for (const s of scenarios()) {
      const result = lint.get(s);
      assert.ok(result?.ok, `helm lint --strict failed for ${s}:\n${result?.output}`);
      assert.doesNotMatch(result.output, /\[(WARNING|ERROR)\]/, `lint findings for ${s}`);
    }
  });

  it('validates every rendered object against the Kubernetes 1.30 and 1.34 APIs (exact releases, unknown fields rejected)', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const [name, docs] of rendered) {
      for (const doc of docs.filter((d) => isBuiltIn(d.apiVersion))) {
        for (const version of KUBERNETES_VERSIONS) {
          checked++;
          for (const p of validateExact(doc, version)) problems.push(`${name} ${doc.kind}/${doc.metadata.name}: ${p}`);
        }
      }
    }
    assert.deepEqual(problems, []);
    assert.ok(checked > 100, `only ${checked} validations ran`);
  });

  it('validates every rendered object, custom resources included, against the kubernetes-models schemas', async () => {
    const problems: string[] = [];
    const kinds = new Set<string>();
    for (const [name, docs] of rendered) {
      for (const doc of docs) {
        kinds.add(doc.kind);
        for (const p of await validateModel(doc)) problems.push(`${name} ${doc.kind}/${doc.metadata.name}: ${p}`);
      }
    }
    assert.deepEqual(problems, []);
    // The CRD validators must have had something to check.
    for (const kind of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule', 'ScaledObject', 'HTTPRoute', 'Ingress', 'HorizontalPodAutoscaler', 'NetworkPolicy']) {
      assert.ok(kinds.has(kind), `no scenario renders a ${kind}`);
    }
  });

  it('rejects a misspelt field, a field from a later release and a missing required field', async () => {
    // The validators themselves must be able to fail.
    const deployment = structuredClone(one(docsOf('default'), 'Deployment'));
    const c = (deployment as unknown as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } }).spec.template.spec.containers[0] as Record<string, unknown>;
    c.securityContex = {};
    (c.lifecycle as Record<string, unknown>).stopSignal = 'SIGTERM'; // added in 1.33
    assert.match(validateExact(deployment, '1.30').join('\n'), /securityContex[\s\S]*stopSignal/);
    assert.doesNotMatch(validateExact(deployment, '1.34').join('\n'), /stopSignal/);
    delete (deployment.spec as Record<string, unknown>).selector;
    assert.match((await validateModel(deployment)).join('\n'), /required property selector/);
    const monitor = structuredClone(one(docsOf('monitoring'), 'PodMonitor'));
    ((monitor.spec as { podMetricsEndpoints: Record<string, unknown>[] }).podMetricsEndpoints[0] as Record<string, unknown>).intervall = '5s';
    assert.match((await validateModel(monitor)).join('\n'), /podMetricsEndpoints\/0\/intervall is not a field/);
  });

  it('prints NOTES that say how to connect and how to watch a rollout', async () => {
    const notes = new Map<string, string>();
    await pool(scenarios(), 3, async (s) => {
      const r = await helm(['install', RELEASE, chartDir, '--dry-run=client', '--namespace', NAMESPACE, '--values', join(chartDir, 'ci', `${s}-values.yaml`)]);
      assert.ok(r.ok, `${s}: ${r.stderr}`);
      notes.set(s, r.stdout.slice(r.stdout.indexOf('NOTES:')));
    });
    for (const [s, text] of notes) {
      assert.match(text, new RegExp(`kubectl rollout restart deployment/${FULLNAME} -n ${NAMESPACE}`), s);
      assert.match(text, new RegExp(`helm test ${RELEASE} -n ${NAMESPACE}`), s);
    }
    assert.match(notes.get('default') ?? '', /kubectl port-forward -n realtime svc\/echo-ws-echo 8000:8000\n\s+npx wscat -c ws:\/\/localhost:8000\/echo/);
    assert.match(notes.get('ingress-tls') ?? '', /npx wscat -c wss:\/\/ws\.example\.com\/echo/);
    assert.match(notes.get('hpa') ?? '', /custom\.metrics\.k8s\.io\/v1beta1\/namespaces\/realtime\/pods\/\*\/websocket_connections_active/);
    assert.match(notes.get('operations') ?? '', /Grafana dashboard: ConfigMap echo-ws-echo-dashboard in namespace monitoring\nfor the Grafana sidecar \(labels example\.com\/dashboards=realtime,grafana_dashboard=1, folder \/tmp\/dashboards\/Realtime\)/);
    assert.match(notes.get('monitoring') ?? '', /Each alert links to its section of the runbook: https:\/\/github\.com\/\S+\/blob\/main\/docs\/RUNBOOK\.md\n/);
  });

  it('renders the objects each scenario is for, and nothing optional by default', () => {
    const kinds = (s: string): string[] => docsOf(s).map((d) => d.kind).sort();
    assert.deepEqual(kinds('default'), ['Deployment', 'Pod', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
    assert.ok(kinds('ingress-tls').includes('Ingress'));
    assert.ok(kinds('gateway').includes('HTTPRoute'));
    assert.ok(kinds('hpa').includes('HorizontalPodAutoscaler'));
    assert.ok(kinds('keda').includes('ScaledObject') && !kinds('keda').includes('HorizontalPodAutoscaler'));
    for (const k of ['PodMonitor', 'PrometheusRule', 'NetworkPolicy']) assert.ok(kinds('monitoring').includes(k), k);
    assert.ok(kinds('servicemonitor').includes('ServiceMonitor'));
    assert.deepEqual(
      docsOf('operations')
        .filter((d) => d.kind === 'ConfigMap')
        .map((d) => d.metadata.name),
      [`${FULLNAME}-dashboard`, 'ws-echo-env', `${FULLNAME}-oncall`],
      'the dashboard and the two extraObjects',
    );
    // Every object in the release's namespace, but the monitors and the
    // dashboard, which go where their `namespace` value says.
    const placedBy: Record<string, string> = { PodMonitor: 'metrics.podMonitor.namespace', ServiceMonitor: 'metrics.serviceMonitor.namespace', [`${FULLNAME}-dashboard`]: 'dashboard.namespace' };
    let moved = 0;
    for (const [name, docs] of rendered) {
      const s = name.split('@')[0]!;
      for (const d of docs) {
        const key = placedBy[d.kind] ?? placedBy[d.metadata.name];
        const wanted = (key && (at(s, key) as string)) || NAMESPACE;
        if (wanted !== NAMESPACE) moved++;
        assert.equal(d.metadata.namespace, wanted, `${name} ${d.kind}/${d.metadata.name} namespace`);
      }
    }
    assert.ok(moved > 0, 'a scenario puts a monitor or the dashboard into another namespace');
  });
});

describe('drain arithmetic', { skip }, () => {
  it('sets terminationGracePeriodSeconds to ceil(preStop + drain window + close timeout + margin) in every scenario', () => {
    for (const s of scenarios()) {
      const sum = ['drain.preStop.seconds', 'drain.windowSeconds', 'drain.closeTimeoutSeconds', 'drain.marginSeconds'].reduce((acc, p) => acc + Number(at(s, p)), 0);
      for (const version of KUBERNETES_VERSIONS) assert.equal(podSpec(docsOf(s, version)).terminationGracePeriodSeconds, Math.ceil(sum), `${s}@${version}`);
    }
    // 7 + 12.5 + 2.25 + 3 = 24.75: rounded up, never down.
    assert.equal(podSpec(docsOf('exec-prestop')).terminationGracePeriodSeconds, 25);
  });

  it('passes the same drain numbers to the container, and the preStop sleep is the one in the sum', () => {
    for (const s of scenarios()) {
      const c = container(docsOf(s));
      assert.equal(env(c).DRAIN_WINDOW_SECONDS, String(at(s, 'drain.windowSeconds')), s);
      assert.equal(env(c).DRAIN_CLOSE_TIMEOUT_SECONDS, String(at(s, 'drain.closeTimeoutSeconds')), s);
      const preStop = c.lifecycle?.preStop;
      const seconds = Number(at(s, 'drain.preStop.seconds'));
      if (seconds === 0) assert.equal(preStop, undefined, `${s}: no hook for 0 s`);
      else if (preStop?.sleep) assert.equal(preStop.sleep.seconds, seconds, s);
      else assert.deepEqual(preStop?.exec?.command, ['node', '-e', `setTimeout(() => {}, ${seconds * 1000})`], s);
    }
  });

  it('moves the grace period and the env together when a drain value is overridden', async () => {
    const docs = await render({ set: ['drain.windowSeconds=45', 'drain.closeTimeoutSeconds=10', 'drain.preStop.seconds=8', 'drain.marginSeconds=2'] });
    assert.equal(podSpec(docs).terminationGracePeriodSeconds, 65);
    assert.equal(env(container(docs)).DRAIN_WINDOW_SECONDS, '45');
    assert.equal(env(container(docs)).DRAIN_CLOSE_TIMEOUT_SECONDS, '10');
  });

  it('uses the native sleep action unless told exec, whatever the Kubernetes version (the versions themselves: upgrades.test.ts)', async () => {
    assert.deepEqual(container(docsOf('default', '1.30')).lifecycle?.preStop, { sleep: { seconds: 5 } });
    assert.deepEqual(container(docsOf('default', '1.34')).lifecycle?.preStop, { sleep: { seconds: 5 } });
    assert.deepEqual(container(await render({ set: ['drain.preStop.mode=auto'] })).lifecycle?.preStop, { sleep: { seconds: 5 } }, 'auto, from earlier charts, is sleep');
    assert.ok(container(docsOf('exec-prestop', '1.34')).lifecycle?.preStop?.exec, 'exec when asked');
  });

  it('makes a new pod wait the grace period before it counts as available, so at most maxSurge old pods drain at once', async () => {
    for (const s of scenarios()) {
      const deployment = spec<{ minReadySeconds: number; template: { spec: PodSpec } }>(one(docsOf(s), 'Deployment'));
      const value = at(s, 'minReadySeconds');
      assert.equal(deployment.minReadySeconds, value === 'auto' ? deployment.template.spec.terminationGracePeriodSeconds : value, s);
    }
    assert.equal(spec<{ minReadySeconds: number }>(one(docsOf('operations'), 'Deployment')).minReadySeconds, 10, 'a number when one is given');
    assert.equal(spec<{ minReadySeconds: number }>(one(await render({ set: ['minReadySeconds=0'] }), 'Deployment')).minReadySeconds, 0);
  });

  it('rolls out with maxUnavailable 0 and a surge', () => {
    for (const s of scenarios()) {
      const strategy = spec<{ strategy: { type: string; rollingUpdate: { maxUnavailable: unknown; maxSurge: unknown } } }>(one(docsOf(s), 'Deployment')).strategy;
      assert.equal(strategy.type, 'RollingUpdate');
      assert.equal(strategy.rollingUpdate.maxUnavailable, 0, s);
      assert.notEqual(strategy.rollingUpdate.maxSurge, 0, s);
    }
    assert.equal(spec<{ strategy: { rollingUpdate: { maxSurge: unknown } } }>(one(docsOf('custom-config'), 'Deployment')).strategy.rollingUpdate.maxSurge, '25%');
  });
});

describe('container contract', { skip }, () => {
  it('renders exact values (no float exponents) for every variable', () => {
    const vars = env(container(docsOf('custom-config')));
    assert.deepEqual(
      { ...vars, NODE_OPTIONS: undefined },
      {
        PORT: '8080',
        METRICS_PORT: '9090',
        WS_PATH: '/ws/v1/echo',
        MAX_CONNECTIONS: '1000000',
        MAX_PAYLOAD_BYTES: '268435456',
        BACKPRESSURE_BYTES: '1073741824',
        MAX_MESSAGE_FRAGMENTS: '1024',
        MESSAGE_TIMEOUT_SECONDS: '2.5',
        MEMORY_BUDGET_BYTES: '17179869184',
        ALLOWED_ORIGINS: '*',
        HEARTBEAT_INTERVAL_SECONDS: '0.5',
        HTTP_HEADERS_TIMEOUT_SECONDS: '2.5',
        LOG_LEVEL: 'debug',
        DRAIN_WINDOW_SECONDS: '20',
        DRAIN_CLOSE_TIMEOUT_SECONDS: '5',
        KUBERNETES_INTEGRATION: 'on',
        POD_DELETION_COST_INTERVAL_SECONDS: '120',
        REBALANCE: 'on',
        REBALANCE_TARGET_CONNECTIONS: '4000',
        REBALANCE_TOLERANCE: '0.35',
        REBALANCE_RATE: '0.125',
        REBALANCE_INTERVAL_SECONDS: '2.5',
        REBALANCE_COOLDOWN_SECONDS: '120',
        NODE_OPTIONS: undefined,
      },
    );
  });

  it('gives the rebalancer the Deployment\'s own selector as its fleet view, and the HPA target as its fallback share', () => {
    const docs = docsOf('default');
    const deployment = one(docs, 'Deployment') as unknown as { spec: { selector: { matchLabels: Record<string, string> } } };
    const selector = Object.entries(deployment.spec.selector.matchLabels).map(([k, v]) => `${k}=${v}`).sort().join(',');
    assert.equal(env(container(docs)).REBALANCE_POD_SELECTOR?.split(',').sort().join(','), selector);
    assert.equal(env(container(docs)).REBALANCE_TARGET_CONNECTIONS, '0');
    // Autoscaled: when the fleet cannot be seen, the share falls back to the HPA target.
    const hpa = env(container(docsOf('hpa')));
    assert.equal(hpa.REBALANCE_TARGET_CONNECTIONS, String(at('hpa', 'autoscaling.targetConnectionsPerPod')));
  });

  it('takes POD_NAME, POD_NAMESPACE, POD_UID and MEMORY_LIMIT_BYTES from the downward API', () => {
    const fields = Object.fromEntries(
      (container(docsOf('default')).env ?? []).filter((e) => e.valueFrom).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.valueFrom?.resourceFieldRef?.resource]),
    );
    assert.deepEqual(fields, { POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', POD_UID: 'metadata.uid', MEMORY_LIMIT_BYTES: 'limits.memory' });
  });
  it('lets extraEnv replace a variable the chart sets: one entry per name, the user\'s', async () => {
    const c = container(await render({ set: ['extraEnv[0].name=LOG_LEVEL', 'extraEnv[0].value=debug', 'extraEnv[1].name=NODE_OPTIONS', 'extraEnv[1].value=--enable-source-maps'] }));
    const names = (c.env ?? []).map((e) => e.name);
    assert.deepEqual(
      names.filter((n, i) => names.indexOf(n) !== i),
      [],
      'no name twice: server-side apply refuses it',
    );
    assert.equal(env(c).LOG_LEVEL, 'debug');
    assert.equal(env(c).NODE_OPTIONS, '--enable-source-maps');
    assert.equal(names.at(-1), 'NODE_OPTIONS', "the user's own variables come last");
  });


  it('names the ports ws and metrics on the container, serves only ws on the public Service, and probes /healthz and /readyz on ws', () => {
    for (const s of ['default', 'custom-config']) {
      const c = container(docsOf(s));
      assert.deepEqual(c.ports?.map((p) => [p.name, p.containerPort]), [['ws', at(s, 'config.port')], ['metrics', at(s, 'config.metricsPort')]]);
      assert.deepEqual(c.livenessProbe?.httpGet, { path: '/healthz', port: 'ws' });
      assert.deepEqual(c.startupProbe?.httpGet, { path: '/healthz', port: 'ws' });
      assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: 'ws' });
      const ports = spec<{ ports: { name: string; port: number; targetPort: string }[] }>(one(docsOf(s), 'Service')).ports;
      assert.deepEqual(ports.map((p) => [p.name, p.targetPort]), [['ws', 'ws']]);
    }
  });

  it('runs helm test in the service image against the Service, outside the Service selector', () => {
    const docs = docsOf('default');
    const pod = one(docs, 'Pod');
    const c = spec<PodSpec>(pod).containers[0] as Container;
    assert.equal(pod.metadata.annotations?.['helm.sh/hook'], 'test');
    assert.equal(c.image, container(docs).image);
    assert.deepEqual(c.command, ['node', 'dist/app/src/selftest.js']);
    assert.equal(env(c).SELFTEST_URL, `ws://${FULLNAME}.${NAMESPACE}.svc:8000/echo`);
    assert.equal(env(c).SELFTEST_MESSAGES, '100');
    const selector = spec<{ selector: Record<string, string> }>(one(docs, 'Service')).selector;
    assert.ok(!Object.entries(selector).every(([k, v]) => pod.metadata.labels?.[k] === v), 'the Service would route clients to the test pod');
    assert.equal(env(spec<PodSpec>(one(docsOf('custom-config'), 'Pod')).containers[0] as Container).SELFTEST_URL, `ws://${FULLNAME}.${NAMESPACE}.svc:80/ws/v1/echo`);
  });
});

describe('the chart and the settings table (app/src/settings.ts)', { skip }, () => {
  const chartKey = (name: SettingName): string | undefined => {
    const chart = (SETTINGS[name] as Setting<unknown>).chart;
    return 'value' in chart ? chart.value : undefined;
  };
  /** A values.yaml value as the template passes it to the container: booleans are the service's on/off. */
  const asEnv = (value: unknown): string => (typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value));
  const names = Object.keys(SETTINGS) as SettingName[];

  it('sets only variables of the table (besides extraEnv), and every value it renders is one the service accepts', () => {
    for (const s of scenarios()) {
      const extra = new Set(((at(s, 'extraEnv') as { name: string }[] | undefined) ?? []).map((e) => e.name));
      const literal: Record<string, string> = {};
      for (const e of container(docsOf(s)).env ?? []) {
        if (extra.has(e.name)) continue;
        assert.ok(e.name in SETTINGS, `${s}: ${e.name} is not a setting of app/src/settings.ts`);
        if (e.value !== undefined) literal[e.name] = e.value;
      }
      assert.doesNotThrow(() => loadConfig(literal), `${s}: the service would refuse what the chart renders`);
    }
  });

  it('passes each chart value to its variable unchanged, in every scenario', () => {
    for (const s of scenarios()) {
      const rendered = env(container(docsOf(s)));
      for (const name of names) {
        const key = chartKey(name);
        if (key !== undefined) assert.equal(rendered[name], asEnv(at(s, key)), `${s}: ${name} from ${key}`);
      }
    }
  });

  it("renders the service's own defaults with the chart's defaults, but for KUBERNETES_INTEGRATION (on: a pod is in a cluster)", () => {
    const defaults = loadConfig({});
    const chartDefaults = loadConfig(env(container(docsOf('default'))));
    const differ = names.filter((name) => {
      const key = chartKey(name);
      if (key === undefined) return false;
      const alone = loadConfig({ [name]: asEnv(at('default', key)) });
      return JSON.stringify(alone) !== JSON.stringify(defaults);
    });
    assert.deepEqual(differ, ['KUBERNETES_INTEGRATION']);
    assert.equal(chartDefaults.kubernetes, 'on');
  });

  it('has a values schema that accepts and refuses what the service accepts and refuses, value for value', () => {
    const schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')) as object;
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    const withValue = (key: string, value: unknown): Values => {
      const values = structuredClone(chartValues()) as Values;
      const path = key.split('.');
      const parent = path.slice(0, -1).reduce<Values>((node, k) => node[k] as Values, values);
      parent[path.at(-1)!] = value;
      return values;
    };
    assert.ok(validate(chartValues()), 'values.yaml itself passes its schema');
    const problems: string[] = [];
    for (const name of names) {
      const chart = (SETTINGS[name] as Setting<unknown>).chart;
      if (!('value' in chart)) continue;
      const key = chart.value;
      if (typeof valueAt(chartValues(), key) === 'boolean') {
        if (!validate(withValue(key, false)) || validate(withValue(key, 'on'))) problems.push(`${key}: must be a boolean`);
        continue;
      }
      const parser = SETTINGS[name].parser as Parser<unknown>;
      const numeric = parser.kind === 'integer' || parser.kind === 'seconds' || parser.kind === 'fraction';
      // values.yaml holds numbers and canonical words: what a value means, not how an env var spells it.
      const asValue = (text: string): unknown => (numeric ? Number(text) : text);
      const { good, bad } = casesOf(name);
      for (const text of good) {
        const value = asValue(text);
        if (parser.kind === 'choice' && text !== text.toLowerCase()) continue;
        const allowed = !(numeric && chart.narrower && (value as number) < chart.narrower.min);
        if (validate(withValue(key, value)) !== allowed) {
          problems.push(`${key}=${JSON.stringify(value)}: the service accepts ${name}=${text}, the schema ${allowed ? 'refuses' : `accepts it (narrower: ${chart.narrower?.why})`}`);
        }
      }
      for (const text of bad) {
        const value = asValue(text);
        // "1e3" is 1000 in values.yaml: only numbers the service refuses in any spelling count.
        if (numeric && (Number.isNaN(value) || parser.parse(String(value)) !== undefined)) continue;
        if (validate(withValue(key, value))) problems.push(`${key}=${JSON.stringify(value)}: the service refuses ${name}=${text}, the schema accepts it`);
      }
    }
    assert.deepEqual(problems, []);
  });
});

describe('Kubernetes integration and RBAC', { skip }, () => {
  it('binds the Role to the service account the pods use, and mounts its token (the rules themselves: security.test.ts)', () => {
    const docs = docsOf('default');
    assert.equal(env(container(docsOf('custom-config'))).REBALANCE_POD_SELECTOR, undefined);
    const binding = one(docs, 'RoleBinding') as unknown as { roleRef: { name: string }; subjects: { name: string; namespace: string }[] };
    assert.equal(binding.roleRef.name, one(docs, 'Role').metadata.name);
    assert.deepEqual(binding.subjects.map((s) => [s.name, s.namespace]), [[podSpec(docs).serviceAccountName, NAMESPACE]]);
    assert.equal(podSpec(docs).automountServiceAccountToken, true);
    assert.equal(env(container(docs)).KUBERNETES_INTEGRATION, 'on');
  });

  it('renders no Role, no token and KUBERNETES_INTEGRATION=off when the integration is off', () => {
    const docs = docsOf('integration-off');
    assert.deepEqual(docs.filter((d) => ['Role', 'RoleBinding', 'ServiceAccount'].includes(d.kind)), []);
    assert.equal(podSpec(docs).automountServiceAccountToken, false);
    assert.equal(podSpec(docs).serviceAccountName, 'default');
    assert.equal(env(container(docs)).KUBERNETES_INTEGRATION, 'off');
  });
});

describe('Ingress', { skip }, () => {
  const annotations = (s: string): Record<string, string> => one(docsOf(s), 'Ingress').metadata.annotations ?? {};
  const p = 'nginx.ingress.kubernetes.io/';

  it('renders the WebSocket annotations of ingress-nginx by default', () => {
    const a = annotations('ingress-tls');
    for (const [name, value] of Object.entries({
      'proxy-read-timeout': '3600',
      'proxy-send-timeout': '3600',
      affinity: 'cookie',
      'affinity-mode': 'persistent',
      'session-cookie-name': 'WSECHO_AFFINITY',
      'session-cookie-max-age': '3600',
      'session-cookie-expires': '3600',
      'session-cookie-change-on-failure': 'true',
      'proxy-next-upstream': 'error timeout http_503',
    })) {
      assert.equal(a[p + name], value, name);
    }
    assert.equal(a[`${p}upstream-hash-by`], undefined);
  });

  it('merges user annotations over the defaults', () => {
    const a = annotations('ingress-tls');
    assert.equal(a[`${p}proxy-next-upstream-tries`], '5', 'the user value wins');
    assert.equal(a[`${p}limit-connections`], '100', 'extra annotations are kept');
  });

  it('switches to upstream-hash-by with affinity hash', () => {
    const a = annotations('ingress-hash');
    assert.equal(a[`${p}upstream-hash-by`], '$arg_client');
    assert.equal(a[`${p}affinity`], undefined);
    assert.equal(a[`${p}proxy-next-upstream-tries`], '3');
  });

  it('routes only the WebSocket path to the ws port, with TLS', () => {
    const ingress = spec<{ ingressClassName: string; tls: unknown[]; rules: { host: string; http: { paths: { path: string; pathType: string; backend: unknown }[] } }[] }>(one(docsOf('ingress-tls'), 'Ingress'));
    assert.equal(ingress.ingressClassName, 'nginx');
    assert.deepEqual(ingress.tls, [{ secretName: 'ws-echo-tls', hosts: ['ws.example.com', 'echo.example.com'] }]);
    assert.deepEqual(ingress.rules.map((r) => r.host), ['ws.example.com', 'echo.example.com']);
    for (const r of ingress.rules) {
      assert.deepEqual(r.http.paths, [{ path: '/echo', pathType: 'Exact', backend: { service: { name: FULLNAME, port: { name: 'ws' } } } }]);
    }
  });
  it('renders only paths that ingress-nginx\'s strict path validation accepts', async () => {
    // kubernetes/ingress-nginx controller-v1.15.1, internal/ingress/inspector/rules.go: validPathType,
    // applied to every path whose pathType is not ImplementationSpecific (strict-validate-path-type, on by default since 1.12).
    const validPathType = /^\/[A-Za-z0-9._\-/]*$/;
    const ingresses = [...rendered.values()].flatMap((docs) => docs.filter((d) => d.kind === 'Ingress'));
    ingresses.push(one(await render({ scenario: 'ingress-tls', set: ['config.wsPath=/ws/v1.2/echo_x-y'] }), 'Ingress'));
    assert.ok(ingresses.length >= 3);
    for (const ingress of ingresses) {
      for (const rule of spec<{ rules: { http: { paths: { path: string; pathType: string }[] } }[] }>(ingress).rules) {
        for (const { path, pathType } of rule.http.paths) {
          assert.notEqual(pathType, 'ImplementationSpecific');
          assert.match(path, validPathType);
        }
      }
    }
  });

});

/**
 * The fields of an HTTPRoute rule in each channel and release, for the checks
 * @kubernetes-models/gateway-api (Gateway API v1.5.1, experimental channel:
 * the newest on the npm registry) cannot make. v1.5.1 Standard: its CRD
 * (config/crd/standard, tag v1.5.1). v1.7.0 Standard adds `retry` (GEP-1731,
 * release notes #5357), with the experimental shape of v1.6 and `attempts`
 * from 0 (#5387); v1.7.0 experimental makes SessionPersistence a union of
 * `cookie` and `header` (#4873), read from the upstream CRD source.
 */
const RULE_FIELDS = {
  'v1.5.1 standard': ['name', 'matches', 'filters', 'backendRefs', 'timeouts'],
  'v1.7.0 standard': ['name', 'matches', 'filters', 'backendRefs', 'timeouts', 'retry'],
} as const;
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

type Rule = Record<string, unknown> & { retry?: { codes: number[]; attempts: number; backoff?: string }; sessionPersistence?: Record<string, unknown> };
const ruleOf = (docs: Manifest[]): Rule => spec<{ rules: Rule[] }>(one(docs, 'HTTPRoute')).rules[0]!;

describe('Gateway API HTTPRoute', { skip }, () => {
  it('by default renders only Standard-channel fields of v1.5.1 (CRDs that predate the retry take it), with the request timeout off', async () => {
    const rule = ruleOf(await render({ set: ['httpRoute.enabled=true', 'httpRoute.parentRefs[0].name=public'] }));
    for (const key of Object.keys(rule)) assert.ok((RULE_FIELDS['v1.5.1 standard'] as readonly string[]).includes(key), `${key} is not in the v1.5.1 Standard channel`);
    assert.deepEqual(rule.timeouts, { request: '0s' });
    assert.deepEqual(rule.backendRefs, [{ name: FULLNAME, port: 8000 }]);
  });

  it('on v1.7 CRDs retries the refused upgrade (503) in the v1.7 Standard shape, with sectionName, extra match, filter and labels', () => {
    const docs = docsOf('gateway');
    const rule = ruleOf(docs);
    for (const key of Object.keys(rule)) assert.ok((RULE_FIELDS['v1.7.0 standard'] as readonly string[]).includes(key), `${key} is not in the v1.7.0 Standard channel`);
    assert.deepEqual(rule.retry, { codes: [503], attempts: 2, backoff: '100ms' });
    for (const code of rule.retry.codes) assert.ok(Number.isInteger(code) && code >= 400 && code <= 599);
    assert.ok(Number.isInteger(rule.retry.attempts) && rule.retry.attempts >= 0);
    assert.match(rule.retry.backoff, DURATION);
    assert.deepEqual(rule.matches, [
      { path: { type: 'Exact', value: '/echo' } },
      { path: { type: 'Exact', value: '/ws' } },
    ]);
    assert.equal((rule.filters as { type: string }[])[0]!.type, 'RequestHeaderModifier');
    const route = one(docs, 'HTTPRoute');
    assert.equal(route.metadata.labels?.['gateway-access'], 'public');
    assert.deepEqual(spec<{ parentRefs: unknown[] }>(route).parentRefs, [{ name: 'public', namespace: 'gateway-system', sectionName: 'https' }]);
  });

  it('puts session persistence where asked, in the shape of the installed release, and only on experimental CRDs', async () => {
    // v1.5.1 experimental: an XBackendTrafficPolicy on the Service (validated with the rest against the models), nothing on the route.
    const viaPolicy = docsOf('gateway-experimental');
    assert.equal(ruleOf(viaPolicy).sessionPersistence, undefined);
    const policy = one(viaPolicy, 'XBackendTrafficPolicy');
    assert.deepEqual(spec(policy), {
      targetRefs: [{ group: '', kind: 'Service', name: FULLNAME }],
      sessionPersistence: { type: 'Cookie', sessionName: 'WSECHO_SESSION', absoluteTimeout: '1h' },
    });
    assert.deepEqual(await validateModel(policy), []);
    // v1.7 experimental, on the route: the union shape (#4873): cookie.name for Cookie, header.name for Header.
    const onRoute = (type: string) =>
      render({ scenario: 'gateway', set: ['httpRoute.experimentalChannel=true', 'httpRoute.sessionPersistence.enabled=true', `httpRoute.sessionPersistence.type=${type}`] });
    const cookie = ruleOf(await onRoute('Cookie')).sessionPersistence!;
    assert.deepEqual(cookie, { type: 'Cookie', cookie: { name: 'WSECHO_SESSION' }, absoluteTimeout: '1h' });
    const header = ruleOf(await onRoute('Header')).sessionPersistence!;
    assert.deepEqual(header, { type: 'Header', header: { name: 'WSECHO_SESSION' }, absoluteTimeout: '1h' });
    for (const sp of [cookie, header] as Record<string, unknown>[]) {
      assert.match(((sp.cookie ?? sp.header) as { name: string }).name, HEADER_NAME);
      assert.match(sp.absoluteTimeout as string, DURATION);
    }
  });

  it('refuses fields the installed CRDs do not have, by name, before the API server does', async () => {
    const base = ['httpRoute.enabled=true', 'httpRoute.parentRefs[0].name=public'];
    assert.match(await failure([...base, 'httpRoute.retry.enabled=true']), /httpRoute\.retry\.enabled needs Gateway API CRDs that carry `retry`.*httpRoute\.crdsVersion says v1\.5\.1/);
    assert.match(await failure([...base, 'httpRoute.sessionPersistence.enabled=true']), /httpRoute\.sessionPersistence\.enabled needs the Gateway API experimental channel CRDs/);
    assert.match(await failure([...base, 'httpRoute.crdsVersion=latest']), /crdsVersion/);
  });

  it('marks the Service port as WebSocket for Gateway API (GEP-1911), or as the user says', async () => {
    const port = (docs: Manifest[]) => spec<{ ports: { appProtocol?: string }[] }>(docs.find((d) => d.kind === 'Service' && d.metadata.name === FULLNAME)!).ports[0]!;
    assert.equal(port(docsOf('default')).appProtocol, 'kubernetes.io/ws');
    assert.equal(port(await render({ set: ['service.appProtocol=http'] })).appProtocol, 'http');
    assert.equal('appProtocol' in port(await render({ set: ['service.appProtocol='] })), false);
    assert.match(await failure(['service.appProtocol=web socket']), /appProtocol/);
  });
});

describe('autoscaling', { skip }, () => {
  it('scales the HPA on the gauge the service exports', async () => {
    const metrics = await exportedMetrics();
    const hpa = spec<{ metrics: { type: string; pods?: { metric: { name: string }; target: { type: string; averageValue: string } } }[] }>(one(docsOf('hpa'), 'HorizontalPodAutoscaler'));
    const pods = hpa.metrics.find((m) => m.type === 'Pods')?.pods;
    assert.ok(pods);
    assert.equal(metrics.get(pods.metric.name), 'gauge', `${pods.metric.name} is not a gauge of app/src/metrics.ts`);
    assert.equal(pods.metric.name, 'websocket_connections_active');
    assert.deepEqual(pods.target, { type: 'AverageValue', averageValue: '4000' });
    assert.ok(hpa.metrics.some((m) => m.type === 'Resource'), 'the optional CPU metric');
  });

  it('scales up fast and down one pod per grace period', () => {
    const docs = docsOf('hpa');
    const behavior = spec<{ behavior: { scaleUp: { stabilizationWindowSeconds: number }; scaleDown: { stabilizationWindowSeconds: number; policies: { type: string; value: number; periodSeconds: number }[] } } }>(one(docs, 'HorizontalPodAutoscaler')).behavior;
    assert.equal(behavior.scaleUp.stabilizationWindowSeconds, 0);
    assert.equal(behavior.scaleDown.stabilizationWindowSeconds, 300);
    assert.deepEqual(behavior.scaleDown.policies, [{ type: 'Pods', value: 1, periodSeconds: podSpec(docs).terminationGracePeriodSeconds }]);
    assert.equal(podSpec(docs).terminationGracePeriodSeconds, 80);
    assert.equal(spec<{ replicas?: number }>(one(docs, 'Deployment')).replicas, undefined, 'the HPA owns the replica count');
  });

  it('has KEDA query the same metric for this release, with the per-pod target as threshold', async () => {
    const metrics = await exportedMetrics();
    const so = spec<{ triggers: { type: string; metricType: string; metadata: Record<string, string> }[]; advanced: unknown }>(one(docsOf('keda'), 'ScaledObject'));
    const trigger = so.triggers[0];
    assert.equal(trigger?.type, 'prometheus');
    assert.equal(trigger.metricType, 'AverageValue');
    assert.equal(trigger.metadata.query, `sum(websocket_connections_active{namespace="${NAMESPACE}",pod=~"${FULLNAME}-.*"})`);
    assert.ok(metrics.has('websocket_connections_active'));
    assert.equal(trigger.metadata.threshold, '5000');
    const hpa = one(await render({ set: ['autoscaling.enabled=true', 'metrics.podMonitor.enabled=true'] }), 'HorizontalPodAutoscaler');
    assert.deepEqual(so.advanced, { horizontalPodAutoscalerConfig: { name: hpa.metadata.name, behavior: spec<{ behavior: unknown }>(hpa).behavior } });
  });

  it('has KEDA fail safe: an empty Prometheus answer is an error (the HPA holds), not a 0 that scales in; credentials used as authModes says', async () => {
    const trigger = spec<{ triggers: { metadata: Record<string, string>; authenticationRef?: unknown }[] }>(one(docsOf('keda'), 'ScaledObject')).triggers[0]!;
    assert.equal(trigger.metadata.ignoreNullValues, 'false');
    assert.equal(trigger.metadata.authModes, 'bearer');
    assert.deepEqual(trigger.authenticationRef, { name: 'prometheus-auth' });
    assert.match(await failure(['keda.authModes='], 'keda'), /keda\.authenticationRef is set but keda\.authModes is empty: KEDA's Prometheus scaler uses the TriggerAuthentication's credentials only as authModes says/);
  });

  it('refuses an autoscaler that nothing feeds: no PodMonitor, no ServiceMonitor, and no word that Prometheus scrapes the pods elsewhere', async () => {
    for (const autoscaler of ['autoscaling.enabled=true', 'keda.enabled=true']) {
      assert.match(await failure([autoscaler]), /an autoscaler is on \(autoscaling\.enabled or keda\.enabled\), but nothing scrapes websocket_connections_active/);
      assert.ok(one(await render({ set: [autoscaler, 'autoscaling.metricsScrapedElsewhere=true'] }), 'Deployment'));
      assert.ok(one(await render({ set: [autoscaler, 'metrics.serviceMonitor.enabled=true'] }), 'Deployment'));
    }
  });

  it('keeps a PodDisruptionBudget of one with several replicas or an autoscaler, none with one replica', () => {
    assert.equal(spec<{ maxUnavailable: number }>(one(docsOf('default'), 'PodDisruptionBudget')).maxUnavailable, 1);
    assert.ok(docsOf('hpa').some((d) => d.kind === 'PodDisruptionBudget'));
    assert.ok(!docsOf('custom-config').some((d) => d.kind === 'PodDisruptionBudget'));
  });
});

describe('monitoring and network policy', { skip }, () => {
  it('has alert rules that promtool loads', { skip: needs('promtool') }, () => {
    const rule = one(docsOf('monitoring'), 'PrometheusRule');
    const dir = mkdtempSync(join(tmpdir(), 'ws-echo-rules-'));
    // A PrometheusRule's spec is a Prometheus rules file.
    writeFileSync(join(dir, 'rules.yaml'), JSON.stringify(rule.spec));
    const check = spawnSync(requireTool('promtool'), ['check', 'rules', join(dir, 'rules.yaml')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /SUCCESS: 8 rules found/);
  });

  it('alerts only on metrics the service exports, scoped to this release', async () => {
    const metrics = await exportedMetrics();
    const rules = spec<{ groups: { rules: { alert: string; expr: string }[] }[] }>(one(docsOf('monitoring'), 'PrometheusRule')).groups.flatMap((g) => g.rules);
    assert.deepEqual(rules.map((r) => r.alert).sort(), [
      'WsEchoAbnormalCloses',
      'WsEchoConnectionImbalance',
      'WsEchoForcedClosesDuringDrain',
      'WsEchoMemoryBudgetCloses',
      'WsEchoMemoryPressure',
      'WsEchoNearMaxConnections',
      'WsEchoRebalanceStuck',
      'WsEchoUpgradesRefusedFull',
    ]);
    for (const r of rules) {
      const used = r.expr.match(/websocket_[a-z_]+/g) ?? [];
      assert.ok(used.length > 0, r.alert);
      for (const m of used) assert.ok(metrics.has(m), `${r.alert} uses ${m}, which app/src/metrics.ts does not export`);
      for (const selector of r.expr.match(/\{[^}]*\}/g) ?? []) {
        assert.match(selector, new RegExp(`namespace="${NAMESPACE}",pod=~"${FULLNAME}-\\.\\*"`), `${r.alert}: ${selector}`);
      }
    }
    const byName = Object.fromEntries(rules.map((r) => [r.alert, r.expr]));
    assert.match(byName.WsEchoNearMaxConnections ?? '', /websocket_connections_active[\s\S]*\/[\s\S]*websocket_connections_max[\s\S]*> 0\.9/);
    assert.match(byName.WsEchoForcedClosesDuringDrain ?? '', /how="terminated"/);
    assert.match(byName.WsEchoAbnormalCloses ?? '', /code="1006"/);
    assert.match(byName.WsEchoConnectionImbalance ?? '', /max by \(namespace\)[\s\S]*avg by \(namespace\)[\s\S]*> 1\.5/);
    assert.match(byName.WsEchoRebalanceStuck ?? '', /websocket_rebalance_shedding[\s\S]*websocket_rebalance_excess/);
    assert.match(byName.WsEchoMemoryPressure ?? '', /websocket_memory_overload_state\{[^}]*state!="normal"\}\) == 1/);
    assert.match(byName.WsEchoMemoryBudgetCloses ?? '', /websocket_overload_closes_total\{[^}]*reason="memory"\}/);
  });

  it('scrapes the metrics port (the NetworkPolicy: security.test.ts)', () => {
    assert.deepEqual(spec<{ podMetricsEndpoints: { port: string }[] }>(one(docsOf('monitoring'), 'PodMonitor')).podMetricsEndpoints.map((e) => e.port), ['metrics']);
    assert.equal(spec<{ endpoints: { port: string }[] }>(one(docsOf('servicemonitor'), 'ServiceMonitor')).endpoints[0]?.port, 'metrics');
  });

});

describe('invalid values fail with a message a user understands', { skip }, () => {

  it('rejects a negative drain window (schema)', async () => {
    assert.match(await failure(['drain.windowSeconds=-1']), /\/drain\/windowSeconds.*minimum/);
  });

  it('rejects impossible numbers and wrong types (schema)', async () => {
    assert.match(await failure(['config.port=abc']), /\/config\/port.*want integer/);
    assert.match(await failure(['config.port=70000']), /\/config\/port.*maximum/);
    assert.match(await failure(['drain.closeTimeoutSeconds=0']), /\/drain\/closeTimeoutSeconds.*minimum/);
    assert.match(await failure(['config.maxConnections=0']), /\/config\/maxConnections.*minimum/);
    assert.match(await failure(['config.wsPath=/healthz']), /\/config\/wsPath/);
    assert.match(await failure(['ingress.affinity=sticky']), /\/ingress\/affinity/);
    assert.match(await failure(['drain.preStop.mode=wait']), /\/drain\/preStop\/mode/);
    assert.match(await failure(['replicaCount=-1']), /\/replicaCount.*minimum/);
  });

  it('rejects the HPA and KEDA together', async () => {
    assert.match(await failure(['autoscaling.enabled=true', 'keda.enabled=true']), /autoscaling\.enabled and keda\.enabled are both true: two autoscalers would fight/);
  });

  it('rejects maxUnavailable other than 0 unless allowUnavailable is set', async () => {
    assert.match(await failure(['rollingUpdate.maxUnavailable=1']), /rollingUpdate\.maxUnavailable is 1, but this chart promises that a rollout drops no client/);
    assert.match(await failure(['rollingUpdate.maxUnavailable=25%']), /maxUnavailable is 25%/);
    const docs = await render({ set: ['rollingUpdate.maxUnavailable=1', 'rollingUpdate.allowUnavailable=true'] });
    assert.equal(spec<{ strategy: { rollingUpdate: { maxUnavailable: number } } }>(one(docs, 'Deployment')).strategy.rollingUpdate.maxUnavailable, 1);
  });

  it('rejects settings that contradict each other', async () => {
    assert.match(await failure(['config.metricsPort=8000']), /config\.port and config\.metricsPort are both 8000/);
    assert.match(await failure(['rollingUpdate.maxSurge=0']), /maxSurge and rollingUpdate\.maxUnavailable are both 0/);
    assert.match(await failure(['autoscaling.enabled=true', 'autoscaling.targetConnectionsPerPod=20000']), /targetConnectionsPerPod \(20000\) must be below config\.maxConnections \(10000\)/);
    assert.match(await failure(['autoscaling.minReplicas=5', 'autoscaling.maxReplicas=2']), /minReplicas \(5\) is greater than autoscaling\.maxReplicas \(2\)/);
    assert.match(await failure(['metrics.serviceMonitor.enabled=true'], 'monitoring'), /scraped twice/);
    assert.match(await failure(['ingress.proxyTimeoutSeconds=30'], 'ingress-tls'), /proxyTimeoutSeconds \(30\) must be longer than config\.heartbeatIntervalSeconds \(30\)/);
    assert.match(await failure(['httpRoute.enabled=true']), /httpRoute\.parentRefs is empty/);
  });

  it('refuses a PodDisruptionBudget that would block every node drain', async () => {
    assert.match(await failure(['podDisruptionBudget.maxUnavailable=0']), /\/podDisruptionBudget\/maxUnavailable/);
    assert.match(await failure(['podDisruptionBudget.maxUnavailable=0%']), /\/podDisruptionBudget\/maxUnavailable/);
  });

  it('refuses to bind the Role to the namespace default service account', async () => {
    assert.match(
      await failure(['serviceAccount.create=false']),
      /serviceAccount\.create is false, but serviceAccount\.name is empty: the pods would run as the namespace's default service account/,
    );
    const named = await render({ set: ['serviceAccount.create=false', 'serviceAccount.name=ws-echo-sa'] });
    assert.equal(podSpec(named).serviceAccountName, 'ws-echo-sa');
    assert.deepEqual(
      (one(named, 'RoleBinding') as unknown as { subjects: { name: string }[] }).subjects.map((x) => x.name),
      ['ws-echo-sa'],
    );
    assert.equal(podSpec(await render({ scenario: 'integration-off', set: ['serviceAccount.create=false'] })).serviceAccountName, 'default', 'no token, no Role: fine');
  });

  it('refuses hash affinity with rebalancing: clients would hash back to the pod that shed them', async () => {
    assert.match(await failure(['rebalance.enabled=true'], 'ingress-hash'), /ingress\.affinity=hash and rebalance\.enabled=true do not go together/);
  });

  it('refuses a WebSocket path that ingress-nginx\'s strict path validation would refuse, only when the Ingress is on', async () => {
    for (const path of ['/a;b', '/ws~1', '/a:b', '/a%20b', '/a@b']) {
      assert.match(await failure([`config.wsPath=${path}`], 'ingress-tls'), /\/config\/wsPath|config\.wsPath/, path);
      assert.ok(await render({ set: [`config.wsPath=${path}`] }), `${path} without the Ingress`);
    }
  });

  it('refuses an extraEnv that names a variable twice, naming it', async () => {
    assert.match(await failure(['extraEnv[0].name=FOO', 'extraEnv[0].value=1', 'extraEnv[1].name=FOO', 'extraEnv[1].value=2']), /extraEnv lists FOO twice/);
  });
});

describe('both Helm majors', { skip }, () => {
  it('lints every scenario with helm lint --strict under Helm 3 as under Helm 4', async () => {
    const problems: string[] = [];
    await pool(scenarios(), 3, async (scenario) => {
      const r = await helm(['lint', '--strict', chartDir, '--namespace', NAMESPACE, '--kube-version', kubeVersionOf('1.34'), '--values', join(chartDir, 'ci', `${scenario}-values.yaml`)], { major: 3 });
      if (!r.ok || /\[(WARNING|ERROR)\]/.test(r.stdout + r.stderr)) problems.push(`${scenario}: ${r.stdout}${r.stderr}`);
    });
    assert.deepEqual(problems, []);
  });

  it('renders every scenario for both Kubernetes releases to the same objects with Helm 3 as with Helm 4 (so every check above holds for both)', async () => {
    const problems: string[] = [];
    const jobs = scenarios().flatMap((scenario) => KUBERNETES_VERSIONS.map((version) => ({ scenario, version })));
    await pool(jobs, 3, async ({ scenario, version }) => {
      const byHelm3 = await render({ scenario, kubeVersion: kubeVersionOf(version), major: 3 });
      const byHelm4 = docsOf(scenario, version);
      const key = (docs: Manifest[]): string[] => docs.map((d) => JSON.stringify(d)).sort();
      if (JSON.stringify(key(byHelm3)) !== JSON.stringify(key(byHelm4))) problems.push(`${scenario}@${version}`);
    });
    assert.deepEqual(problems, []);
  });

  it('keeps the helm test pod after it ran, so helm test --logs can show its logs with Helm 3 too (helm/helm#9098)', () => {
    assert.equal(one(docsOf('default'), 'Pod').metadata.annotations?.['helm.sh/hook-delete-policy'], 'before-hook-creation');
  });
});

describe('as the dependency of an umbrella chart', { skip }, () => {
  it("accepts the parent's condition (ws-echo.enabled) and global values, with both Helm majors", async () => {
    const parent = mkdtempSync(join(tmpdir(), 'ws-echo-umbrella-'));
    mkdirSync(join(parent, 'charts'));
    cpSync(chartDir, join(parent, 'charts', 'ws-echo'), { recursive: true });
    const version = /^version: (\S+)$/m.exec(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'))?.[1];
    writeFileSync(join(parent, 'Chart.yaml'), `apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: ws-echo\n    version: ${version}\n    condition: ws-echo.enabled\n`);
    writeFileSync(join(parent, 'values.yaml'), 'ws-echo:\n  enabled: true\nglobal:\n  team: realtime\n');
    for (const major of HELM_MAJORS) {
      const on = await helm(['template', 'platform', parent, '--namespace', NAMESPACE], { major });
      assert.ok(on.ok, `Helm ${major}: ${on.stderr}`);
      assert.match(on.stdout, /kind: Deployment/);
      const off = await helm(['template', 'platform', parent, '--namespace', NAMESPACE, '--set', 'ws-echo.enabled=false'], { major });
      assert.ok(off.ok, `Helm ${major}: ${off.stderr}`);
      assert.doesNotMatch(off.stdout, /kind: Deployment/);
    }
  });
});
