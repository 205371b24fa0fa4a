// k8s/e2e-kind.sh without Docker: the script runs under bash as a user runs
// it, with stand-ins for docker, kind, kubectl, helm and npm first on PATH
// (app/testkit/fake-tools.ts) that record every call and answer as the real
// tools print. The release's pods are real (app/testkit/cluster/fake-kind.ts:
// service processes behind nginx, scraped by Prometheus), so the script's
// reference clients really connect and really see the rollouts. The knobs
// shrink every wait and duration so that a whole run takes seconds.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { helm } from '../../testkit/chart/helm.js';
import { isBuiltIn, type Manifest, validateExact, validateModel } from '../../testkit/chart/k8s-schemas.js';
import { FakeKind, type Faults } from '../../testkit/cluster/fake-kind.js';
import type { RunReport } from '../../testkit/cluster/report.js';
import { FakeTools, type ToolCall } from '../../testkit/fake-tools.js';
import { repoRoot } from '../../testkit/paths.js';
import { spawnOwned } from '../../testkit/processes.js';
import { findTool, needs, needsFetched } from '../../testkit/tools.js';

const SCRIPT = join(repoRoot, 'k8s', 'e2e-kind.sh');
const TOOLS = ['docker', 'kind', 'kubectl', 'helm', 'npm'];
/** What the script runs besides those: with only these on PATH, a docker or kubectl of this machine cannot answer instead of a stand-in. */
const BASICS = ['bash', 'sed', 'awk', 'grep', 'cat', 'tail', 'tr', 'cut', 'date', 'mktemp', 'sleep', 'rm', 'mkdir', 'dirname'];

interface Run {
  readonly code: number | null;
  readonly output: string;
  readonly calls: ToolCall[];
  readonly reportDir: string;
  readonly report: () => RunReport;
}

