// The container image, built from the real Dockerfile and run with podman:
// non-root, read-only, no capabilities; health, echo and metrics through
// published ports; the drain when podman stops it the way the kubelet does;
// and the chart's own pod spec under `podman kube play`.
//
// The image comes from scripts/build-image.sh (or WS_ECHO_IMAGE). Skipped
// only where podman cannot run; under CI=true that is a failure instead,
// because CI must test the image.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { WebSocket, type RawData } from 'ws';
import { parseAllDocuments, YAMLMap, YAMLSeq, type Document } from 'yaml';
import { renderText } from '../../testkit/chart/helm.js';
import { freePort, httpGet, waitFor200 } from '../../testkit/http.js';
import { ensureImage, inspect, podman, podmanUnavailable, publishedPort, removeContainer, top, uniqueName } from '../../testkit/podman.js';
import { scrape, waitFor } from '../../testkit/service.js';
import { closed, connect, wsUrl } from '../../testkit/websocket.js';
import { needsFetched } from '../../testkit/tools.js';

const USER = '10001';

/**
 * `podman create/run` options of a container run as the chart runs the pod:
 * read-only root (and no writable /tmp or /run either, as with Kubernetes'
 * readOnlyRootFilesystem), no capabilities, both ports published on loopback.
 */
function hardened(name: string): string[] {
  return ['--name', name, '--read-only', '--read-only-tmpfs=false', '--cap-drop', 'ALL', '-p', '127.0.0.1::8000', '-p', '127.0.0.1::9100'];
}
const unavailable = podmanUnavailable();
const skip = unavailable !== undefined && process.env.CI !== 'true' ? unavailable : false;

