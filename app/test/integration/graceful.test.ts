// The graceful library (ws-echo/graceful) on apps that are not ws-echo: a
// plain `ws` server, a `noServer` app routing its own upgrades, two servers
// on one port, an app that says goodbye before the 1012, rebalancing, bad
// settings, the Kubernetes integration against the LOCAL FAKE API SERVER of
// the test kit, and the example chat app as a process.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer } from 'ws';
import { attach, ConfigError, SERVICE_RESTART, TRY_AGAIN_LATER, type GracefulOptions } from '../../src/graceful.js';
import { ChildService } from '../../testkit/child-service.js';
import { FakeApiServer } from '../../testkit/fake-apiserver.js';
import { httpStatus } from '../../testkit/http.js';
import { capturingLogger } from '../../testkit/logs.js';
import { exampleMain } from '../../testkit/paths.js';
import { closed, connect, UpgradeRefused } from '../../testkit/websocket.js';

/** An app as its authors would write it: its own routes, an echo, and a readiness route from the library once attached. */
interface App {
  readonly server: Server;
  readonly port: number;
  readiness: RequestListener | undefined;
}

/** Listens on a free port; `route` picks the WebSocketServer for an upgrade, as a `noServer` app does. */
async function startApp(servers: WebSocketServer[], route: (url: string) => WebSocketServer | undefined): Promise<App> {
  const server = createServer((req, res) => (app.readiness ? app.readiness(req, res) : res.writeHead(404).end()));
  for (const wss of servers) wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  server.on('upgrade', (req, socket, head) => {
    const wss = route(req.url ?? '');
    if (wss === undefined) return void socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const app: App = { server, port: (server.address() as AddressInfo).port, readiness: undefined };
  return app;
}

function quiet(): Pick<GracefulOptions, 'logger'> {
  return { logger: capturingLogger().logger };
}

async function refusedStatus(port: number, path: string): Promise<UpgradeRefused> {
  const error = await connect(port, {}, path).then(
    (ws) => (ws.terminate(), undefined),
    (err: unknown) => err,
  );
  assert.ok(error instanceof UpgradeRefused, `the upgrade to ${path} was refused`);
  return error;
}

describe('the graceful library on a plain ws app', () => {
  it('given the http server: readiness off at once, upgrades 503 + Retry-After, 1012 to every socket, finished, server closed', async () => {
    const wss = new WebSocketServer({ noServer: true });
    const app = await startApp([wss], () => wss);
    const graceful = await attach({ server: app.server, wss, drainWindowSeconds: 0.3, drainCloseTimeoutSeconds: 1, kubernetesIntegration: 'off', ...quiet() });
    app.readiness = graceful.readinessHandler;
    const clients = await Promise.all([1, 2, 3].map(() => connect(app.port, {}, '/')));
    assert.equal(await httpStatus(app.port, '/readyz'), 200);
    assert.equal(graceful.connections, 3);

    const events: string[] = [];
    graceful.on('drain', ({ connections }) => events.push(`drain ${connections}`));
    graceful.on('finished', (s) => events.push(`finished ${s.closeFramesSent}/${s.closedGracefully}/${s.terminated}`));
    const codes = clients.map((ws) => closed(ws));
    const finished = graceful.drain();
    assert.equal(graceful.ready, false);
    assert.equal(await httpStatus(app.port, '/readyz'), 503);
    const refused = await refusedStatus(app.port, '/');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    assert.deepEqual(
      (await Promise.all(codes)).map((c) => c.code),
      [SERVICE_RESTART, SERVICE_RESTART, SERVICE_RESTART],
    );
    const summary = await finished;
    assert.deepEqual([summary.connections, summary.closedGracefully, summary.terminated], [3, 3, 0]);
    assert.deepEqual(events, ['drain 3', 'finished 3/3/0']);
    assert.equal(graceful.state, 'exited');
    await once(app.server, 'close'); // the library closed it: the process may end on its own
  });

  it('with `server:` bound by ws itself, the socket is tracked and drained the same way', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const wss = new WebSocketServer({ server, path: '/live' });
    const graceful = await attach({ server, wss, drainWindowSeconds: 0, kubernetesIntegration: 'off', ...quiet() });
    const ws = await connect(port, {}, '/live');
    assert.equal(graceful.connections, 1);
    const code = closed(ws);
    await graceful.drain();
    assert.equal((await code).code, SERVICE_RESTART);
    wss.close();
  });

  it('with `noServer: true` and a second, unattached server on the same port: only the given sockets are closed', async () => {
    const drained = new WebSocketServer({ noServer: true });
    const other = new WebSocketServer({ noServer: true });
    const app = await startApp([drained, other], (url) => (url === '/chat' ? drained : url === '/admin' ? other : undefined));
    const graceful = await attach({ wss: drained, drainWindowSeconds: 0.2, drainCloseTimeoutSeconds: 1, kubernetesIntegration: 'off', ...quiet() });
    const chat = await connect(app.port, {}, '/chat');
    const admin = await connect(app.port, {}, '/admin');
    const chatClosed = closed(chat);
    await graceful.drain();
    assert.equal((await chatClosed).code, SERVICE_RESTART);
    assert.equal(admin.readyState, admin.OPEN, 'the unattached server keeps its socket');
    // The other server still takes upgrades; the drained one refuses.
    const late = await connect(app.port, {}, '/admin');
    assert.equal((await refusedStatus(app.port, '/chat')).status, 503);
    // A route no server takes is the app's answer, not the library's.
    assert.equal((await refusedStatus(app.port, '/nowhere')).status, 404);
    const echoed = once(admin, 'message');
    admin.send('still here');
    assert.equal(String((await echoed)[0]), 'still here');
    admin.terminate();
    late.terminate();
    app.server.close();
  });

  it('with two servers on one port, both attached: both drained, counted together', async () => {
    const a = new WebSocketServer({ noServer: true });
    const b = new WebSocketServer({ noServer: true });
    const app = await startApp([a, b], (url) => (url === '/a' ? a : url === '/b' ? b : undefined));
    const graceful = await attach({ wss: [a, b], drainWindowSeconds: 0.2, drainCloseTimeoutSeconds: 1, kubernetesIntegration: 'off', ...quiet() });
    const sockets = [await connect(app.port, {}, '/a'), await connect(app.port, {}, '/b'), await connect(app.port, {}, '/b')];
    assert.equal(graceful.connections, 3);
    const codes = sockets.map((ws) => closed(ws));
    const summary = await graceful.drain();
    assert.deepEqual(
      (await Promise.all(codes)).map((c) => c.code),
      [SERVICE_RESTART, SERVICE_RESTART, SERVICE_RESTART],
    );
    assert.equal(summary.connections, 3);
    app.server.close();
  });

  it('lets the app send its own goodbye just before the 1012, and carries on when a listener throws', async () => {
    const wss = new WebSocketServer({ noServer: true });
    const app = await startApp([wss], () => wss);
    const { logger, lines } = capturingLogger();
    const graceful = await attach({ wss, drainWindowSeconds: 0.2, drainCloseTimeoutSeconds: 1, kubernetesIntegration: 'off', logger });
    graceful.on('closing', (ws, code) => ws.send(JSON.stringify({ type: 'reconnect', code })));
    graceful.on('closing', () => {
      throw new Error('a bug in the app');
    });
    const clients = [await connect(app.port, {}, '/'), await connect(app.port, {}, '/')];
    const seen = clients.map(
      (ws) =>
        new Promise<string[]>((resolve) => {
          const got: string[] = [];
          ws.on('message', (data) => got.push((data as Buffer).toString()));
          ws.on('close', (code) => resolve([...got, `close ${code}`]));
        }),
    );
    await graceful.drain();
    for (const got of await Promise.all(seen)) assert.deepEqual(got, ['{"type":"reconnect","code":1012}', 'close 1012']);
    assert.ok(lines.some((l) => l.msg === 'a graceful event listener threw; carrying on'));
    app.server.close();
  });

  it('sheds above the fair share with 1013 (after the closing event), refusing upgrades while it sheds', async () => {
    const wss = new WebSocketServer({ noServer: true });
    const app = await startApp([wss], () => wss);
    const graceful = await attach({
      wss,
      kubernetesIntegration: 'off',
      rebalanceTargetConnections: 2,
      rebalanceTolerance: 0,
      rebalanceRate: 1,
      rebalanceIntervalSeconds: 0.1,
      rebalanceCooldownSeconds: 60,
      ...quiet(),
    });
    const codes: number[] = [];
    graceful.on('closing', (_ws, code) => codes.push(code));
    const clients = await Promise.all(Array.from({ length: 6 }, () => connect(app.port, {}, '/')));
    const closes = clients.map((ws) => closed(ws, 5000).catch(() => undefined));
    let refusedWhileShedding: number | undefined;
    for (let i = 0; i < 100 && graceful.connections > 2; i++) {
      if (graceful.shedding && refusedWhileShedding === undefined) refusedWhileShedding = (await refusedStatus(app.port, '/')).status;
      await sleep(50);
    }
    assert.equal(graceful.connections, 2, 'shed down to the share');
    assert.equal(refusedWhileShedding, 503);
    assert.deepEqual(codes, [TRY_AGAIN_LATER, TRY_AGAIN_LATER, TRY_AGAIN_LATER, TRY_AGAIN_LATER]);
    assert.equal(graceful.rebalanceStatus.shed, 4);
    graceful.detach();
    for (const ws of clients) ws.terminate();
    await Promise.all(closes);
    app.server.close();
  });

  it('gives the servers back as they were on detach', async () => {
    const wss = new WebSocketServer({ noServer: true });
    const graceful = await attach({ wss, kubernetesIntegration: 'off', ...quiet() });
    assert.ok(Object.hasOwn(wss, 'handleUpgrade'), 'wrapped');
    graceful.detach();
    assert.ok(!Object.hasOwn(wss, 'handleUpgrade'), "back to ws's own");
  });
});

describe('the graceful library settings', () => {
  const wss = new WebSocketServer({ noServer: true });

  it('reads unset options from `env` by the variable names, options first, defaults last', async () => {
    const graceful = await attach({
      wss,
      drainWindowSeconds: 7,
      env: { DRAIN_WINDOW_SECONDS: '3', DRAIN_CLOSE_TIMEOUT_SECONDS: '2', REBALANCE: 'off', KUBERNETES_INTEGRATION: 'off' },
      ...quiet(),
    });
    const { drainWindowSeconds, drainCloseTimeoutSeconds, rebalance, podDeletionCostIntervalSeconds } = graceful.config;
    assert.deepEqual([drainWindowSeconds, drainCloseTimeoutSeconds, rebalance.enabled, podDeletionCostIntervalSeconds], [7, 2, false, 30]);
    graceful.detach();
  });

  it('refuses bad settings with one error naming each, as options or as variables', async () => {
    await assert.rejects(
      attach({
        wss,
        drainWindowSeconds: -1,
        rebalanceRate: 5,
        kubernetesIntegration: 'maybe' as 'on',
        env: { DRAIN_CLOSE_TIMEOUT_SECONDS: 'soon' },
        ...quiet(),
      }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems, [
          'option drainWindowSeconds="-1" is invalid: must be a number of seconds from 0 to 3600',
          'DRAIN_CLOSE_TIMEOUT_SECONDS="soon" is invalid: must be a number of seconds from 0.1 to 600',
          'option kubernetesIntegration="maybe" is invalid: must be one of auto, on, off',
          'option rebalanceRate="5" is invalid: must be a number from 0.001 to 1 (a fraction: 0.2 is 20 %)',
        ]);
        return true;
      },
    );
    assert.ok(!Object.hasOwn(wss, 'handleUpgrade'), 'nothing attached');
  });
});

