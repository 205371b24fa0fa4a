// Security defaults of the service: metrics only on the metrics port; logs
// without stack traces or request data at info level and without secrets at
// any level; no known high or critical advisory in the production
// dependencies, and every dependency pinned by the lockfile. (The chart's
// pods, RBAC and NetworkPolicy are chart/security.test.ts; the container image
// itself, non-root and read-only, is e2e/image.test.ts.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { FakeKubeApi } from '../../../testkit/fake-kube-faults.js';
import { closePayload, encodeFrame, OP } from '../../../testkit/frames.js';
import { httpGet, exchange, splitHead } from '../../../testkit/http.js';
import { repoRoot } from '../../../testkit/paths.js';
import { Figures } from '../../../testkit/reliability.js';
import { waitFor } from '../../../testkit/service.js';
import { upgradeRequest, wsUrl } from '../../../testkit/websocket.js';
import { ChildService } from '../../../testkit/child-service.js';

const run = promisify(execFile);
const figures = new Figures('security');
after(() => figures.write());

describe('metrics only on the metrics port', () => {
  it('answers 404 for every way of asking the public port for metrics, and serves nothing else on the metrics port', async () => {
    const service = await ChildService.start({ env: { POD_NAME: 'metrics-port' } });
    try {
      const publicAsks = ['/metrics', '/metrics/', '/METRICS', '/metrics?format=prometheus', '//metrics', '/./metrics', '/echo/../metrics'];
      for (const path of publicAsks) {
        const res = await httpGet(service.port, path);
        assert.equal(res.status, 404, `public ${path}`);
        assert.doesNotMatch(res.body, /websocket_|process_cpu|nodejs_/, `public ${path} leaks metrics`);
      }
      const upgrade = await exchange(service.port, [upgradeRequest({ path: '/metrics' })]);
      assert.match(splitHead(upgrade.received).status, /^HTTP\/1\.1 404 /);
      const metricsAsks = ['/', '/healthz', '/readyz', '/echo', '/metrics/', '/metrics?x=1'];
      for (const path of metricsAsks) assert.equal((await httpGet(service.metricsPort, path)).status, 404, `metrics port ${path}`);
      const ws = await exchange(service.metricsPort, [upgradeRequest()]);
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
      await service.stop('SIGKILL');
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
    const auth = {
      Authorization: `Bearer ${secrets.bearer}`,
      Cookie: `session=${secrets.cookie}`,
      'X-Api-Key': secrets.apiKey,
      'User-Agent': requestData.userAgent,
      'X-Custom': requestData.header,
    };
    const withToken = `/echo?token=${secrets.queryToken}`;
    const requests = [
      upgradeRequest({ path: `/${requestData.path}?token=${secrets.queryToken}`, host: 'x', headers: auth }), // 404 path
      upgradeRequest({ path: withToken, host: 'x', headers: { ...auth, Origin: requestData.origin } }), // 403 origin
      upgradeRequest({ host: 'x', key: requestData.key, headers: auth }), // 400 bad key
      upgradeRequest({ host: 'x', upgrade: null, key: null, version: null, headers: { ...auth, 'X-Big': 'a'.repeat(20_000) } }), // 431
      upgradeRequest({
        path: `/${requestData.path}`,
        host: 'x',
        upgrade: null,
        key: null,
        version: null,
        headers: { ...auth, 'Content-Length': '1', 'Transfer-Encoding': 'chunked' },
      }), // 400 smuggling
      upgradeRequest({ method: 'POST', path: withToken, host: 'x', upgrade: null, key: null, version: null, headers: { ...auth, 'Content-Length': '0' } }), // 405
      upgradeRequest({ path: withToken, host: 'x', upgrade: null, key: null, version: null, headers: auth }), // 426
      upgradeRequest({ path: withToken, host: 'x', headers: auth }), // 101, then frames below
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
    await exchange(port, [Buffer.concat([Buffer.from(upgradeRequest()), encodeFrame({ opcode: OP.close, payload: closePayload(1000, requestData.reason) })])]);
  }

  /** Runs the service at `level` against a Kubernetes API that answers `fault`, sends the hostile traffic, drains, and returns every line it wrote. */
  async function logsAt(level: string, fault: 'unprocessable' | 'forbidden'): Promise<{ lines: string[]; token: string }> {
    const api = await FakeKubeApi.start(fault);
    const { path, token } = api.kubeconfig();
    const service = await ChildService.start({
      env: {
        LOG_LEVEL: level,
        ALLOWED_ORIGINS: 'https://app.example.com',
        KUBERNETES_INTEGRATION: 'on',
        KUBECONFIG: path,
        POD_NAME: 'ws-echo-7d9f-abcde',
        POD_NAMESPACE: 'apps',
        DRAIN_WINDOW_SECONDS: '0.2',
        DRAIN_CLOSE_TIMEOUT_SECONDS: '0.5',
      },
    });
    try {
      await hostileTraffic(service.port);
      await sleep(200);
      service.signal('SIGTERM');
      await service.exited;
      const stdout = service.logs.map((l) => JSON.stringify(l));
      const stderr = service.stderr().split('\n').filter(Boolean);
      return { lines: [...stdout, ...stderr.map((l) => `stderr: ${l}`)], token };
    } finally {
      await service.stop('SIGKILL');
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
    const service = await ChildService.start({
      env: { LOG_LEVEL: 'trace', KUBERNETES_INTEGRATION: 'on', KUBECONFIG: path, POD_NAMESPACE: 'apps', POD_NAME: 'kubeconfig' },
    });
    await waitFor('the kubernetes integration to decide', () => service.logs.some((l) => l.module === 'kube'));
    await service.stop('SIGKILL');
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
