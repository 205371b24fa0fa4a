// The Grafana dashboard: the repository's file (chart/dashboards/ws-echo.json,
// for manual import) is a well-formed dashboard whose every query is valid
// PromQL (promtool) over metrics the service exports, scoped by the
// dashboard's namespace and pod variables; and the chart ships the same file
// in a ConfigMap for the Grafana sidecar, with this release's defaults filled
// in. That every query returns series during a rollout is checked against
// the real Prometheus of the local cluster (e2e/rollout.test.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { NAMESPACE, RELEASE, render } from '../../../testkit/chart/helm.js';
import type { Manifest } from '../../../testkit/chart/k8s-schemas.js';
import { chartValues, scenarioValues, valueAt } from '../../../testkit/chart/values.js';
import { queryPanels, readDashboard, substitute, type Dashboard, type DashboardVariable } from '../../../testkit/dashboard.js';
import { exportedMetrics } from '../../../testkit/metrics-text.js';
import { needs, needsFetched, requireTool } from '../../../testkit/tools.js';

const FULLNAME = `${RELEASE}-ws-echo`;
const dashboard = readDashboard();
const variable = (d: Dashboard, name: string): DashboardVariable => {
  const found = d.templating.list.find((v) => v.name === name);
  assert.ok(found, `the dashboard has no ${name} variable`);
  return found;
};
const targets = queryPanels(dashboard).flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));
const somewhere = { namespace: NAMESPACE, pod: `${FULLNAME}-.*`, hpaTarget: 5000, rateInterval: '1m' };

describe('the Grafana dashboard file (chart/dashboards/ws-echo.json)', () => {
  it('has variables for the data source, the namespace, the pods and the HPA target', () => {
    assert.equal(variable(dashboard, 'datasource').type, 'datasource');
    assert.equal(variable(dashboard, 'namespace').definition, 'label_values(websocket_connections_active, namespace)');
    const pod = variable(dashboard, 'pod');
    assert.equal(pod.definition, 'label_values(websocket_connections_active{namespace="$namespace"}, pod)');
    assert.equal(pod.allValue, '.*', 'All is every pod of the namespace');
    assert.equal(variable(dashboard, 'hpa_target').query, String(chartValues().autoscaling.targetConnectionsPerPod), "the chart's default target");
  });

  it('lays out its panels on the 24-column grid without overlaps, each with a unique id, the data source variable and at least one query', () => {
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    const cells = new Map<string, string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      assert.ok(x >= 0 && w > 0 && x + w <= 24, `${panel.title}: x ${x} + w ${w} within 24 columns`);
      for (let row = y; row < y + h; row++) {
        for (let column = x; column < x + w; column++) {
          const taken = cells.get(`${row},${column}`);
          assert.equal(taken, undefined, `${panel.title} overlaps ${taken}`);
          cells.set(`${row},${column}`, panel.title);
        }
      }
    }
    for (const panel of queryPanels(dashboard)) {
      assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, panel.title);
      assert.ok((panel.targets ?? []).length > 0, `${panel.title} has no query`);
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      assert.equal(new Set(refIds).size, refIds.length, `${panel.title}: refIds are unique`);
      assert.ok(panel.description, `${panel.title} says what it shows`);
    }
  });

  it('shows what operators look at: the panels the issue lists', () => {
    const titles = queryPanels(dashboard).map((p) => p.title);
    for (const title of [
      'Open connections per pod',
      'Open connections in total',
      'Upgrades per second: accepted, and refused by reason',
      'Messages per second',
      'Payload bytes per second',
      'Drain state per pod',
      'Drain progress per draining pod',
      'Fair share and excess per pod',
      'Connections shed per second',
      'Heartbeat terminations, protocol and HTTP errors per second',
      'Backpressure',
      'Bytes queued for clients per pod',
      'Held bytes by kind, against the budget',
      'Memory overload state per pod',
      'Overload closes per second by reason',
      'Kubernetes API calls per second by result',
      'CPU per pod',
      'Memory per pod',
      'Event-loop lag per pod',
    ]) {
      assert.ok(titles.includes(title), `no panel "${title}"`);
    }
    const connections = queryPanels(dashboard).find((p) => p.title === 'Open connections per pod')!;
    assert.deepEqual(
      connections.targets?.map((t) => t.legendFormat),
      ['{{pod}}', 'HPA target per pod', 'MAX_CONNECTIONS'],
    );
  });

  it('queries only metrics the service exports, and every one of its websocket_* metrics', async () => {
    const exported = await exportedMetrics();
    const used = new Set<string>();
    for (const { panel, target } of targets) {
      const names = target.expr.match(/\b(websocket|process|nodejs)_[a-z0-9_]+/g) ?? [];
      assert.ok(names.length > 0 || /^vector\(\$hpa_target\)$/.test(target.expr), `${panel.title} ${target.refId} reads no metric of the service`);
      for (const name of names) {
        assert.ok(exported.has(name), `${panel.title} ${target.refId} uses ${name}, which app/src/metrics.ts does not export`);
        used.add(name);
      }
    }
    assert.deepEqual(
      [...exported.keys()].filter((name) => name.startsWith('websocket_') && !used.has(name)),
      [],
      'metrics of the README no panel shows',
    );
  });

  it('scopes every selector to the namespace and pod variables', () => {
    for (const { panel, target } of targets) {
      for (const selector of target.expr.match(/\{[^}]*\}/g) ?? []) {
        assert.match(selector, /^\{namespace="\$namespace",pod=~"\$pod"(,|\})/, `${panel.title} ${target.refId}: ${selector}`);
      }
    }
  });

  it('has queries that promtool parses once Grafana has filled in the variables', { skip: needs('promtool') }, () => {
    const rules = targets.map(({ panel, target }, i) => ({ record: `dashboard:query_${i}`, expr: substitute(target.expr, somewhere), labels: { panel: panel.title } }));
    const dir = mkdtempSync(join(tmpdir(), 'ws-echo-dashboard-'));
    writeFileSync(join(dir, 'queries.yaml'), JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const check = spawnSync(requireTool('promtool'), ['check', 'rules', join(dir, 'queries.yaml')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, new RegExp(`SUCCESS: ${targets.length} rules found`));
  });

  it('refuses a query with a variable the dashboard does not define', () => {
    assert.throws(() => substitute('sum(websocket_connections_active{job="$job"})', somewhere), /uses \$job, which is not one of its variables/);
  });
});

