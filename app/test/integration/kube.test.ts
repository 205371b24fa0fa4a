// Kubernetes integration, tested with the real @kubernetes/client-node
// against the LOCAL FAKE API SERVER of the test kit (testkit/fake-apiserver.ts,
// not a kube-apiserver): it speaks the API's real shapes (the paths, verbs
// and content types of core/v1 Events, Pod patches and lists, 201/200
// bodies, `Status` objects for errors) and records every request, so the
// tests assert what the client sent. The deletion-cost reporter's timing is
// unit/deletion-cost.test.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createTlsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generate as generateCertificate } from 'selfsigned';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoClient } from '../../src/client.js';
import { loadConfig } from '../../src/config.js';
import { DeletionCostReporter } from '../../src/deletion-cost.js';
import { DELETION_COST_ANNOTATION } from '../../src/kube-api.js';
import { connectToCluster, SERVICE_ACCOUNT_DIR } from '../../src/kube.js';
import { Counters } from '../../src/metrics.js';
import { FakeApiServer } from '../../testkit/fake-apiserver.js';
import { freePort } from '../../testkit/http.js';
import { capturingLogger } from '../../testkit/logs.js';
import { startTestService } from '../../testkit/service.js';
import { wsUrl } from '../../testkit/websocket.js';

const POD = { POD_NAME: 'ws-echo-7d9f-abcde', POD_NAMESPACE: 'apps', POD_UID: '3f1c2b9e-0d4a-4c1e-9b57-2a8e6f0d1c77' };

type TestService = Awaited<ReturnType<typeof startTestService>>;

/**
 * Connects `count` reference clients, drains the service as a SIGTERM would,
 * then closes clients and service; returns how long the drain took, in seconds.
 */
async function drainWithClients(service: TestService, count: number): Promise<number> {
  const clients = Array.from({ length: count }, (_, i) => new EchoClient({ urls: [wsUrl(service.port)], id: `k${i}`, initialBackoffMs: 60_000 }));
  await Promise.all(clients.map((c) => once(c.start(), 'open')));
  const started = Date.now();
  service.drain.onSignal('SIGTERM');
  await service.drain.finished;
  const seconds = (Date.now() - started) / 1000;
  await Promise.all(clients.map((c) => c.stop(0)));
  await service.close();
  return seconds;
}