describe('the graceful library with Kubernetes (against the local fake API server)', () => {
  it('loads the client only when on, and creates the drain Events on the pod', async () => {
    const api = new FakeApiServer();
    await api.listen();
    api.addPod('apps', 'chat-0', { app: 'chat' });
    const kubeconfig = api.writeKubeconfig(join(mkdtempSync(join(tmpdir(), 'graceful-kube-')), 'kubeconfig.yaml'), 'apps');
    const wss = new WebSocketServer({ noServer: true });
    const graceful = await attach({
      wss,
      env: { KUBERNETES_INTEGRATION: 'on', KUBECONFIG: kubeconfig, POD_NAME: 'chat-0', POD_NAMESPACE: 'apps', DRAIN_WINDOW_SECONDS: '0' },
      ...quiet(),
    });
    await graceful.drain();
    const reasons = api.requests.filter((r) => r.path === '/api/v1/namespaces/apps/events').map((r) => (r.body as { reason: string }).reason);
    assert.deepEqual(reasons, ['DrainStarted', 'DrainFinished']);
    await api.close();
  });
});

describe('the example chat app (examples/chat) as a process', () => {
  it('relays within a room, and on SIGTERM closes with 1012 and exits 0', async () => {
    const chat = await ChildService.start({ name: 'chat-0', entry: exampleMain, env: { DRAIN_WINDOW_SECONDS: '0.3', KUBERNETES_INTEGRATION: 'off' } });
    await chat.waitReady();
    const [alice, bob, carol] = [
      await connect(chat.port, {}, '/rooms/lobby'),
      await connect(chat.port, {}, '/rooms/lobby'),
      await connect(chat.port, {}, '/rooms/other'),
    ];
    assert.equal(await chat.connections(), 3);
    const toBob = once(bob, 'message');
    const toAlice = once(alice, 'message');
    let carolGot = 0;
    carol.on('message', () => carolGot++);
    alice.send('hello lobby');
    assert.deepEqual([String((await toBob)[0]), String((await toAlice)[0])], ['hello lobby', 'hello lobby']);
    const codes = [alice, bob, carol].map((ws) => closed(ws));
    chat.signal('SIGTERM');
    assert.deepEqual(
      (await Promise.all(codes)).map((c) => c.code),
      [SERVICE_RESTART, SERVICE_RESTART, SERVICE_RESTART],
    );
    assert.equal((await chat.exited).code, 0);
    assert.equal(carolGot, 0, 'another room hears nothing');
  });
});
