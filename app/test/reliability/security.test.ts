// Security defaults: metrics only on the metrics port; logs without stack
// traces or request data at info level and without secrets at any level; the
// chart's pods under the full restricted Pod Security Standard, a
// NetworkPolicy, least-privilege RBAC; no known high or critical advisory in
// the production dependencies, and every dependency pinned by the lockfile.
// (The container image itself — non-root, read-only root, no shell needed — is
// app/test/image.test.ts.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { KUBERNETES_API_CALLS } from '../../src/kube.js';
import { ensureHelm, pool, render, scenarios } from '../chart/helm.js';
import type { Manifest } from '../chart/k8s-schemas.js';
import { httpGet, waitFor, wsUrl } from '../helpers.js';
import { closePayload, encodeFrame, OP } from './frames.js';
import { FakeKubeApi } from './fake-kube.js';
import { exchange, Figures, repoRoot, spawnUnder, splitHead, stopChild, UPGRADE_REQUEST } from './harness.js';
import { RESTRICTED_CONTROLS, restrictedViolations, type PodLike } from './pod-security.js';

const run = promisify(execFile);
const figures = new Figures('security');
after(() => figures.write());

describe('metrics only on the metrics port', () => {
  it('answers 404 for every way of asking the public port for metrics, and serves nothing else on the metrics port', async () => {
    const service = await spawnUnder([], { POD_NAME: 'metrics-port' });
    try {
      const publicAsks = ['/metrics', '/metrics/', '/METRICS', '/metrics?format=prometheus', '//metrics', '/./metrics', '/echo/../metrics'];
      for (const path of publicAsks) {
        const res = await httpGet(service.port, path);
        assert.equal(res.status, 404, `public ${path}`);
        assert.doesNotMatch(res.body, /websocket_|process_cpu|nodejs_/, `public ${path} leaks metrics`);
      }
      const upgrade = await exchange(service.port, [UPGRADE_REQUEST.replace('/echo', '/metrics')]);
      assert.match(splitHead(upgrade.received).status, /^HTTP\/1\.1 404 /);
      const metricsAsks = ['/', '/healthz', '/readyz', '/echo', '/metrics/', '/metrics?x=1'];
      for (const path of metricsAsks) assert.equal((await httpGet(service.metricsPort, path)).status, 404, `metrics port ${path}`);
      const ws = await exchange(service.metricsPort, [UPGRADE_REQUEST]);
      assert.doesNotMatch(splitHead(ws.received).status, / 101 /, 'no WebSocket on the metrics port');
      assert.equal((await httpGet(service.metricsPort, '/metrics')).status, 200);
      figures.add({
        case: 'metrics only on METRICS_PORT',
        inputs: publicAsks.length + 1 + metricsAsks.length + 1,
        offender: `public port: 404 for ${publicAsks.join(' ')} and an upgrade on /metrics; metrics port: 404 for ${metricsAsks.join(' ')}, no 101`,
        others: 'GET /metrics on METRICS_PORT: 200',
        lost: 0,
      });
    } finally {
      await stopChild(service);
    }
  });
});

