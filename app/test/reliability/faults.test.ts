// Faults around the service, on real processes: nginx reloads under load, a
// replica killed and restarted again and again, the process out of file
// descriptors, and the Kubernetes API down, slow or refusing during a drain.
// (A single SIGKILL under load is app/test/cluster/rollout.test.ts, mode kill.)
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WebSocket } from 'ws';
import { EchoClient } from '../../src/client.js';
import { Load, type LoadTotals } from '../../../scripts/cluster/load.js';
import { NginxProxy } from '../../../scripts/cluster/nginx.js';
import { proxySettingsFromChart } from '../../../scripts/cluster/settings.js';
import { connect, scrape, spawnService, wsUrl } from '../helpers.js';
import { API_FAULTS, FakeKubeApi, FAULT_DESCRIPTIONS } from './fake-kube.js';
import { assertContained, Figures, MemorySampler, othersSaw, spawnUnder, stopChild, tally, watched } from './harness.js';

const figures = new Figures('faults');
after(() => figures.write());

function assertNothingLost(totals: LoadTotals, what: string): void {
  assert.equal(totals.lost, 0, `${what}: ${totals.lost} messages lost`);
  assert.equal(totals.echoed, totals.sent, `${what}: ${totals.echoed} of ${totals.sent} echoed`);
  assert.equal(totals.duplicated + totals.corrupted + totals.outOfOrder, 0, `${what}: duplicated, corrupted or out-of-order echoes`);
}

describe('nginx in front', () => {
  it('reloads nginx 6 times while 200 clients send: no abnormal close, no failed upgrade, nothing lost', async () => {
    const replicas = await Promise.all([spawnService({ POD_NAME: 'reload-a' }), spawnService({ POD_NAME: 'reload-b' })]);
    const upstreams = replicas.map((r) => ({ name: r.name, port: r.port }));
    const nginx = await NginxProxy.start(proxySettingsFromChart(), upstreams, mkdtempSync(join(tmpdir(), 'ws-echo-reload-')));
    const samplers = replicas.map((r) => new MemorySampler(r.child.pid!));
    const load = new Load({ url: `ws://127.0.0.1:${nginx.port}/echo`, clients: 200, rate: 4 });
    let totals: LoadTotals | undefined;
    const RELOADS = 6;
    try {
      await load.open();
      load.startSending();
      for (let i = 0; i < RELOADS; i++) {
        await sleep(500);
        await nginx.setUpstreams(upstreams); // SIGHUP: new workers, old ones keep their tunnels
      }
      await sleep(500);
      totals = await load.finish();
    } finally {
      if (!totals) await load.abort();
      await nginx.stop();
      await Promise.all(replicas.map(stopChild));
    }
    const memory = samplers.map((s) => s.stop());
    assertNothingLost(totals, 'nginx reloads');
    assert.equal(totals.abnormalCloses, 0, 'no tunnel was cut');
    assert.equal(totals.failedUpgrades, 0);
    assert.equal(totals.reconnects, 0, 'no client had to reconnect');
    assert.deepEqual(totals.closeCodes, { 1000: 200 }, 'the only closes are the clients’ own at the end');
    figures.add({
      case: `nginx reload (SIGHUP, config from the chart's Ingress values) ${RELOADS} times, 0.5 s apart, 200 clients through it sending 4 msg/s each`,
      inputs: RELOADS,
      offender: `${nginx.reloads.length} reloads completed`,
      others: `200 clients: ${totals.echoed}/${totals.sent} echoed, 0 abnormal closes, 0 failed upgrades, 0 reconnects`,
      memory: { startMiB: Math.max(...memory.map((m) => m.startMiB)), peakMiB: Math.max(...memory.map((m) => m.peakMiB)) },
      lost: totals.lost,
    });
  });

  it('restarts one replica 5 times with SIGKILL while clients send through nginx and straight to it: nothing lost', async () => {
    const stable = await spawnService({ POD_NAME: 'stable' });
    let flapping = await spawnService({ POD_NAME: 'flapping' });
    const flappingPort = flapping.port;
    const upstreams = [stable, flapping].map((r) => ({ name: r.name, port: r.port }));
    const nginx = await NginxProxy.start(proxySettingsFromChart(), upstreams, mkdtempSync(join(tmpdir(), 'ws-echo-flap-')));
    const load = new Load({ url: `ws://127.0.0.1:${nginx.port}/echo`, clients: 100, rate: 4 });
    // Two reference clients connected straight to the flapping replica's port, as to a pod IP.
    const direct = Array.from({ length: 2 }, (_, i) => new EchoClient({ urls: [wsUrl(flappingPort)], id: `direct${i}`, maxBackoffMs: 500 }));
    const directTimer = setInterval(() => direct.forEach((c) => c.send()), 25);
    const KILLS = 5;
    let totals: LoadTotals | undefined;
    let directLost = -1;
    try {
      await load.open();
      await Promise.all(direct.map((c) => once(c.start(), 'open')));
      load.startSending();
      for (let i = 0; i < KILLS; i++) {
        flapping.child.kill('SIGKILL');
        await flapping.exited;
        await sleep(300); // the container is down
        flapping = await spawnService({ POD_NAME: 'flapping', PORT: String(flappingPort) }); // restarted in place: same address
        await flapping.waitReady();
        await sleep(600); // up again: the direct clients reconnect before the next kill
      }
      await sleep(1000);
      clearInterval(directTimer);
      totals = await load.finish(10_000);
      directLost = (await Promise.all(direct.map((c) => c.stop(10_000)))).reduce((a, b) => a + b, 0);
    } finally {
      clearInterval(directTimer);
      if (!totals) await load.abort();
      if (directLost < 0) await Promise.all(direct.map((c) => c.stop(0)));
      await nginx.stop();
      await Promise.all([stable, flapping].map(stopChild));
    }
    assertNothingLost(totals, 'through nginx');
    const directSent = direct.reduce((n, c) => n + c.stats.sent, 0);
    const directEchoed = direct.reduce((n, c) => n + c.stats.echoed, 0);
    const directCuts = direct.reduce((n, c) => n + c.stats.abnormalCloses, 0);
    assert.equal(directLost, 0, 'the direct clients lost nothing');
    assert.equal(directEchoed, directSent);
    assert.ok(
      direct.every((c) => c.stats.abnormalCloses >= 1),
      'the kills cut the direct clients',
    );
    figures.add({
      case: `replica restart loop: one of two replicas SIGKILLed and restarted on the same port ${KILLS} times (down 0.3 s, then up until ready + 0.6 s); 100 clients through nginx at 4 msg/s and 2 clients straight to that replica`,
      inputs: KILLS,
      offender: `the flapping replica's clients: 1006, reconnect (through nginx: ${tally(totals.closeCodes)}; direct: ${directCuts} cuts, ${direct.reduce((n, c) => n + c.stats.failedUpgrades, 0)} refused reconnects while it was down)`,
      others: `through nginx: ${totals.echoed}/${totals.sent} echoed, ${totals.resent} resent after a cut; direct: ${directEchoed}/${directSent} echoed`,
      lost: totals.lost + directLost,
    });
  });
});

