// `helm upgrade` transitions, checked on the manifests of the release before
// and after, with both Helm majors. Where the chart must read the live state
// (`lookup`), helm renders with --dry-run=server against the test kit's LOCAL
// FAKE API SERVER (not a kube-apiserver), which answers discovery and the
// live Deployment as a cluster would.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HELM_MAJORS, NAMESPACE, one, RELEASE, render } from '../../../testkit/chart/helm.js';
import type { Manifest } from '../../../testkit/chart/k8s-schemas.js';
import { FakeApiServer } from '../../../testkit/fake-apiserver.js';
import { CHART_API_RESOURCES } from '../../../testkit/chart/api-resources.js';
import { needsFetched } from '../../../testkit/tools.js';

const skip = needsFetched('helm');
const FULLNAME = `${RELEASE}-ws-echo`;


const HPA = ['autoscaling.enabled=true', 'metrics.podMonitor.enabled=true'];
const KEDA = ['keda.enabled=true', 'metrics.podMonitor.enabled=true'];

const replicasOf = (docs: Manifest[]): unknown => (one(docs, 'Deployment').spec as { replicas?: number }).replicas;

describe('upgrades that turn an autoscaler on', { skip }, () => {
  let api: FakeApiServer;
  let kubeconfig: string;
  before(async () => {
    api = new FakeApiServer();
    api.serveResources(CHART_API_RESOURCES);
    await api.listen();
    kubeconfig = api.writeKubeconfig(join(mkdtempSync(join(tmpdir(), 'ws-echo-upgrade-')), 'kubeconfig.yaml'), NAMESPACE);
  });
  after(() => api.close());

  /** The release's live Deployment as the cluster holds it: made by Helm, scaled to `replicas`. */
  const liveDeployment = (replicas: number): void =>
    api.putObject({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: FULLNAME,
        namespace: NAMESPACE,
        labels: { 'app.kubernetes.io/managed-by': 'Helm' },
        annotations: { 'meta.helm.sh/release-name': RELEASE, 'meta.helm.sh/release-namespace': NAMESPACE },
      },
      spec: { replicas },
    });

  for (const major of HELM_MAJORS) {
    const upgrade = (set: string[]): Promise<Manifest[]> => render({ set, major, kubeconfig });

    it(`keeps the live replica count in the manifest when the HPA or KEDA takes over (Helm ${major})`, async () => {
      liveDeployment(3);
      const before = await render({ major });
      assert.equal(replicasOf(before), 3, 'before: the chart sets replicaCount');
      // Without spec.replicas in the new manifest, Helm 3's three-way merge sends
      // replicas: null and Helm 4's apply drops the field: the Deployment falls
      // to 1 and two of three pods drain at once.
      for (const autoscaler of [HPA, KEDA]) assert.equal(replicasOf(await upgrade(autoscaler)), 3, `after: ${autoscaler[0]} keeps the live 3`);
      // Later upgrades keep whatever the autoscaler has made of it.
      liveDeployment(7);
      assert.equal(replicasOf(await upgrade(HPA)), 7);
    });
  }

  it('renders no replica count without a live Deployment (a first install, or helm template for GitOps), so the autoscaler sets it', async () => {
    for (const major of HELM_MAJORS) assert.equal(replicasOf(await render({ set: HPA, major })), undefined, `Helm ${major}`);
  });
});

describe('switching from the HPA to KEDA in one upgrade', { skip }, () => {
  it("lets KEDA adopt the HPA the previous release made, so KEDA's admission webhook accepts the ScaledObject", async () => {
    const hpa = one(await render({ set: HPA }), 'HorizontalPodAutoscaler');
    const scaledObject = one(await render({ set: KEDA }), 'ScaledObject');
    // KEDA (2.11+) refuses a ScaledObject for a workload an HPA already scales,
    // unless it asks to take that HPA over, by name.
    assert.equal(scaledObject.metadata.annotations?.['scaledobject.keda.sh/transfer-hpa-ownership'], 'true');
    const config = (scaledObject.spec as { advanced: { horizontalPodAutoscalerConfig: { name: string } } }).advanced.horizontalPodAutoscalerConfig;
    assert.equal(config.name, hpa.metadata.name);
    assert.deepEqual(
      (scaledObject.spec as { scaleTargetRef: unknown }).scaleTargetRef,
      (hpa.spec as { scaleTargetRef: unknown }).scaleTargetRef,
      'the same Deployment',
    );
  });
});

describe('the pod template across Kubernetes versions', { skip }, () => {
  const templateOf = (docs: Manifest[]): unknown => (one(docs, 'Deployment').spec as { template: unknown }).template;

  for (const major of HELM_MAJORS) {
    it(`is the same for every cluster version, so upgrading the cluster restarts no pod at the next helm upgrade (Helm ${major})`, async () => {
      const versions = ['1.29.0', '1.30.0', '1.33.0', '1.34.0', '1.35.0'];
      const templates = await Promise.all(versions.map((kubeVersion) => render({ kubeVersion, major }).then(templateOf)));
      for (const [i, template] of templates.entries()) assert.deepEqual(template, templates[0], `${versions[i]} differs from ${versions[0]}`);
      const preStop = (templates[0] as { spec: { containers: { lifecycle: { preStop: unknown } }[] } }).spec.containers[0]!.lifecycle.preStop;
      assert.deepEqual(preStop, { sleep: { seconds: 5 } });
    });
  }

  it('renders the exec preStop, for clusters before 1.30, only when asked, whatever the version', async () => {
    for (const kubeVersion of ['1.29.0', '1.34.0']) {
      const exec = await render({ kubeVersion, set: ['drain.preStop.mode=exec'] });
      assert.deepEqual(((templateOf(exec) as { spec: { containers: { lifecycle: { preStop: unknown } }[] } }).spec.containers[0]!.lifecycle.preStop), {
        exec: { command: ['node', '-e', 'setTimeout(() => {}, 5000)'] },
      });
    }
  });
});