describe('k8s/e2e-kind.sh with stand-in docker, kind, kubectl, helm and npm', { skip: needs('nginx', 'prometheus') }, () => {
  let work: string;
  let fake: FakeKind;
  let tools: FakeTools;
  let runs = 0;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'kind-script-'));
    mkdirSync(join(work, 'basics'));
    for (const program of BASICS) {
      const path = ['/usr/bin', '/bin'].map((dir) => join(dir, program)).find((p) => existsSync(p));
      assert.ok(path, `${program} is not in /usr/bin or /bin`);
      symlinkSync(path, join(work, 'basics', program));
    }
    fake = await FakeKind.start({ cluster: 'ws-echo', namespace: 'realtime', release: 'echo', dir: join(work, 'cluster'), replicas: 2 });
    tools = await FakeTools.start(join(work, 'bin'), TOOLS, fake.handle);
  });

  after(async () => {
    await tools?.stop();
    await fake?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** Runs the script as a user would, with short waits; `faults` make the fake cluster misbehave. */
  async function run(args: string[], faults: Faults = {}, env: Record<string, string> = {}, fakeTools = tools): Promise<Run> {
    const reportDir = join(work, `report-${++runs}`);
    fake.reset({ ...faults, ...(faults.killLoadOf ? { killLoadOf: { step: faults.killLoadOf.step, reportDir } } : {}) });
    const first = fakeTools.calls.length;
    // Its own process group: a stuck run is killed with its load clients.
    const child = spawnOwned('bash', [SCRIPT, ...args], {
      cwd: repoRoot,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        // Stand-ins, this Node (the project's 24), the basic programs: nothing else.
        PATH: `${fakeTools.binDir}:${dirname(process.execPath)}:${join(work, 'basics')}`,
        HOME: work,
        REPORT_DIR: reportDir,
        INGRESS_URL: fake.url,
        GATEWAY_URL: fake.url,
        // 6 clients on 2 pods stay under the target of 4 per pod; 16 ask for 4 pods.
        CLIENTS: '6',
        RATE: '10',
        SCALE_MIN: '2',
        SCALE_MAX: '4',
        SCALE_TARGET: '4',
        SCALE_SURGE_CLIENTS: '10',
        SCALE_DOWN_WINDOW: '1',
        WARMUP_SECONDS: '0.3',
        DWELL_SECONDS: '0.5',
        SETTLE_SECONDS: '2',
        OPEN_TIMEOUT: '10',
        INSTALL_TIMEOUT: '10',
        TIMEOUT: '20',
        POLL_SECONDS: '0.1',
        ...env,
      },
    });
    const watchdog = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 120_000);
    const { code, output } = await finished(child);
    clearTimeout(watchdog);
    return {
      code,
      output,
      calls: fakeTools.calls.slice(first),
      reportDir,
      report: () => JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as RunReport,
    };
  }

  it('runs every default step against the fake cluster and passes, in the order a real cluster needs', async () => {
    const r = await run([]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /e2e-kind: passed: every step \(rollout,reload,autoscale,drain\)/);
    assert.deepEqual(fake.unanswered, [], 'every call is one the fake knows');
    assert.deepEqual(
      fake.withoutContext.map((c) => c.args.join(' ')),
      ['version --client'],
      'every kubectl call but the version names the kind context',
    );
    const order = orderOf(r.calls);
    // Preflight (tools, versions, npm, build) before anything touches a cluster.
    const preflight = ['docker version', 'kind version', 'kubectl version --client', 'helm version', 'npm ls', 'npm run build'].map((c) => order.first(c));
    assert.ok(Math.max(...preflight) < order.first('kind get clusters'));
    assert.ok(order.first('kind get clusters') < order.first('kind create cluster --name ws-echo'));
    assert.ok(order.first('kind create cluster') < order.first('helm --kube-context kind-ws-echo upgrade --install ingress-nginx'));
    // CRDs established before anything of theirs is created; APIServices Available before the HPA needs them.
    assert.ok(order.first('helm --kube-context kind-ws-echo upgrade --install kube-prometheus-stack') < order.first('crd/podmonitors.monitoring.coreos.com'));
    const chartInstall = order.first('helm --kube-context kind-ws-echo upgrade --install echo ./chart');
    assert.ok(order.first('crd/podmonitors.monitoring.coreos.com') < chartInstall, 'PodMonitor CRD before the chart renders one');
    assert.ok(order.first('apiservice/v1beta1.custom.metrics.k8s.io') < chartInstall, 'the adapter serves before the HPA exists');
    assert.ok(order.first('kind load image-archive') < chartInstall, 'the image is on the nodes before the pods start');
    assert.ok(order.first('docker save -o') < order.first('kind load image-archive'), 'docker save + image-archive, not kind load docker-image');
    // Waits before use: helm test, scraping and ScalingActive before any load; the rollout done before its drains are counted.
    const firstLoad = order.first('rollout restart deployment/echo-ws-echo');
    for (const wait of [
      'helm --kube-context kind-ws-echo test echo',
      'count(up{',
      'websocket_connections_active',
      'hpa/echo-ws-echo -n realtime -o jsonpath={.status.conditions',
    ]) {
      assert.ok(order.first(wait) < firstLoad, `${wait} before the first step`);
    }
    assert.ok(order.first('rollout status deployment/echo-ws-echo') > firstLoad);
    assert.ok(order.first('reason=DrainFinished', firstLoad) > order.first('rollout status deployment/echo-ws-echo'));
    // Nothing failed, so no diagnostics; the cluster it created is deleted, last.
    assert.equal(order.all('get pods -A -o wide').length, 0);
    assert.equal(order.last(), order.first('kind delete cluster --name ws-echo'));

    // Pinned: the kind node image by digest, every chart by version.
    const create = r.calls.find((c) => c.tool === 'kind' && c.args[0] === 'create')!;
    assert.match(create.args.join(' '), /--image kindest\/node:v1\.36\.1@sha256:[0-9a-f]{64}/);
    assert.equal(
      create.stdin.trim(),
      readFileSync(join(repoRoot, 'k8s', 'kind-config.yaml'), 'utf8').trim(),
      'kindnet (no networking block) without --network-policy',
    );
    for (const upgrade of r.calls.filter((c) => c.tool === 'helm' && c.args[2] === 'upgrade' && c.args[5] !== './chart')) {
      assert.ok(upgrade.args.includes('--version'), `${upgrade.args.join(' ')} pins a chart version`);
    }
    assert.ok(tools.find('helm', 'ingress-nginx/ingress-nginx', '4.15.1').length > 0);

    // The report, in the format of `npm run rollout`, with every step's checks.
    const report = r.report();
    assert.equal(report.passed, true, report.failures.join('\n'));
    assert.equal(report.mode, 'kind');
    for (const step of ['preflight', 'cluster', 'controllers', 'image', 'chart', 'rollout', 'reload', 'autoscale', 'drain']) {
      assert.ok(
        report.steps?.some((c) => c.step === step && c.verdict === 'passed'),
        `a passed check for ${step}`,
      );
    }
    const rollout = report.steps!.find((c) => c.step === 'rollout' && c.detail.startsWith('clients:'))!;
    assert.match(
      rollout.detail,
      /^clients: 6 clients sent \d+, echoed \d+, lost 0, corrupted 0, out of order 0, duplicated 0, abnormal closes 0, failed upgrades 0, reconnects \d+ \(≥ 6\), closes (1000×6|1012×\d+|1013×\d+| )+, reconnect gap p50 \d+ ms/,
    );
    // Four pods share the 16 clients (a client between pods counts nowhere for a moment).
    assert.match(
      report.steps!.find((c) => c.step === 'autoscale' && c.detail.startsWith('rebalanced'))!.detail,
      /^rebalanced: (\S+=\d+, ){3}\S+=\d+ \(mean \d\.\d\)$/,
    );
    assert.equal(report.totals.lost, 0);
    assert.ok(report.totals.reconnects >= 6);
    assert.ok(report.connectionsPerReplica.length > 0);
    assert.match(readFileSync(join(r.reportDir, 'report.md'), 'utf8'), /^# ws-echo on kind: PASSED/);
    assert.ok(existsSync(join(r.reportDir, 'connections.svg')));

    // What the script installs is valid for Kubernetes: the chart with its exact values, and its second Ingress.
    await assertValidChart(chartArgs(r.calls));
    const ingress = r.calls.find((c) => c.tool === 'kubectl' && c.args.includes('apply') && c.args.includes('-'))!;
    assert.deepEqual(validateExact(parseAllDocuments(ingress.stdin)[0]!.toJS() as Manifest, '1.34'), []);
  });

  it('with --autoscaler keda --network-policy --gateway: Calico before the nodes are used, Gateway API CRDs and objects before the HTTPRoute, the policy enforced', async () => {
    const r = await run(['--autoscaler', 'keda', '--network-policy', '--gateway', '--steps', 'netpol']);
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(fake.unanswered, []);
    const order = orderOf(r.calls);
    const create = r.calls.find((c) => c.tool === 'kind' && c.args[0] === 'create')!;
    assert.match(create.stdin, /networking:\n {2}disableDefaultCNI: true\n {2}podSubnet: 192\.168\.0\.0\/16/, 'no kindnet: it does not enforce NetworkPolicy');
    assert.ok(!create.args.includes('--wait'), 'nodes without a CNI never get Ready: no --wait');
    assert.ok(order.first('upgrade --install calico projectcalico/tigera-operator --version v3.32.1') < order.first('wait --for=condition=Ready nodes'));
    assert.ok(order.first('tigerastatus/calico') < order.first('wait --for=condition=Ready nodes'));
    assert.ok(order.first('upgrade --install keda kedacore/keda --version 2.20.2') < order.first('crd/scaledobjects.keda.sh'));
    assert.ok(order.first('apiservice/v1beta1.external.metrics.k8s.io') < order.first('upgrade --install echo ./chart'));
    assert.equal(order.all('prometheus-adapter').length, 0, 'KEDA instead of prometheus-adapter');
    assert.ok(order.first('oci://docker.io/envoyproxy/gateway-helm --version v1.9.0') < order.first('crd/httproutes.gateway.networking.k8s.io'));
    assert.ok(order.first('crd/envoyproxies.gateway.envoyproxy.io') < order.first('apply -f k8s/envoy-gateway.yaml'));
    assert.ok(order.first('gateway/ws-echo') < order.first('upgrade --install echo ./chart'), 'the Gateway is Programmed before routes attach');
    assert.ok(order.first('scaledobject/echo-ws-echo') < order.first('ws-echo-netpol-probe'), 'KEDA reads the metric before any step');
    assert.ok(order.first('httproute/echo-ws-echo') < order.first('ws-echo-netpol-probe'), 'the HTTPRoute is accepted before any step');
    const report = r.report();
    assert.ok(report.steps?.some((c) => c.step === 'netpol' && c.verdict === 'passed' && /could not open the WebSocket/.test(c.detail)));
    const args = chartArgs(r.calls);
    for (const value of ['keda.enabled=true', 'networkPolicy.enabled=true', 'httpRoute.enabled=true']) assert.ok(args.includes(value), value);
    await assertValidChart(args);
  });

  it('fails with a FAILED line when a wait times out, and dumps diagnostics before deleting the cluster it created', async () => {
    const r = await run(['--steps', 'rollout'], { adapterUnavailable: true }, { TIMEOUT: '1' });
    assert.equal(r.code, 1);
    assert.match(
      r.output,
      /e2e-kind: FAILED: controllers: timed out after 1s waiting for APIService v1beta1\.custom\.metrics\.k8s\.io Available \(last answer: False\)/,
    );
    const order = orderOf(r.calls);
    assert.equal(order.all('upgrade --install echo ./chart').length, 0, 'nothing runs past a failed wait');
    const diagnostics = order.first('get pods -A -o wide');
    assert.ok(diagnostics < order.first('kind delete cluster --name ws-echo'), 'diagnostics before the cluster goes');
    for (const file of [
      'pods.txt',
      'events.txt',
      'describe-hpa.txt',
      'describe-pods.txt',
      'logs-ws-echo.txt',
      'logs-ingress-nginx.txt',
      'logs-prometheus-adapter.txt',
    ]) {
      assert.ok(existsSync(join(r.reportDir, 'diagnostics', file)), file);
    }
    const report = r.report();
    assert.equal(report.passed, false);
    assert.match(report.failures.join('\n'), /controllers: timed out after 1s waiting for APIService/);
  });

  it('fails with a report when a load client dies, and leaves a cluster it did not create', async () => {
    const r = await run(['--steps', 'rollout'], { existingCluster: true, killLoadOf: { step: 'rollout', reportDir: '' } });
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /e2e-kind: FAILED: rollout: the load client exited before the step ended \(killed by signal 9\)/);
    const order = orderOf(r.calls);
    assert.equal(order.all('kind create cluster').length, 0, 'reused');
    assert.equal(order.all('kind delete cluster').length, 0, 'not ours to delete');
    assert.match(r.output, /kind cluster ws-echo was not created by this run: left as it is/);
    assert.ok(order.first('get pods -A -o wide') > order.first('rollout restart'), 'diagnostics of the failure');
    const report = r.report();
    assert.equal(report.passed, false);
    assert.match(report.failures.join('\n'), /rollout: the load client exited before the step ended/);
    assert.match(readFileSync(join(r.reportDir, 'report.md'), 'utf8'), /^# ws-echo on kind: FAILED/);
  });

  it('stops in preflight, before any cluster call, naming what to install', async () => {
    const partial = await FakeTools.start(join(work, 'bin-partial'), ['kubectl', 'helm', 'npm'], fake.handle);
    try {
      const started = Date.now();
      const r = await run([], {}, {}, partial);
      assert.equal(r.code, 1);
      assert.match(r.output, /missing: docker: install Docker Engine or Docker Desktop/);
      assert.match(r.output, /missing: kind: install kind v0\.32\.0/);
      assert.match(r.output, /e2e-kind: FAILED: preflight: install docker kind first \(nothing was created\)/);
      assert.deepEqual(r.calls, []);
      assert.ok(Date.now() - started < 5000);
    } finally {
      await partial.stop();
    }
    const wrongKind = await run([], { kindVersion: 'v0.31.0' });
    assert.equal(wrongKind.code, 1);
    assert.match(wrongKind.output, /FAILED: preflight: kind is v0\.31\.0; this script pins kind v0\.32\.0 and its node image/);
    assert.equal(orderOf(wrongKind.calls).all('kind get clusters').length, 0);
  });
});