describe('out of file descriptors', () => {
  const NOFILE = 256;
  it(`keeps serving, counts and logs once the accept failures under RLIMIT_NOFILE=${NOFILE}, and recovers when connections close`, async () => {
    const service = await spawnUnder(['prlimit', `--nofile=${NOFILE}:${NOFILE}`], { HEARTBEAT_INTERVAL_SECONDS: '0', POD_NAME: 'fd-starved' });
    try {
      const run = await watched(service, async () => {
        const opened: WebSocket[] = [];
        const failures: Record<string, number> = {};
        let failed = 0;
        // Open until accepts fail 50 times in a row (or 2 × NOFILE attempts).
        for (let streak = 0, attempts = 0; streak < 50 && attempts < 2 * NOFILE; attempts++) {
          const result = await connect(service.port).catch((err: unknown) => err as Error);
          if (result instanceof Error) {
            failed++;
            streak++;
            const what = (result as NodeJS.ErrnoException).code ?? result.message;
            failures[what] = (failures[what] ?? 0) + 1;
          } else {
            opened.push(result);
            streak = 0;
          }
        }
        const alive = service.child.exitCode === null;
        const counted = await scrape(service.metricsPort, 'websocket_accept_errors_total');
        // Recovery: close 50, and 50 new clients get in.
        await Promise.all(
          opened.splice(0, 50).map(async (ws) => {
            const closed = once(ws, 'close');
            ws.close();
            await closed;
          }),
        );
        await sleep(200);
        const again = await Promise.all(Array.from({ length: 50 }, () => connect(service.port).catch((err: unknown) => err as Error)));
        const reopened = again.filter((r) => !(r instanceof Error)) as WebSocket[];
        for (const ws of [...opened, ...reopened]) ws.terminate();
        return { opened: opened.length + 50, failed, failures, alive, counted, reopened: reopened.length };
      });
      const r = run.result;
      assert.ok(r.alive, 'the process is still running');
      assert.ok(r.failed >= 50 && r.opened > 100, `opened ${r.opened}, failed ${r.failed}`);
      assert.equal(r.counted, r.failed, 'websocket_accept_errors_total counts every failed accept');
      assert.equal(r.reopened, 50, 'after 50 closes, 50 new clients get in');
      assertContained(run, 'out of file descriptors');
      const errors = service.logs.filter((l) => l.level === 'error');
      assert.equal(errors.length, 1, `one error line, not one per failure: ${JSON.stringify(errors)}`);
      assert.match(String(errors[0]?.msg), /file descriptor/);
      figures.add({
        case: `out of file descriptors: the service under prlimit --nofile=${NOFILE}, clients connect until accepts fail 50 times in a row, then 50 close and 50 more connect`,
        inputs: r.opened + r.failed + 50,
        offender: `${r.opened} opened, then ${r.failed} refused (client saw ${tally(r.failures)}); websocket_accept_errors_total ${r.counted}; one error log line; after 50 closes 50/50 new clients got in`,
        others: othersSaw(run.others),
        memory: run.memory,
        lost: run.others.lost,
      });
    } finally {
      await stopChild(service);
    }
  });
});