describe('kubernetes integration (against the local fake API server)', () => {
  let api: FakeApiServer;
  let kubeconfig: string;
  before(async () => {
    api = new FakeApiServer();
    await api.listen();
    api.addPod('apps', POD.POD_NAME, { 'app.kubernetes.io/name': 'ws-echo' });
    kubeconfig = api.writeKubeconfig(join(mkdtempSync(join(tmpdir(), 'ws-echo-kube-')), 'kubeconfig.yaml'), 'apps');
  });
  after(() => api.close());

  const serviceEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
    KUBERNETES_INTEGRATION: 'on',
    KUBECONFIG: kubeconfig,
    ...POD,
    ...extra,
  });

  it('creates core/v1 Events on its own pod for drain start and end, with counts', async () => {
    api.requests.length = 0;
    api.behaviour = 'ok';
    const { logger } = capturingLogger();
    const service = await startTestService(serviceEnv({ DRAIN_WINDOW_SECONDS: '0.3', DRAIN_CLOSE_TIMEOUT_SECONDS: '1' }), logger);
    assert.ok(service.cluster, 'the integration is on');
    await drainWithClients(service, 3);

    const events = api.requests.filter((r) => r.path === '/api/v1/namespaces/apps/events');
    assert.equal(events.length, 2);
    for (const event of events) {
      assert.equal(event.method, 'POST');
      assert.equal(event.contentType, 'application/json');
      assert.equal(event.authorization, 'Bearer fake-token');
    }
    type EventBody = {
      involvedObject: unknown;
      metadata: { generateName: string; namespace: string };
      reason: string;
      type: string;
      reportingComponent: string;
      source: { component: string };
      message: string;
      firstTimestamp: string;
    };
    const [started, finished] = events.map((e) => e.body as EventBody);
    assert.deepEqual(started!.involvedObject, { apiVersion: 'v1', kind: 'Pod', name: POD.POD_NAME, namespace: 'apps', uid: POD.POD_UID });
    assert.equal(started!.metadata.generateName, `${POD.POD_NAME}.`);
    assert.equal(started!.metadata.namespace, 'apps');
    assert.equal(started!.reason, 'DrainStarted');
    assert.equal(started!.type, 'Normal');
    assert.equal(started!.reportingComponent, 'ws-echo');
    assert.equal(started!.source.component, 'ws-echo');
    assert.match(started!.message, /^closing 3 WebSocket connections with 1012 over 0.3s \(SIGTERM\)$/);
    assert.ok(!Number.isNaN(Date.parse(started!.firstTimestamp)));
    assert.equal(finished!.reason, 'DrainFinished');
    assert.match(finished!.message, /^closed 3 connections gracefully and terminated 0 in \d+\.\ds$/);
  });

  it('patches pod-deletion-cost with a JSON merge patch of the one annotation, which the API server stores', async () => {
    api.requests.length = 0;
    api.behaviour = 'ok';
    const { logger } = capturingLogger();
    const cluster = await connectToCluster(loadConfig(serviceEnv()), logger, new Counters());
    assert.ok(cluster);
    let connections = 0;
    const reporter = new DeletionCostReporter({
      patch: (cost) => cluster.patchDeletionCost(cost),
      connectionCount: () => connections,
      minIntervalMs: 50,
      checkIntervalMs: 10,
      failureBackoffMs: 50,
    });
    reporter.start();
    await sleep(100);
    connections = 40;
    await sleep(200);
    reporter.stop();
    assert.deepEqual(
      api.requests.map((r) => [r.method, r.path, r.contentType]),
      [
        ['PATCH', `/api/v1/namespaces/apps/pods/${POD.POD_NAME}`, 'application/merge-patch+json'],
        ['PATCH', `/api/v1/namespaces/apps/pods/${POD.POD_NAME}`, 'application/merge-patch+json'],
      ],
    );
    assert.deepEqual(api.requests[0]!.body, { metadata: { annotations: { [DELETION_COST_ANNOTATION]: '0' } } });
    assert.deepEqual(api.requests[1]!.body, { metadata: { annotations: { [DELETION_COST_ANNOTATION]: '40' } } });
    assert.equal(api.annotations('apps', POD.POD_NAME)?.[DELETION_COST_ANNOTATION], '40');
    assert.equal(reporter.reported, 40);
  });

  it('on 403, logs once what RBAC rule is missing, counts every failure, and the drain stays on time', async () => {
    api.requests.length = 0;
    api.behaviour = 'forbidden';
    try {
      const { logger, lines } = capturingLogger();
      const service = await startTestService(serviceEnv({ DRAIN_WINDOW_SECONDS: '0.5', DRAIN_CLOSE_TIMEOUT_SECONDS: '1' }), logger);
      const cluster = service.cluster!;
      let count = 0;
      const reporter = new DeletionCostReporter({
        patch: (cost) => cluster.patchDeletionCost(cost),
        connectionCount: () => (count += 10),
        minIntervalMs: 50,
        checkIntervalMs: 10,
        failureBackoffMs: 50,
      });
      reporter.start();
      await sleep(500);
      reporter.stop();
      const seconds = await drainWithClients(service, 1);

      assert.ok(seconds <= 0.5 + 1 + 1, `drain took ${seconds}s`);
      const failedPatches = api.requests.filter((r) => r.method === 'PATCH').length;
      assert.ok(failedPatches >= 3, `patches kept being tried (${failedPatches})`);
      const warnings = lines.filter((l) => l.level === 'warn' && l.module === 'kube');
      assert.equal(warnings.length, 2, 'one warning per kind of failure: patch forbidden, event forbidden');
      const patchWarning = warnings.find((w) => w.call === 'patch');
      assert.equal(patchWarning?.status, 403);
      assert.match(
        String(patchWarning?.hint),
        /may not patch pods in namespace apps: grant a Role rule apiGroups \[""\] resources \["pods"\] verbs \["patch"\]/,
      );
      assert.match(String(warnings.find((w) => w.call === 'event')?.hint), /resources \["events"\] verbs \["create"\]/);
      assert.equal(service.counters.kubeApi.get('patch forbidden'), failedPatches);
      assert.equal(service.counters.kubeApi.get('event forbidden'), 2);
    } finally {
      api.behaviour = 'ok';
    }
  });

  it('with the API server hanging, the drain still finishes within window + timeout + 1 s', async () => {
    api.behaviour = 'hang';
    try {
      const { logger, lines } = capturingLogger();
      const config = loadConfig(serviceEnv());
      const cluster = await connectToCluster(config, logger, new Counters(), { apiTimeoutMs: 300 });
      assert.ok(cluster);
      const started = Date.now();
      await cluster.podEvent('Test', 'nobody answers this');
      const waited = Date.now() - started;
      assert.ok(waited >= 250 && waited < 1500, `the call gave up after ${waited} ms (timeout 300 ms)`);
      assert.ok(
        lines.some((l) => l.level === 'warn' && l.result === 'timeout'),
        'the timeout is logged',
      );
      const service = await startTestService(serviceEnv({ DRAIN_WINDOW_SECONDS: '0.5', DRAIN_CLOSE_TIMEOUT_SECONDS: '1' }), logger);
      const seconds = await drainWithClients(service, 1);
      assert.ok(seconds <= 0.5 + 1 + 1, `drain took ${seconds}s`);
    } finally {
      api.behaviour = 'ok';
    }
  });

  it('with the API server unreachable, logs where it tried and keeps serving', async () => {
    const closedPort = await freePort();
    // A kubeconfig whose server is a port nobody listens on.
    const down = join(mkdtempSync(join(tmpdir(), 'ws-echo-down-')), 'kubeconfig.yaml');
    writeFileSync(down, readFileSync(kubeconfig, 'utf8').replace(/server: http:\/\/127\.0\.0\.1:\d+/, `server: http://127.0.0.1:${closedPort}`));
    const { logger, lines } = capturingLogger();
    const counters = new Counters();
    const cluster = await connectToCluster(loadConfig(serviceEnv({ KUBECONFIG: down })), logger, counters);
    // Every call and result is exported from 0, so that a rate sees the first failure.
    assert.equal(counters.kubeApi.size, 3 * 8);
    assert.equal(counters.kubeApi.get('event unreachable'), 0);
    await cluster!.podEvent('Test', 'nobody hears this');
    const warning = lines.find((l) => l.level === 'warn');
    assert.equal(warning?.result, 'unreachable');
    assert.match(String(warning?.hint), new RegExp(`cannot connect to the API server at http://127.0.0.1:${closedPort}`));
    assert.equal(counters.kubeApi.get('event unreachable'), 1);
  });

  it('on a 5xx, counts it as a server error', async () => {
    api.behaviour = 'server_error';
    try {
      const { logger, lines } = capturingLogger();
      const counters = new Counters();
      const cluster = await connectToCluster(loadConfig(serviceEnv()), logger, counters);
      await cluster!.podEvent('Test', 'x');
      assert.equal(counters.kubeApi.get('event server_error'), 1);
      assert.equal(lines.find((l) => l.level === 'warn')?.status, 500);
    } finally {
      api.behaviour = 'ok';
    }
  });
});

