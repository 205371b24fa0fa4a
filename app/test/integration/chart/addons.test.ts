// k8s/: the cluster add-ons the chart relies on. Without a cluster they are
// checked for what can be checked: the script parses, the manifests are
// valid, and the metric name and PromQL agree with the chart and the service.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { one, render } from '../../../testkit/chart/helm.js';
import { type Manifest, validateModel } from '../../../testkit/chart/k8s-schemas.js';
import { readYaml } from '../../../testkit/chart/values.js';
import { repoRoot } from '../../../testkit/paths.js';
import { needsFetched } from '../../../testkit/tools.js';

const k8s = (file: string): string => join(repoRoot, 'k8s', file);
const yamlOf = <T>(file: string): T => readYaml<T>(k8s(file));

describe('k8s add-ons', () => {
  it('has an end-to-end script that bash can parse', () => {
    for (const script of [k8s('e2e-kind.sh'), join(repoRoot, 'scripts', 'fetch-helm.sh'), join(repoRoot, 'scripts', 'fetch-k8s-schemas.sh')]) {
      execFileSync('bash', ['-n', script]);
    }
  });

  it('exposes websocket_connections_active as a per-pod custom metric through prometheus-adapter', () => {
    const adapter = yamlOf<{ rules: { default: boolean; custom: Record<string, unknown>[] } }>('prometheus-adapter-values.yaml');
    assert.equal(adapter.rules.default, false);
    assert.equal(adapter.rules.custom.length, 1);
    const rule = adapter.rules.custom[0] as { seriesQuery: string; resources: unknown; name: { matches: string; as: string }; metricsQuery: string };
    assert.equal(rule.seriesQuery, 'websocket_connections_active{namespace!="",pod!=""}');
    assert.deepEqual(rule.resources, { overrides: { namespace: { resource: 'namespace' }, pod: { resource: 'pod' } } });
    assert.ok(new RegExp(rule.name.matches).test('websocket_connections_active'));
    assert.equal(rule.name.as, 'websocket_connections_active', 'the name the chart HPA asks for');
    assert.equal(rule.metricsQuery, 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)');
  });

  it('keeps the KEDA example valid and identical to what the chart renders for release echo in realtime', { skip: needsFetched('helm') }, async () => {
    const example = yamlOf<Manifest>('keda-scaledobject.yaml');
    assert.deepEqual(await validateModel(example), []);
    const fromChart = one(await render({ set: ['keda.enabled=true', 'metrics.podMonitor.enabled=true'] }), 'ScaledObject');
    assert.deepEqual(example.spec, fromChart.spec);
    assert.deepEqual([example.metadata.name, example.metadata.namespace], [fromChart.metadata.name, fromChart.metadata.namespace]);
  });

  it('gives the ingress-nginx controller a worker-shutdown-timeout longer than the per-Ingress proxy timeouts', () => {
    const values = yamlOf<{ controller: { config: Record<string, string> } }>('ingress-nginx-values.yaml');
    const config = values.controller.config;
    const seconds = Number(/^(\d+)s$/.exec(config['worker-shutdown-timeout'] ?? '')?.[1]);
    assert.ok(seconds >= 3600, `worker-shutdown-timeout is ${config['worker-shutdown-timeout']}`);
    assert.ok(seconds >= Number(config['proxy-read-timeout']));
    assert.equal(config['proxy-next-upstream'], 'error timeout http_503');
  });

  it('describes a kind cluster with an ingress node and workers in several zones, reachable from this machine only', () => {
    const kind = yamlOf<{
      kind: string;
      apiVersion: string;
      nodes: { role: string; labels?: Record<string, string>; extraPortMappings?: { listenAddress?: string; hostPort: number }[] }[];
    }>('kind-config.yaml');
    assert.equal(kind.apiVersion, 'kind.x-k8s.io/v1alpha4');
    assert.ok(kind.nodes.some((n) => n.labels?.['ingress-ready'] === 'true'));
    const zones = new Set(kind.nodes.map((n) => n.labels?.['topology.kubernetes.io/zone']).filter(Boolean));
    assert.ok(zones.size >= 2, 'topology spread needs zones');
    const mappings = kind.nodes.flatMap((n) => n.extraPortMappings ?? []);
    assert.deepEqual(
      mappings.map((m) => [m.hostPort, m.listenAddress]),
      [
        [8080, '127.0.0.1'],
        [8443, '127.0.0.1'],
        [8081, '127.0.0.1'],
      ],
    );
  });

  it('gives the Gateway API path a Gateway and GatewayClass valid for Gateway API, on the NodePort kind maps', async () => {
    const docs = parseAllDocuments(readFileSync(k8s('envoy-gateway.yaml'), 'utf8')).map((d) => d.toJS() as Manifest);
    assert.deepEqual(
      docs.map((d) => d.kind),
      ['EnvoyProxy', 'GatewayClass', 'Gateway'],
    );
    for (const doc of docs.filter((d) => d.apiVersion.startsWith('gateway.networking.k8s.io/'))) assert.deepEqual(await validateModel(doc), [], doc.kind);
    const proxy = docs[0] as Manifest & { spec: { provider: { kubernetes: { envoyService: { type: string; patch: { value: { spec: { ports: { nodePort: number }[] } } } } } } } };
    assert.equal(proxy.spec.provider.kubernetes.envoyService.type, 'NodePort');
    assert.equal(proxy.spec.provider.kubernetes.envoyService.patch.value.spec.ports[0]?.nodePort, 30080, 'the containerPort kind-config.yaml maps to 8081');
  });
});