describe('Kubernetes API faults during a drain', () => {
  it(`finishes the drain within window + close timeout + 1 s and exits 0 with the API ${API_FAULTS.join(', ')}`, async () => {
    const WINDOW = 0.5;
    const TIMEOUT = 1;
    const CLIENTS = 20;
    const outcomes = await Promise.all(
      API_FAULTS.map(async (fault) => {
        const api = await FakeKubeApi.start(fault);
        const { path } = api.kubeconfig();
        const service = await spawnService({
          POD_NAME: 'ws-echo-7d9f-abcde',
          POD_NAMESPACE: 'apps',
          KUBERNETES_INTEGRATION: 'on',
          KUBECONFIG: path,
          DRAIN_WINDOW_SECONDS: String(WINDOW),
          DRAIN_CLOSE_TIMEOUT_SECONDS: String(TIMEOUT),
        });
        const clients = Array.from({ length: CLIENTS }, (_, i) => new EchoClient({ urls: [wsUrl(service.port)], id: `k${i}`, initialBackoffMs: 60_000 }));
        try {
          await Promise.all(clients.map((c) => once(c.start(), 'open')));
          await sleep(300); // the first pod-deletion-cost patch goes out
          const signalledAt = Date.now();
          service.child.kill('SIGTERM');
          const exit = await service.exited;
          const codes: Record<string, number> = {};
          for (const c of clients) for (const [code, n] of Object.entries(c.stats.closeCodes)) codes[code] = (codes[code] ?? 0) + n;
          return {
            fault,
            seconds: (exit.at - signalledAt) / 1000,
            code: exit.code,
            codes,
            requests: api.requests.length,
            warnings: service.logs.filter((l) => l.level === 'warn').length,
          };
        } finally {
          await Promise.all(clients.map((c) => c.stop(0)));
          await stopChild(service);
          api.close();
        }
      }),
    );
    for (const o of outcomes) {
      assert.equal(o.code, 0, `${o.fault}: exit code`);
      assert.ok(o.seconds <= WINDOW + TIMEOUT + 1, `${o.fault}: exited ${o.seconds} s after SIGTERM`);
      assert.deepEqual(o.codes, { 1012: CLIENTS }, `${o.fault}: every client got 1012`);
      if (o.fault !== 'slow') assert.ok(o.warnings >= 1, `${o.fault}: the failure is logged`);
    }
    figures.add({
      case: `Kubernetes API faults during a real SIGTERM drain (window ${WINDOW} s, close timeout ${TIMEOUT} s, ${CLIENTS} clients): ${API_FAULTS.map((f) => `${f}: ${FAULT_DESCRIPTIONS[f]}`).join('; ')}`,
      inputs: API_FAULTS.length,
      offender: `exit 0 after ${outcomes.map((o) => `${o.fault} ${o.seconds.toFixed(2)} s`).join(', ')} (bound ${WINDOW + TIMEOUT + 1} s)`,
      others: `${CLIENTS} clients per process: all got 1012, none 1006`,
      lost: 0,
    });
  });
});