describe('the dashboard ConfigMap for the Grafana sidecar', { skip: needsFetched('helm') }, () => {
  let operations: Manifest[] = [];
  let defaults: Manifest[] = [];
  before(async () => {
    if (needsFetched('helm')) return;
    [operations, defaults] = await Promise.all([render({ scenario: 'operations' }), render({ set: ['dashboard.enabled=true'] })]);
  });
  const configMap = (docs: Manifest[]): Manifest & { data: Record<string, string> } =>
    docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name.endsWith('-ws-echo-dashboard')) as Manifest & { data: Record<string, string> };
  const shipped = (docs: Manifest[]): Dashboard => JSON.parse(configMap(docs).data['ws-echo.json'] ?? '') as Dashboard;

  it('is off by default', async () => {
    assert.equal(configMap(await render()), undefined);
  });

  it("carries the sidecar's label and folder annotation, by default kube-prometheus-stack's", () => {
    const map = configMap(defaults);
    assert.equal(map.metadata.namespace, NAMESPACE);
    assert.equal(map.metadata.labels?.grafana_dashboard, '1');
    assert.equal(map.metadata.annotations?.grafana_folder, 'ws-echo');
    assert.deepEqual(Object.keys(map.data), ['ws-echo.json']);
  });

  it('takes the namespace, labels, folder annotation and folder from the values (ci/operations-values.yaml)', () => {
    const map = configMap(operations);
    const values = scenarioValues('operations');
    assert.equal(map.metadata.namespace, valueAt(values, 'dashboard.namespace'));
    for (const [key, value] of Object.entries(valueAt(values, 'dashboard.labels') as Record<string, string>)) assert.equal(map.metadata.labels?.[key], value, key);
    assert.equal(map.metadata.annotations?.['k8s-sidecar-target-directory'], '/tmp/dashboards/Realtime');
    assert.equal(map.metadata.annotations?.grafana_folder, undefined, 'the default annotation is replaced, not added');
    assert.equal(map.metadata.annotations?.['example.com/reviewed'], '2026-01');
    assert.equal(map.metadata.annotations?.['example.com/owner'], 'realtime-oncall', 'commonAnnotations too');
  });

  it('renders no folder annotation when folderAnnotation is empty', async () => {
    const map = configMap(await render({ set: ['dashboard.enabled=true', 'dashboard.folderAnnotation='] }));
    assert.equal(map.metadata.annotations, undefined);
  });

  it("is the repository's dashboard with this release's defaults: its own uid and title, the namespace, the release's pods as All, the autoscaling target", async () => {
    const expected = structuredClone(dashboard) as Dashboard & { uid: string; title: string };
    const got = shipped(defaults);
    assert.match(got.uid, /^ws-echo-[0-9a-f]{32}$/, 'a Grafana uid has at most 40 characters');
    assert.equal(got.title, `ws-echo: ${NAMESPACE}/${RELEASE}`);
    const namespace = variable(expected, 'namespace') as { current?: unknown };
    namespace.current = { selected: true, text: NAMESPACE, value: NAMESPACE };
    const pod = variable(expected, 'pod') as { allValue?: string; regex?: string };
    pod.allValue = `${FULLNAME}-.*`;
    pod.regex = `/^${FULLNAME}-.*/`;
    const target = variable(expected, 'hpa_target') as { query?: string; current?: unknown; options?: unknown[] };
    target.query = '5000';
    target.current = { text: '5000', value: '5000' };
    target.options = [{ selected: true, text: '5000', value: '5000' }];
    assert.deepEqual({ ...got, uid: expected.uid, title: expected.title }, expected);

    const other = shipped(await render({ release: 'chat', namespace: 'edge', set: ['dashboard.enabled=true', 'autoscaling.targetConnectionsPerPod=1234'] }));
    assert.notEqual(other.uid, got.uid, 'two releases do not overwrite each other in Grafana');
    assert.equal(variable(other, 'hpa_target').query, '1234');
    assert.equal(variable(other, 'pod').allValue, 'chat-ws-echo-.*');
  });
});