describe('kubernetes integration: detection', () => {
  it('is off outside a cluster in auto mode, with one info line', async () => {
    const { logger, lines } = capturingLogger();
    const cluster = await connectToCluster(loadConfig({}), logger, new Counters(), { serviceAccountRoot: '/nonexistent' });
    assert.equal(cluster, undefined);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 'info');
    assert.match(String(lines[0]!.msg), /kubernetes integration off: not running in a cluster/);
  });

  it('is off when forced off, even in a cluster', async () => {
    const { logger, lines } = capturingLogger();
    const cluster = await connectToCluster(loadConfig({ KUBERNETES_INTEGRATION: 'off', KUBERNETES_SERVICE_HOST: '10.0.0.1' }), logger, new Counters());
    assert.equal(cluster, undefined);
    assert.match(String(lines[0]!.msg), /KUBERNETES_INTEGRATION=off/);
  });

  it('in a pod (service host + token), uses the mounted token, CA and namespace over TLS', async () => {
    // A service account folder as the kubelet mounts it, and an HTTPS fake API server with a self-signed certificate.
    const root = mkdtempSync(join(tmpdir(), 'ws-echo-sa-'));
    const saDir = join(root, SERVICE_ACCOUNT_DIR);
    mkdirSync(saDir, { recursive: true });
    const tls = await generateCertificate([{ name: 'commonName', value: 'kubernetes' }], {
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    });
    writeFileSync(join(saDir, 'ca.crt'), tls.cert);
    writeFileSync(join(saDir, 'token'), 'mounted-token');
    writeFileSync(join(saDir, 'namespace'), 'from-file');
    const api = new FakeApiServer(createTlsServer({ key: tls.private, cert: tls.cert }));
    const port = await api.listen();
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    // client-node's loadFromCluster() reads these two from the environment itself.
    process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
    process.env.KUBERNETES_SERVICE_PORT = String(port);
    try {
      const { logger } = capturingLogger();
      const config = loadConfig({ KUBERNETES_SERVICE_HOST: '127.0.0.1', POD_NAME: 'ws-echo-7d9f-abcde' });
      const cluster = await connectToCluster(config, logger, new Counters(), { serviceAccountRoot: root });
      assert.ok(cluster);
      await cluster.podEvent('Test', 'hello from the pod');
      assert.equal(api.requests.length, 1);
      assert.equal(api.requests[0]!.path, '/api/v1/namespaces/from-file/events');
      assert.equal(api.requests[0]!.authorization, 'Bearer mounted-token');
    } finally {
      restoreEnv('KUBERNETES_SERVICE_HOST', saved.host);
      restoreEnv('KUBERNETES_SERVICE_PORT', saved.port);
      await api.close();
    }
  });
});

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
