// The values platform teams set on every chart they install, rendered by
// real helm from ci/operations-values.yaml (and ci/servicemonitor-values.yaml)
// and by --set: the image by digest from a registry, common labels and
// annotations, envFrom, extra objects, init and extra containers, a PDB by
// minAvailable, monitors in another namespace with relabelings, and the test
// pod's scheduling and resources. chart.test.ts validates the same
// scenarios against the Kubernetes and CRD schemas with Helm 3 and 4;
// security.test.ts checks their pods against the restricted standard.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { NAMESPACE, one, RELEASE, render, renderFailure as failure } from '../../../testkit/chart/helm.js';
import type { Manifest } from '../../../testkit/chart/k8s-schemas.js';
import { chartValues, scenarioValues, valueAt } from '../../../testkit/chart/values.js';
import { needsFetched } from '../../../testkit/tools.js';

const skip = needsFetched('helm');
const FULLNAME = `${RELEASE}-ws-echo`;
const DIGEST = 'sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945';
/** The objects of ci/operations-values.yaml's extraObjects: rendered as written. */
const EXTRA_OBJECTS = ['ws-echo-env', `${FULLNAME}-oncall`];

interface Container {
  name: string;
  image: string;
  envFrom?: unknown[];
  securityContext?: Record<string, unknown>;
  resources?: unknown;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: unknown;
}
interface Template {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  spec: PodSpec;
}
const template = (docs: Manifest[]): Template => (one(docs, 'Deployment').spec as { template: Template }).template;
const testPod = (docs: Manifest[]): PodSpec => one(docs, 'Pod').spec as PodSpec;
const spec = <T>(doc: Manifest): T => doc.spec as T;
const at = (path: string): unknown => valueAt(scenarioValues('operations'), path);