describe('container image (podman)', { skip }, () => {
  let image = '';

  before(
    () => {
      if (unavailable) throw new Error(`CI=true but podman cannot run: ${unavailable}`);
      image = ensureImage();
    },
    { timeout: 15 * 60_000 },
  );

  it('runs as uid 10001 with a read-only root filesystem and no capabilities, answers probes, echoes text and binary, serves /metrics', async () => {
    const name = uniqueName('ws-echo-run');
    try {
      await podman(['create', ...hardened(name), '-e', `POD_NAME=${name}`, image]);
      const startedAt = performance.now();
      await podman(['start', name]);
      const podmanStartMs = performance.now() - startedAt;
      const port = await publishedPort(name, 8000);
      const metricsPort = await publishedPort(name, 9100);
      const readyAt = await waitFor200(port, '/readyz', { timeoutMs: 30_000, describeFailure: () => containerLogs(name) });
      const startToReadyMs = readyAt - startedAt;

      const state = await inspect(name);
      assert.equal(state.Config.User, `${USER}:${USER}`, 'the image declares the numeric user');
      assert.equal(state.HostConfig.ReadonlyRootfs, true);
      // PID 1 of the container is node itself, as uid 10001, with no capability left.
      const processes = await top(name);
      assert.deepEqual(
        processes.map((p) => [p.pid, p.user, p.capeff, p.capbnd, p.args]),
        [['1', USER, 'none', 'none', 'node --enable-source-maps dist/app/src/main.js']],
      );
      // Nothing in the container is writable, and the service does not need it to be.
      const write = await podman(['exec', name, 'node', '-e', "require('fs').writeFileSync('/tmp/probe', 'x')"]).then(
        () => 'written',
        (err: Error) => err.message,
      );
      assert.match(write, /EROFS/, 'the root filesystem is read-only');

      assert.equal((await httpGet(port, '/healthz')).status, 200);
      assert.equal((await httpGet(port, '/readyz')).status, 200);
      assert.equal((await httpGet(port, '/metrics')).status, 404, 'metrics are not on the public port');

      const { ws, servedBy } = await openSocket(port);
      assert.equal(servedBy, name);
      const text = 'héllo from outside the container';
      ws.send(text);
      const [textEcho, textIsBinary] = (await once(ws, 'message', { signal: AbortSignal.timeout(10_000) })) as [RawData, boolean];
      assert.equal(textIsBinary, false);
      assert.equal((textEcho as Buffer).toString(), text);
      const bytes = randomBytes(4096);
      ws.send(bytes);
      const [binaryEcho, binaryIsBinary] = (await once(ws, 'message', { signal: AbortSignal.timeout(10_000) })) as [RawData, boolean];
      assert.equal(binaryIsBinary, true);
      assert.deepEqual(binaryEcho, bytes);
      assert.equal(await scrape(metricsPort, 'websocket_connections_active'), 1);
      assert.equal(await scrape(metricsPort, 'websocket_messages_total', { direction: 'out' }), 2);
      ws.close(1000);
      await closed(ws);
      await waitFor('the gauge to drop to 0', async () => (await scrape(metricsPort, 'websocket_connections_active')) === 0);

      const listening = (await containerLogs(name)).split('\n').find((line) => line.includes('"msg":"listening"'));
      assert.ok(listening, 'JSON logs on stdout');
      // From the container's process start (podman's clock) to the service's "listening" line.
      const nodeStartMs = Date.parse((JSON.parse(listening) as { time: string }).time) - Date.parse(state.State.StartedAt);
      const size = Number((await podman(['image', 'inspect', '--format', '{{.Size}}', image])).trim());
      console.log(
        `# image: ${image} size=${(size / 1e6).toFixed(1)}MB startToReadyMs=${startToReadyMs.toFixed(0)} ` +
          `(podman start ${podmanStartMs.toFixed(0)} ms; process start to listening ${nodeStartMs} ms)`,
      );
    } finally {
      await removeContainer(name);
    }
  });

  it('drains on `podman stop`: 50 clients get 1012, node (PID 1) exits 0 well before the grace period', async () => {
    const name = uniqueName('ws-echo-stop');
    const clientsCount = 50;
    const windowSeconds = 2;
    const closeTimeoutSeconds = 1;
    const graceSeconds = 15;
    const clients: WebSocket[] = [];
    try {
      await podman([
        'run',
        '--detach',
        ...hardened(name),
        '-e',
        `DRAIN_WINDOW_SECONDS=${windowSeconds}`,
        '-e',
        `DRAIN_CLOSE_TIMEOUT_SECONDS=${closeTimeoutSeconds}`,
        image,
      ]);
      const port = await publishedPort(name, 8000);
      const metricsPort = await publishedPort(name, 9100);
      await waitFor200(port, '/readyz', { timeoutMs: 30_000, describeFailure: () => containerLogs(name) });
      for (let i = 0; i < clientsCount; i++) clients.push(await connect(port));
      await Promise.all(clients.map((ws, i) => roundTrip(ws, `hello ${i}`)));
      assert.equal(await scrape(metricsPort, 'websocket_connections_active'), clientsCount);

      const closes = clients.map((ws) => closed(ws, (graceSeconds + 5) * 1000));
      // SIGTERM, then SIGKILL after the grace period: what the kubelet does.
      const stopAt = performance.now();
      await podman(['stop', '--time', String(graceSeconds), name], (graceSeconds + 30) * 1000);
      const stopSeconds = (performance.now() - stopAt) / 1000;
      const codes = (await Promise.all(closes)).map((c) => c.code);

      const tally: Record<number, number> = {};
      for (const code of codes) tally[code] = (tally[code] ?? 0) + 1;
      assert.deepEqual(tally, { 1012: clientsCount }, 'every client got 1012 (service restart), none 1006');
      const state = await inspect(name);
      assert.equal(state.State.ExitCode, 0, 'node exited 0 on SIGTERM (137 would mean SIGKILL at the grace period)');
      assert.ok(stopSeconds < windowSeconds + closeTimeoutSeconds + 3, `stopped ${stopSeconds.toFixed(2)} s after SIGTERM (grace ${graceSeconds} s)`);
      const summary = (await containerLogs(name)).split('\n').find((line) => line.includes('"msg":"drain finished"'));
      assert.ok(summary, 'the drain summary is logged');
      const drained = JSON.parse(summary) as { closeFramesSent: number; terminated: number };
      assert.equal(drained.closeFramesSent, clientsCount);
      assert.equal(drained.terminated, 0);
      console.log(
        `# image drain: clients=${clientsCount} window=${windowSeconds}s closeTimeout=${closeTimeoutSeconds}s grace=${graceSeconds}s stopSeconds=${stopSeconds.toFixed(2)} exitCode=${state.State.ExitCode}`,
      );
    } finally {
      for (const ws of clients) ws.terminate();
      await removeContainer(name);
    }
  });

  it(
    "starts the chart's Deployment pod with its securityContext, passes readiness, gets POD_NAME from the downward API, and drains on pod stop",
    { skip: needsFetched('helm') },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ws-echo-kubeplay-'));
      const file = join(dir, 'deployment.yaml');
      let podId = '';
      try {
        const release = uniqueName('img');
        const colon = image.lastIndexOf(':');
        const [repository, tag] = colon > image.lastIndexOf('/') ? [image.slice(0, colon), image.slice(colon + 1)] : [image, 'latest'];
        const rendered = await renderText({
          release,
          namespace: 'default',
          set: [`image.repository=${repository}`, `image.tag=${tag}`, 'replicaCount=1', 'drain.windowSeconds=1', 'drain.closeTimeoutSeconds=1'],
        });
        const wsPort = await freePort();
        const metricsPort = await freePort();
        const { yaml, grace, container } = forPodman(rendered, { ws: wsPort, metrics: metricsPort });
        writeFileSync(file, yaml);

        const playedAt = performance.now();
        const played = await podman(['kube', 'play', file], 120_000);
        podId = /Pod:\s*\n([0-9a-f]{12,64})/.exec(played)?.[1] ?? '';
        assert.ok(podId, `podman kube play printed a pod id:\n${played}`);
        const podName = (await podman(['pod', 'inspect', '--format', '{{.Name}}', podId])).trim();
        const ctr = `${podName}-${container}`;
        const readyAt = await waitFor200(wsPort, '/readyz', { timeoutMs: 30_000, describeFailure: () => containerLogs(ctr) });

        // The chart's securityContext, as applied by podman.
        const state = await inspect(ctr);
        assert.equal(state.Config.User, `${USER}:${USER}`);
        assert.equal(state.HostConfig.ReadonlyRootfs, true, 'readOnlyRootFilesystem');
        assert.deepEqual(state.EffectiveCaps ?? [], [], 'capabilities.drop: [ALL]');
        assert.ok(state.HostConfig.SecurityOpt?.includes('no-new-privileges'), 'allowPrivilegeEscalation: false');
        assert.equal(state.HostConfig.Memory, 512 * 1024 * 1024, 'resources.limits.memory');
        const [pid1, ...others] = await top(ctr);
        assert.deepEqual(others, []);
        assert.deepEqual([pid1?.pid, pid1?.user, pid1?.capeff, pid1?.seccomp], ['1', USER, 'none', 'filter'], 'seccomp RuntimeDefault');
        assert.ok(state.Config.Env.includes('DRAIN_WINDOW_SECONDS=1'), 'the chart env reaches the container');

        // POD_NAME (fieldRef metadata.name) is the pod's name: the 101 says who served it.
        const { ws, servedBy } = await openSocket(wsPort);
        assert.equal(servedBy, podName);
        await roundTrip(ws, 'through the pod');
        assert.equal(await scrape(metricsPort, 'websocket_connections_active'), 1, '/metrics on the metrics hostPort');

        // The memory budget from the limit (MEMORY_LIMIT_BYTES from resourceFieldRef, or the cgroup).
        const budgetLine = (await containerLogs(ctr)).split('\n').find((line) => line.includes('"memoryBudgetSource"'));
        assert.ok(budgetLine, 'the memory budget is logged at start');
        const budget = JSON.parse(budgetLine) as { memoryLimitBytes: number; memoryLimitSource: string; memoryBudgetSource: string };
        assert.deepEqual([budget.memoryLimitBytes, budget.memoryBudgetSource], [512 * 1024 * 1024, 'derived']);

        // What podman made of the rest of the pod spec: figures, not assertions (podman 4.3 ignores pod sysctls:
        // e2e/memory.test.ts passes the chart's with --sysctl).
        const tcpRmem = (await podman(['exec', ctr, 'cat', '/proc/sys/net/ipv4/tcp_rmem'])).trim().split(/\s+/).join(' ');
        const health = state.Config.Healthcheck?.Test.join(' ') ?? 'none';
        console.log(
          `# kube play: pod=${podName} playToReadyMs=${(readyAt - playedAt).toFixed(0)} terminationGracePeriodSeconds=${grace} ` +
            `podmanStopTimeout=${state.Config.StopTimeout} restartPolicy=${state.HostConfig.RestartPolicy.Name} livenessAsHealthcheck="${health}" ` +
            `memoryLimitSource="${budget.memoryLimitSource}" tcpRmem="${tcpRmem}"`,
        );

        // Stop the pod as the kubelet would (SIGTERM, SIGKILL at the chart's grace period).
        const close = closed(ws, (grace + 5) * 1000);
        const stopAt = performance.now();
        await podman(['pod', 'stop', '--time', String(grace), podId], (grace + 30) * 1000);
        const stopSeconds = (performance.now() - stopAt) / 1000;
        assert.equal((await close).code, 1012);
        assert.equal((await inspect(ctr)).State.ExitCode, 0);
        assert.ok(stopSeconds < grace, `pod stopped in ${stopSeconds.toFixed(2)} s, grace ${grace} s`);
      } finally {
        if (podId) await podman(['pod', 'rm', '--force', '--ignore', '--time', '0', podId]).catch(() => {});
        // Also when `kube play` failed half way, after creating the pod.
        await podman(['kube', 'down', file]).catch(() => {});
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

/** Opens a WebSocket to the published port; servedBy is the 101's X-Served-By header. */
async function openSocket(port: number): Promise<{ ws: WebSocket; servedBy: string | string[] | undefined }> {
  const ws = new WebSocket(wsUrl(port));
  // Both listeners first: ws emits 'open' right after 'upgrade', in the same tick.
  const signal = AbortSignal.timeout(10_000);
  const upgraded = once(ws, 'upgrade', { signal }) as Promise<[import('node:http').IncomingMessage]>;
  const opened = once(ws, 'open', { signal });
  const [[response]] = await Promise.all([upgraded, opened]);
  return { ws, servedBy: response.headers['x-served-by'] };
}

/** Sends one message and waits for its echo. */
async function roundTrip(ws: WebSocket, message: string): Promise<void> {
  const echoed = once(ws, 'message', { signal: AbortSignal.timeout(10_000) });
  ws.send(message);
  const [data] = (await echoed) as [RawData];
  assert.equal((data as Buffer).toString(), message);
}

async function containerLogs(name: string): Promise<string> {
  return podman(['logs', name]).catch((err: Error) => err.message);
}

/**
 * The rendered chart, reduced to what `podman kube play` runs: the
 * Deployment alone (podman ignores or refuses the other kinds), with a
 * hostPort on 127.0.0.1 for each container port so the test can reach the
 * pod, and literal values for the downward-API fields podman 4.3 cannot
 * fill (it knows metadata.name and metadata.uid, not metadata.namespace).
 * Everything else, securityContext and probes included, is the chart's own,
 * with the rendered text's quoting kept (YAML 1.1 would read `on` as true).
 */
function forPodman(rendered: string, hostPorts: Record<string, number>): { yaml: string; grace: number; container: string } {
  const deployment = parseAllDocuments(rendered).find((doc): doc is Document.Parsed => !(doc instanceof Array) && doc.get('kind') === 'Deployment');
  assert.ok(deployment, 'the chart renders a Deployment');
  const podSpec = ['spec', 'template', 'spec'];
  const containers = deployment.getIn([...podSpec, 'containers']) as YAMLSeq<YAMLMap>;
  const main = containers.items[0]!;
  for (const port of (main.get('ports') as YAMLSeq<YAMLMap>).items) {
    const hostPort = hostPorts[String(port.get('name'))];
    assert.ok(hostPort, `a host port for container port ${String(port.get('name'))}`);
    port.set('hostPort', hostPort);
    port.set('hostIP', '127.0.0.1');
  }
  const namespace = (deployment.getIn(['metadata', 'namespace']) as string | undefined) ?? 'default';
  for (const variable of (main.get('env') as YAMLSeq<YAMLMap>).items) {
    if (variable.getIn(['valueFrom', 'fieldRef', 'fieldPath']) === 'metadata.namespace') {
      variable.delete('valueFrom');
      variable.set('value', namespace);
    }
  }
  return {
    yaml: String(deployment),
    grace: Number(deployment.getIn([...podSpec, 'terminationGracePeriodSeconds'])),
    container: String(main.get('name')),
  };
}