describe('logs', () => {
  /** Marked values a hostile or careless client puts in its requests; none may reach the logs. */
  const mark = (what: string): string => `${what}-${randomBytes(8).toString('hex')}`;
  const secrets = { bearer: mark('bearer'), cookie: mark('cookie'), apiKey: mark('apikey'), queryToken: mark('querytoken') };
  const requestData = {
    path: mark('path'),
    origin: `https://${mark('origin')}.example`,
    userAgent: mark('agent'),
    header: mark('header'),
    payload: mark('payload'),
    reason: mark('reason'),
    key: mark('key'),
  };

  /** Every kind of request the service logs something about, carrying the marks. */
  async function hostileTraffic(port: number): Promise<void> {
    const auth = `Authorization: Bearer ${secrets.bearer}\r\nCookie: session=${secrets.cookie}\r\nX-Api-Key: ${secrets.apiKey}\r\nUser-Agent: ${requestData.userAgent}\r\nX-Custom: ${requestData.header}\r\n`;
    const handshake = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
    const requests = [
      `GET /${requestData.path}?token=${secrets.queryToken} HTTP/1.1\r\nHost: x\r\n${auth}${handshake}\r\n`, // 404 path
      `GET /echo?token=${secrets.queryToken} HTTP/1.1\r\nHost: x\r\n${auth}${handshake}Origin: ${requestData.origin}\r\n\r\n`, // 403 origin
      `GET /echo HTTP/1.1\r\nHost: x\r\n${auth}${handshake.replace('dGhlIHNhbXBsZSBub25jZQ==', requestData.key)}\r\n`, // 400 bad key
      `GET /echo HTTP/1.1\r\nHost: x\r\n${auth}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`, // 431
      `GET /${requestData.path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`, // 400 smuggling
      `POST /echo?token=${secrets.queryToken} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 0\r\n\r\n`, // 405
      `GET /echo?token=${secrets.queryToken} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, // 426
      `GET /echo?token=${secrets.queryToken} HTTP/1.1\r\nHost: x\r\n${auth}${handshake}\r\n`, // 101, then frames below
    ];
    for (const [i, request] of requests.entries()) {
      const frames =
        i === requests.length - 1
          ? [
              encodeFrame({ opcode: OP.text, payload: Buffer.from(requestData.payload) }),
              encodeFrame({ opcode: OP.text, payload: Buffer.concat([Buffer.from(requestData.payload), Buffer.from([0xc0, 0xaf])]) }), // 1007
            ]
          : [];
      await exchange(port, [Buffer.concat([Buffer.from(request, 'latin1'), ...frames])]);
    }
    // A client that closes with a marked reason, and one cut without a close frame.
    const polite = new WebSocket(wsUrl(port, `/echo?token=${secrets.queryToken}`), {
      headers: { authorization: `Bearer ${secrets.bearer}`, cookie: `session=${secrets.cookie}` },
    });
    await once(polite, 'open');
    polite.close(4000, requestData.reason);
    await once(polite, 'close');
    const rude = new WebSocket(wsUrl(port));
    await once(rude, 'open');
    rude.terminate();
    await exchange(port, [Buffer.concat([Buffer.from(UPGRADE_REQUEST), encodeFrame({ opcode: OP.close, payload: closePayload(1000, requestData.reason) })])]);
  }

  /** Runs the service at `level` against a Kubernetes API that answers `fault`, sends the hostile traffic, drains, and returns every line it wrote. */
  async function logsAt(level: string, fault: 'unprocessable' | 'forbidden'): Promise<{ lines: string[]; token: string }> {
    const api = await FakeKubeApi.start(fault);
    const { path, token } = api.kubeconfig();
    const service = await spawnUnder([], {
      LOG_LEVEL: level,
      ALLOWED_ORIGINS: 'https://app.example.com',
      KUBERNETES_INTEGRATION: 'on',
      KUBECONFIG: path,
      POD_NAME: 'ws-echo-7d9f-abcde',
      POD_NAMESPACE: 'apps',
      DRAIN_WINDOW_SECONDS: '0.2',
      DRAIN_CLOSE_TIMEOUT_SECONDS: '0.5',
    });
    try {
      await hostileTraffic(service.port);
      await sleep(200);
      service.child.kill('SIGTERM');
      await service.exited;
      const stdout = service.logs.map((l) => JSON.stringify(l));
      const stderr = service.stderr().split('\n').filter(Boolean);
      return { lines: [...stdout, ...stderr.map((l) => `stderr: ${l}`)], token };
    } finally {
      await stopChild(service);
      api.close();
    }
  }

  it('at info level: no stack trace, no header, path, query, origin or payload of any request, and no secret', async () => {
    const { lines, token } = await logsAt('info', 'unprocessable');
    const leaks = lines.filter((line) => [...Object.values(secrets), ...Object.values(requestData), token].some((m) => line.includes(m)));
    const stacks = lines.filter((line) => /"stack"|\\n\s+at |^stderr: \s+at /.test(line));
    assert.deepEqual(leaks, [], 'request data or secrets in the logs');
    assert.deepEqual(stacks, [], 'stack traces in the logs');
    assert.ok(
      lines.some((l) => l.includes('kubernetes api call failed')),
      'the API failure was logged (so its error was serialised)',
    );
    figures.add({
      case: 'logs at LOG_LEVEL=info: 13 hostile requests and frames carrying marked headers, Authorization, cookies, query tokens, origins, paths, payloads and close reasons; a Kubernetes API answering 422; a drain',
      inputs: 13,
      offender: `${lines.length} log lines, none with a stack trace or any marked value`,
      others: '-',
      lost: 0,
    });
  });

  it('at trace level: no secret, neither the clients’ nor the Kubernetes bearer token', async () => {
    const { lines, token } = await logsAt('trace', 'forbidden');
    const leaks = lines.filter((line) => [...Object.values(secrets), token].some((m) => line.includes(m)));
    assert.deepEqual(leaks, []);
    assert.ok(
      lines.some((l) => l.includes('"level":"debug"')),
      'debug lines were written',
    );
    figures.add({
      case: 'logs at LOG_LEVEL=trace: the same traffic, a Kubernetes API answering 403',
      inputs: 13,
      offender: `${lines.length} log lines, no Authorization, cookie, API key, query token or Kubernetes bearer token`,
      others: '-',
      lost: 0,
    });
  });
});

describe('a broken kubeconfig', () => {
  it('is reported by line and column, without quoting the file (which holds the bearer token)', async () => {
    const token = `kube-token-${randomBytes(24).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), 'ws-echo-bad-kubeconfig-'));
    const path = join(dir, 'kubeconfig.yaml');
    // A typo right next to the token: YAML parsers quote the lines around a mistake.
    writeFileSync(path, `apiVersion: v1\nkind: Config\nusers:\n- name: ws-echo\n  user: { token: ${token}, : oops\n  [\ncurrent-context: x\n`);
    const service = await spawnUnder([], { LOG_LEVEL: 'trace', KUBERNETES_INTEGRATION: 'on', KUBECONFIG: path, POD_NAMESPACE: 'apps', POD_NAME: 'kubeconfig' });
    await waitFor('the kubernetes integration to decide', () => service.logs.some((l) => l.module === 'kube'));
    await stopChild(service);
    const lines = [...service.logs.map((l) => JSON.stringify(l)), service.stderr()];
    assert.deepEqual(
      lines.filter((l) => l.includes(token)),
      [],
      'the token is in the logs',
    );
    const report = service.logs.find((l) => String(l.msg).includes('no usable cluster credentials'));
    assert.match(String(report?.problem), /\(\d+:\d+\)/, 'the problem names its line and column');
    figures.add({
      case: 'a malformed kubeconfig (a typo next to the token) at LOG_LEVEL=trace',
      inputs: 1,
      offender: `logged: ${String(report?.problem)}; token not in the logs`,
      others: '-',
      lost: 0,
    });
  });
});

