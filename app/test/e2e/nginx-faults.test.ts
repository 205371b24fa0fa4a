// Faults around the service behind real nginx: reloads under load, and a
// replica killed and restarted again and again. (A single SIGKILL under load
// is rollout.test.ts, mode kill; the process's own faults are in
// integration/reliability/faults.test.ts.)
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EchoClient } from '../../src/client.js';
import { proxySettingsFromChart } from '../../testkit/cluster/from-chart.js';
import { NginxProxy } from '../../testkit/cluster/nginx.js';
import { Load, type LoadTotals } from '../../testkit/load.js';
import { Figures, MemorySampler, tally } from '../../testkit/reliability.js';
import { wsUrl } from '../../testkit/websocket.js';
import { ChildService } from '../../testkit/child-service.js';
import { needs } from '../../testkit/tools.js';

const figures = new Figures('nginx-faults');
after(() => figures.write());

function assertNothingLost(totals: LoadTotals, what: string): void {
  assert.equal(totals.lost, 0, `${what}: ${totals.lost} messages lost`);
  assert.equal(totals.echoed, totals.sent, `${what}: ${totals.echoed} of ${totals.sent} echoed`);
  assert.equal(totals.duplicated + totals.corrupted + totals.outOfOrder, 0, `${what}: duplicated, corrupted or out-of-order echoes`);
}

describe('nginx in front', { skip: needs('nginx') }, () => {
  it('reloads nginx 6 times while 200 clients send: no abnormal close, no failed upgrade, nothing lost', async () => {
    const replicas = await Promise.all([ChildService.start({ env: { POD_NAME: 'reload-a' } }), ChildService.start({ env: { POD_NAME: 'reload-b' } })]);
    const upstreams = replicas.map((r) => ({ name: r.name, port: r.port }));
    const nginx = await NginxProxy.start(proxySettingsFromChart(), upstreams, mkdtempSync(join(tmpdir(), 'ws-echo-reload-')));
    const samplers = replicas.map((r) => new MemorySampler(r.pid));
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
      await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
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
    const stable = await ChildService.start({ env: { POD_NAME: 'stable' } });
    let flapping = await ChildService.start({ env: { POD_NAME: 'flapping' } });
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
        flapping.signal('SIGKILL');
        await flapping.exited;
        await sleep(300); // the container is down
        flapping = await ChildService.start({ env: { POD_NAME: 'flapping', PORT: String(flappingPort) } }); // restarted in place: same address
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
      await Promise.all([stable, flapping].map((r) => r.stop('SIGKILL')));
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