describe('the values platform teams set on every chart', { skip }, () => {
  let operations: Manifest[] = [];
  let defaults: Manifest[] = [];
  before(async () => {
    if (skip) return;
    [operations, defaults] = await Promise.all([render({ scenario: 'operations' }), render()]);
  });

  describe('the image', () => {
    it('pulls by digest from global.imageRegistry, for the service and the test pod', () => {
      const image = `mirror.example.com:5000/realtime/ws-echo@${DIGEST}`;
      assert.equal(template(operations).spec.containers[0]?.image, image);
      assert.equal(testPod(operations).containers[0]?.image, image);
    });

    it('pulls repository:tag otherwise, the tag defaulting to the appVersion, a registry in front when one is set', async () => {
      assert.equal(template(defaults).spec.containers[0]?.image, 'ws-echo:0.2.0');
      const tagged = await render({ set: ['global.imageRegistry=registry.example.com/', 'image.tag=1.2.3'] });
      assert.equal(template(tagged).spec.containers[0]?.image, 'registry.example.com/ws-echo:1.2.3');
      const pinned = await render({ set: ['image.tag=1.2.3', `image.digest=${DIGEST}`] });
      assert.equal(template(pinned).spec.containers[0]?.image, `ws-echo@${DIGEST}`, 'the digest wins over the tag');
    });

    it('refuses a digest that is not one, and a registry with a scheme (schema)', async () => {
      assert.match(await failure(['image.digest=latest']), /\/image\/digest/);
      assert.match(await failure(['image.digest=sha256:1234']), /\/image\/digest/);
      assert.match(await failure(['global.imageRegistry=https://registry.example.com']), /\/global\/imageRegistry/);
    });
  });

  describe('common labels and annotations', () => {
    it('puts commonLabels and commonAnnotations on every object the chart renders, commonLabels on the pods too', () => {
      const labels = at('commonLabels') as Record<string, string>;
      const annotations = at('commonAnnotations') as Record<string, string>;
      const objects = operations.filter((d) => !EXTRA_OBJECTS.includes(d.metadata.name));
      assert.ok(objects.length >= 10, `only ${objects.length} objects`);
      for (const d of objects) {
        for (const [key, value] of Object.entries(labels)) assert.equal(d.metadata.labels?.[key], value, `${d.kind}/${d.metadata.name} label ${key}`);
        for (const [key, value] of Object.entries(annotations)) assert.equal(d.metadata.annotations?.[key], value, `${d.kind}/${d.metadata.name} annotation ${key}`);
      }
      const pod = template(operations).metadata;
      for (const [key, value] of Object.entries(labels)) assert.equal(pod.labels[key], value, `pod label ${key}`);
      assert.equal(pod.annotations, undefined, 'no annotation on the pods: changing one would restart them');
      const extra = operations.find((d) => d.metadata.name === 'ws-echo-env')!;
      assert.equal(extra.metadata.labels, undefined, 'extraObjects are rendered as written');
    });

    it("keeps an object's own annotations and labels over the common ones, and the selector labels over everything", async () => {
      const docs = await render({
        scenario: 'ingress-tls',
        set: [
          'commonAnnotations.nginx\\.ingress\\.kubernetes\\.io/proxy-read-timeout=short',
          'commonAnnotations.example\\.com/owner=oncall',
          'service.annotations.example\\.com/owner=edge',
          'commonLabels.app\\.kubernetes\\.io/component=edge',
          'metrics.serviceMonitor.enabled=true',
          'metrics.serviceMonitor.labels.release=prometheus',
          'commonLabels.release=other',
        ],
      });
      const ingress = one(docs, 'Ingress').metadata.annotations ?? {};
      assert.equal(ingress['nginx.ingress.kubernetes.io/proxy-read-timeout'], '3600', "the chart's WebSocket timeout wins");
      assert.equal(ingress['example.com/owner'], 'oncall');
      const service = docs.find((d) => d.kind === 'Service' && d.metadata.name === FULLNAME)!;
      assert.equal(service.metadata.annotations?.['example.com/owner'], 'edge');
      const metricsService = docs.find((d) => d.metadata.name === `${FULLNAME}-metrics`)!;
      assert.equal(metricsService.metadata.labels?.['app.kubernetes.io/component'], 'metrics', 'the ServiceMonitor selects it by this label');
      assert.equal(one(docs, 'ServiceMonitor').metadata.labels?.release, 'prometheus', 'the label Prometheus selects monitors by');
      assert.equal(one(docs, 'Pod').metadata.labels?.['app.kubernetes.io/component'], 'helm-test', 'the NetworkPolicy admits the test pod by it');
      assert.equal(one(docs, 'Pod').metadata.annotations?.['helm.sh/hook'], 'test');
    });

    it('refuses commonLabels that would change the selector labels', async () => {
      for (const key of ['app.kubernetes.io/name', 'app.kubernetes.io/instance']) {
        assert.match(await failure([`commonLabels.${key.replaceAll('.', '\\.')}=x`]), new RegExp(`commonLabels sets ${key.replaceAll('.', '\\.')}, one of the labels that select the pods`));
      }
    });
  });

  describe('the pod', () => {
    it('takes envFrom, after the chart’s env so that the chart’s variables win', () => {
      const c = template(operations).spec.containers[0]!;
      assert.deepEqual(c.envFrom, at('envFrom'));
      assert.equal(template(defaults).spec.containers[0]?.envFrom, undefined);
    });

    it('runs the init containers and the extra containers, giving one without a securityContext the chart’s', () => {
      const pod = template(operations).spec;
      assert.deepEqual(
        pod.initContainers?.map((c) => c.name),
        ['wait-for-dns'],
      );
      assert.deepEqual(pod.initContainers?.[0]?.securityContext, chartValues().securityContext, "the chart's restricted securityContext");
      assert.deepEqual(
        pod.containers.map((c) => c.name),
        ['ws-echo', 'log-shipper'],
      );
      assert.equal(pod.containers[1]?.securityContext?.runAsUser, 10002, 'its own securityContext is kept');
      assert.equal(template(defaults).spec.initContainers, undefined);
    });

    it('refuses two containers of one name, naming it', async () => {
      assert.match(await failure(['extraContainers[0].name=ws-echo', 'extraContainers[0].image=x']), /name a container "ws-echo" twice/);
      assert.match(
        await failure(['initContainers[0].name=setup', 'initContainers[0].image=x', 'extraContainers[0].name=setup', 'extraContainers[0].image=y']),
        /name a container "setup" twice/,
      );
      assert.match(await failure(['initContainers[0].image=x']), /\/initContainers\/0.*name/);
    });

    it('takes minReadySeconds as a number', () => {
      assert.equal(spec<{ minReadySeconds: number }>(one(operations, 'Deployment')).minReadySeconds, at('minReadySeconds'));
    });
  });

  describe('extraObjects', () => {
    it('renders each, as a map or as a string, through tpl', () => {
      const env = operations.find((d) => d.metadata.name === 'ws-echo-env')!;
      assert.equal(env.kind, 'ConfigMap');
      assert.equal(env.metadata.namespace, NAMESPACE, '{{ .Release.Namespace }} in a map value');
      const oncall = operations.find((d) => d.metadata.name === `${FULLNAME}-oncall`)!;
      assert.deepEqual([oncall.metadata.namespace, (oncall as unknown as { data: unknown }).data], [NAMESPACE, { pager: 'realtime-primary' }]);
    });

    it('refuses an object without kind or name (schema)', async () => {
      assert.match(await failure(['extraObjects[0].apiVersion=v1', 'extraObjects[0].metadata.name=x']), /\/extraObjects\/0/);
      assert.match(await failure(['extraObjects[0].apiVersion=v1', 'extraObjects[0].kind=ConfigMap', 'extraObjects[0].metadata.namespace=x']), /\/extraObjects\/0/);
    });
  });

  describe('the PodDisruptionBudget', () => {
    const budget = (docs: Manifest[]): Record<string, unknown> => spec<Record<string, unknown>>(one(docs, 'PodDisruptionBudget'));

    it('takes minAvailable instead of maxUnavailable', () => {
      const pdb = budget(operations);
      assert.equal(pdb.minAvailable, 2);
      assert.equal('maxUnavailable' in pdb, false);
      assert.equal(budget(defaults).maxUnavailable, 1);
      assert.equal('minAvailable' in budget(defaults), false);
    });

    it('takes exactly one of the two', async () => {
      assert.match(await failure(['podDisruptionBudget.minAvailable=1']), /podDisruptionBudget\.maxUnavailable \(1\) and podDisruptionBudget\.minAvailable \(1\) are both set, and a PodDisruptionBudget takes one/);
      assert.match(await failure(['podDisruptionBudget.maxUnavailable=']), /podDisruptionBudget\.maxUnavailable and podDisruptionBudget\.minAvailable are both empty/);
      assert.match(await failure(['podDisruptionBudget.maxUnavailable=null']), /are both empty/);
      assert.equal(budget(await render({ set: ['podDisruptionBudget.maxUnavailable=null', 'podDisruptionBudget.minAvailable=50%'] })).minAvailable, '50%');
    });

    it('refuses a minAvailable that leaves no pod evictable, counting autoscaling.minReplicas with an autoscaler', async () => {
      const min = (value: string, extra: string[] = []): string[] => ['podDisruptionBudget.maxUnavailable=', `podDisruptionBudget.minAvailable=${value}`, ...extra];
      assert.match(await failure(min('3')), /minAvailable \(3\) keeps 3 of the 3 pods the Deployment may have \(replicaCount\) available: no pod could ever be evicted/);
      assert.match(await failure(min('67%')), /minAvailable \(67%\) keeps 3 of the 3 pods/, 'a percentage rounds up, as the disruption controller does');
      assert.match(await failure(min('2', ['autoscaling.enabled=true', 'autoscaling.minReplicas=2', 'metrics.podMonitor.enabled=true'])), /keeps 2 of the 2 pods the Deployment may have \(autoscaling\.minReplicas\)/);
      assert.match(await failure(min('100%')), /\/podDisruptionBudget\/minAvailable/);
      assert.ok(await render({ set: min('3', ['replicaCount=1']) }), 'no PDB with one replica: nothing to check');
    });
  });

  describe('the PodMonitor and the ServiceMonitor', () => {
    it('live in the namespace Prometheus reads monitors from and select the release’s namespace, with the interval, timeout and relabelings given', async () => {
      const servicemonitor = await render({ scenario: 'servicemonitor' });
      for (const [docs, kind, endpoints, scenario, key] of [
        [operations, 'PodMonitor', 'podMetricsEndpoints', 'operations', 'metrics.podMonitor'],
        [servicemonitor, 'ServiceMonitor', 'endpoints', 'servicemonitor', 'metrics.serviceMonitor'],
      ] as const) {
        const monitor = one(docs, kind);
        const values = (path: string): unknown => valueAt(scenarioValues(scenario), `${key}.${path}`);
        assert.equal(monitor.metadata.namespace, 'monitoring', kind);
        const s = spec<Record<string, unknown>>(monitor);
        assert.deepEqual(s.namespaceSelector, { matchNames: [NAMESPACE] }, kind);
        const endpoint = (s[endpoints] as Record<string, unknown>[])[0]!;
        assert.deepEqual(
          [endpoint.interval, endpoint.scrapeTimeout, endpoint.relabelings, endpoint.metricRelabelings],
          [values('interval'), values('scrapeTimeout'), values('relabelings'), values('metricRelabelings')],
          kind,
        );
      }
      const inPlace = one(await render({ scenario: 'monitoring' }), 'PodMonitor');
      assert.equal(inPlace.metadata.namespace, NAMESPACE);
      assert.equal(spec<Record<string, unknown>>(inPlace).namespaceSelector, undefined, 'in the release’s namespace it selects its own');
    });

    it('refuses a scrape timeout longer than the interval, naming both', async () => {
      assert.match(
        await failure(['metrics.podMonitor.enabled=true', 'metrics.podMonitor.interval=15s', 'metrics.podMonitor.scrapeTimeout=1m']),
        /metrics\.podMonitor\.scrapeTimeout \(1m\) is longer than metrics\.podMonitor\.interval \(15s\)/,
      );
      assert.match(
        await failure(['metrics.serviceMonitor.enabled=true', 'metrics.serviceMonitor.interval=1m30s', 'metrics.serviceMonitor.scrapeTimeout=91s']),
        /metrics\.serviceMonitor\.scrapeTimeout \(91s\) is longer than metrics\.serviceMonitor\.interval \(1m30s\)/,
      );
      assert.ok(await render({ set: ['metrics.podMonitor.enabled=true', 'metrics.podMonitor.interval=1m30s', 'metrics.podMonitor.scrapeTimeout=90s'] }), 'equal is fine');
      assert.match(await failure(['metrics.podMonitor.namespace=Monitoring']), /\/metrics\/podMonitor\/namespace/);
    });
  });

  describe('the helm test pod', () => {
    it('takes its resources and scheduling from tests.*', () => {
      const pod = testPod(operations);
      assert.deepEqual(
        [pod.containers[0]?.resources, pod.nodeSelector, pod.tolerations, pod.affinity],
        [at('tests.resources'), at('tests.nodeSelector'), at('tests.tolerations'), at('tests.affinity')],
      );
      assert.deepEqual(testPod(defaults).containers[0]?.resources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } });
      assert.equal(testPod(defaults).nodeSelector, undefined);
    });
  });
});