describe('chart security', () => {
  /** Every ci/ scenario rendered for Kubernetes 1.30 and 1.34. */
  const rendered = new Map<string, Manifest[]>();
  before(async () => {
    ensureHelm();
    const jobs = scenarios().flatMap((scenario) => ['1.30.0', '1.34.0'].map((kubeVersion) => ({ scenario, kubeVersion })));
    await pool(jobs, 2, async ({ scenario, kubeVersion }) => {
      rendered.set(`${scenario}@${kubeVersion}`, await render({ scenario, kubeVersion }));
    });
  });

  const podsOf = (docs: Manifest[]): { name: string; pod: PodLike }[] =>
    docs.flatMap((d) => {
      if (d.kind === 'Pod') return [{ name: `Pod/${d.metadata.name}`, pod: { metadata: d.metadata, spec: d.spec as Record<string, unknown> } }];
      const template = (d.spec as { template?: PodLike } | undefined)?.template;
      return template ? [{ name: `${d.kind}/${d.metadata.name}`, pod: template }] : [];
    });

  it('passes every control of the restricted Pod Security Standard for every pod spec of every scenario', () => {
    const problems: string[] = [];
    let pods = 0;
    for (const [name, docs] of rendered) {
      for (const { name: podName, pod } of podsOf(docs)) {
        pods++;
        for (const v of restrictedViolations(pod)) problems.push(`${name} ${podName}: ${v}`);
      }
    }
    assert.deepEqual(problems, []);
    // A Deployment and the helm test pod in each of the scenarios, for both releases.
    assert.equal(pods, rendered.size * 2);
    figures.add({
      case: `chart: restricted Pod Security Standard (${Object.keys(RESTRICTED_CONTROLS).length} controls) on every pod spec rendered by helm for ${scenarios().length} chart/ci scenarios × Kubernetes 1.30 and 1.34 (Deployment and helm test pod)`,
      inputs: pods,
      offender: `${pods} pod specs, 0 violations`,
      others: '-',
      lost: 0,
    });
  });

  it('the checker itself flags each control when the rendered spec is broken that way', () => {
    const base = podsOf(rendered.get('default@1.34.0')!).find((p) => p.name.startsWith('Deployment'))!.pod;
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
      const pod = structuredClone({ metadata: { annotations: {} as Record<string, string> }, spec: base.spec as Record<string, any> });
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
    figures.add({
      case: 'chart: NetworkPolicy example (networkPolicy.enabled=true)',
      inputs: 1,
      offender: 'ws port: ingress-nginx namespace and the helm test pod only; metrics port: monitoring namespace only; everything else denied',
      others: '-',
      lost: 0,
    });
  });

  it('grants exactly the Kubernetes API calls the service makes, in its namespace only, in every scenario', () => {
    // Every call of app/src/kube.ts; those marked `only` are granted only when that feature is on.
    const calls = KUBERNETES_API_CALLS as readonly { apiGroup: string; resource: string; verb: string; only?: string | undefined }[];
    const rule = (c: (typeof calls)[number]): string => JSON.stringify({ apiGroups: [c.apiGroup], resources: [c.resource], verbs: [c.verb] });
    const always = calls.filter((c) => c.only === undefined).map(rule);
    const allowed = new Set(calls.map(rule));
    let roles = 0;
    for (const [name, docs] of rendered) {
      assert.ok(!docs.some((d) => d.kind === 'ClusterRole' || d.kind === 'ClusterRoleBinding'), `${name}: no cluster-wide RBAC`);
      for (const role of docs.filter((d) => d.kind === 'Role')) {
        roles++;
        const rules = (role as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[] }).rules;
        const granted = rules.map((r) => JSON.stringify(r));
        assert.deepEqual(
          granted.filter((r) => !allowed.has(r)),
          [],
          `${name}: Role grants a call the service never makes`,
        );
        assert.deepEqual(
          always.filter((r) => !granted.includes(r)),
          [],
          `${name}: Role lacks a call the service always makes`,
        );
        assert.ok(!JSON.stringify(rules).includes('*'), `${name}: no wildcard`);
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
});

describe('dependencies', () => {
  it('has no high or critical advisory in the production dependencies (npm audit --omit=dev)', async (t) => {
    const result = await run('npm', ['audit', '--omit=dev', '--audit-level=high', '--json'], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 }).then(
      ({ stdout }) => stdout,
      (err: { stdout?: string }) => err.stdout ?? '',
    );
    let report: { metadata?: { vulnerabilities?: Record<string, number> }; error?: unknown; message?: string; statusCode?: number };
    try {
      report = JSON.parse(result) as typeof report;
    } catch {
      return t.skip(`npm audit printed no JSON: ${result.slice(0, 200)}`);
    }
    if (report.metadata?.vulnerabilities === undefined) {
      const why = `the npm audit endpoint is not reachable from here (${report.message ?? JSON.stringify(report).slice(0, 200)}); run npm audit --omit=dev where it is`;
      figures.add({ case: 'npm audit --omit=dev --audit-level=high', inputs: 0, offender: `skipped: ${why}`, others: '-', lost: 0 });
      return t.skip(why);
    }
    const v = report.metadata.vulnerabilities;
    assert.equal((v.high ?? 0) + (v.critical ?? 0), 0, `npm audit: ${JSON.stringify(v)}`);
    figures.add({ case: 'npm audit --omit=dev --audit-level=high', inputs: 1, offender: `vulnerabilities: ${JSON.stringify(v)}`, others: '-', lost: 0 });
  });

  it('pins every dependency in package-lock.json, which matches package.json (what npm ci installs)', async () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
      lockfileVersion: number;
      packages: Record<
        string,
        { version?: string; integrity?: string; link?: boolean; dependencies?: Record<string, string>; devDependencies?: Record<string, string> }
      >;
    };
    assert.ok(lock.lockfileVersion >= 2, `lockfileVersion ${lock.lockfileVersion}`);
    const root = lock.packages['']!;
    assert.deepEqual(root.dependencies ?? {}, pkg.dependencies, 'the lockfile was written for these dependencies');
    assert.deepEqual(root.devDependencies ?? {}, pkg.devDependencies, 'the lockfile was written for these devDependencies');
    const unpinned = Object.entries(lock.packages).filter(([path, p]) => path !== '' && !p.link && (!p.version || !/^sha512-/.test(p.integrity ?? '')));
    assert.deepEqual(
      unpinned.map(([path]) => path),
      [],
      'every package has an exact version and a sha512 integrity',
    );
    // npm's own check that the tree in the lockfile satisfies package.json (npm ci refuses otherwise).
    await run('npm', ['ls', '--all', '--package-lock-only'], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
    figures.add({
      case: 'dependencies pinned by package-lock.json',
      inputs: Object.keys(lock.packages).length - 1,
      offender: `lockfileVersion ${lock.lockfileVersion}; ${Object.keys(lock.packages).length - 1} packages, each with an exact version and a sha512 integrity; the lock matches package.json; npm ls --all --package-lock-only is clean`,
      others: '-',
      lost: 0,
    });
  });
});