describe('k8s/e2e-kind.sh source', () => {
  it('parses (bash -n) and passes shellcheck', { skip: needs('shellcheck') }, async () => {
    const check = (command: string, args: string[]): Promise<{ code: number | null; output: string }> =>
      finished(spawnOwned(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] }));
    assert.deepEqual(await check('bash', ['-n', SCRIPT]), { code: 0, output: '' });
    const shellcheck = findTool('shellcheck');
    assert.ok(shellcheck, 'shellcheck is not installed: run `npm run setup` (Debian: apt-get install shellcheck)');
    assert.deepEqual(await check(shellcheck, [SCRIPT]), { code: 0, output: '' });
  });
});

/** A child's exit code and everything it printed (stdout and stderr interleaved). */
async function finished(child: ChildProcess): Promise<{ code: number | null; output: string }> {
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, output };
}

/** Positions of calls, by a substring of "tool args…". */
function orderOf(calls: readonly ToolCall[]): {
  first: (text: string, after?: number) => number;
  all: (text: string) => number[];
  last: () => number;
} {
  const lines = calls.map((c) => `${c.tool} ${c.args.map(decode).join(' ')}`);
  return {
    first(text, after = -1) {
      const index = lines.findIndex((line, i) => i > after && line.includes(text));
      assert.ok(index >= 0, `no call with ${JSON.stringify(text)}${after >= 0 ? ` after call ${after}` : ''}`);
      return index;
    },
    all: (text) => lines.flatMap((line, i) => (line.includes(text) ? [i] : [])),
    last: () => lines.length - 1,
  };
}

/** PromQL in a URL, readable. */
function decode(arg: string): string {
  try {
    return decodeURIComponent(arg);
  } catch {
    return arg;
  }
}

/** The values arguments of the script's `helm upgrade --install` of the chart. */
function chartArgs(calls: readonly ToolCall[]): string[] {
  const install = calls.find((c) => c.tool === 'helm' && c.args.includes('./chart'));
  assert.ok(install, 'the chart was installed');
  const args = install.args.slice(install.args.indexOf('./chart') + 1);
  return args.filter((a, i) => !['--wait', '--create-namespace', '--timeout'].includes(a) && args[i - 1] !== '--timeout');
}

/** `helm template` with the script's values; every object valid for Kubernetes 1.34 or its CRD's model. */
async function assertValidChart(values: string[]): Promise<void> {
  if (needsFetched('helm', 'Kubernetes API models') !== undefined) return;
  const rendered = await helm(['template', 'echo', 'chart', '--kube-version', '1.34.0', ...values]);
  assert.ok(rendered.ok, rendered.stderr);
  const problems: string[] = [];
  for (const doc of parseAllDocuments(rendered.stdout).map((d) => d.toJS() as Manifest | null)) {
    if (doc === null) continue;
    const errors = isBuiltIn(doc.apiVersion) ? validateExact(doc, '1.34') : await validateModel(doc);
    problems.push(...errors.map((e) => `${doc.kind}/${doc.metadata.name}: ${e}`));
  }
  assert.deepEqual(problems, []);
}
