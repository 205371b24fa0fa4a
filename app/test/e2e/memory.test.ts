// The real image under the chart's memory limit, attacked the cheap ways
// (testkit/attackers.ts): clients that never read their echoes, clients that
// hold unfinished fragmented messages, both, and as many hostile connections
// as MAX_CONNECTIONS allows, while 50 bystander reference clients echo
// throughout. The container runs with the chart's default settings and
// limit, as the Deployment runs it (MEMORY_LIMIT_BYTES as the downward API
// passes it); kernel socket buffers are charged to it as cgroup v2 charges
// them (testkit/container-memory.ts). It must never be killed; the bystanders
// must see no close and no long wait; the attackers are refused or cut.
// Figures: reports/reliability/memory.json, docs/RELIABILITY.md.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fragmentHolder, openAttackers, slowReader, tallyAttackers, type Attacker } from '../../testkit/attackers.js';
import { one, render } from '../../testkit/chart/helm.js';
import { ContainerMemorySampler, type MemoryPeaks } from '../../testkit/container-memory.js';
import { waitFor200 } from '../../testkit/http.js';
import type { Load, LoadTotals } from '../../testkit/load.js';
import { ensureImage, inspect, podman, podmanUnavailable, publishedPort, removeContainer, uniqueName } from '../../testkit/podman.js';
import { assertUnharmed, Figures, mib, RSS_BOUND_MIB, startBystanders, tally } from '../../testkit/reliability.js';
import { scrape } from '../../testkit/service.js';
import { needsFetched } from '../../testkit/tools.js';

const LIMIT_BYTES = RSS_BOUND_MIB * 1024 * 1024;
const BYSTANDERS = 50;
/** Each bystander sends a message every this many ms. */
const BYSTANDER_INTERVAL_MS = 200;
/** "No gap longer than a few seconds." */
const SLOWEST_ECHO_BOUND_MS = 3000;
/** How long the attack lasts once every hostile connection was answered: longer than MESSAGE_TIMEOUT_SECONDS. */
const HOLD_MS = 20_000;

const unavailable = podmanUnavailable();
const skip = (unavailable !== undefined && process.env.CI !== 'true' ? unavailable : false) || needsFetched('helm') || false;
const figures = new Figures('memory');
after(() => figures.write());

interface PodSpec {
  containers: { env: { name: string; value?: string }[] }[];
  securityContext: { sysctls?: { name: string; value: string }[] };
}

interface Outcome {
  readonly peaks: MemoryPeaks;
  readonly startRss: number;
  readonly charged: string;
  readonly others: LoadTotals;
  readonly attackers: ReturnType<typeof tallyAttackers>;
  readonly closes: Record<string, number>;
  readonly refusedForMemory: number;
  readonly state: { Status: string; ExitCode: number; OOMKilled: boolean };
}

describe('memory under hostile load: the real image at the chart memory limit (podman)', { skip }, () => {
  let image = '';
  /** podman options for what the chart gives the pod: its container env (literal values, and MEMORY_LIMIT_BYTES as the downward API gives it) and its sysctls. */
  let chartOptions: string[] = [];

  before(
    async () => {
      if (unavailable) throw new Error(`CI=true but podman cannot run: ${unavailable}`);
      image = ensureImage();
      const pod = (one(await render(), 'Deployment') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
      const chartEnv = pod.containers[0]!.env.filter((e) => e.value !== undefined);
      // No API server here: the integration would only log that it cannot reach one.
      const settings = {
        ...Object.fromEntries(chartEnv.map((e) => [e.name, e.value!])),
        KUBERNETES_INTEGRATION: 'off',
        MEMORY_LIMIT_BYTES: String(LIMIT_BYTES),
      };
      const sysctls = pod.securityContext.sysctls ?? [];
      assert.deepEqual(sysctls.map((s) => s.name).sort(), ['net.ipv4.tcp_rmem', 'net.ipv4.tcp_wmem'], 'the chart bounds the kernel socket buffers by default');
      chartOptions = [...Object.entries(settings).flatMap(([k, v]) => ['-e', `${k}=${v}`]), ...sysctls.flatMap((s) => ['--sysctl', `${s.name}=${s.value}`])];
    },
    { timeout: 15 * 60_000 },
  );

  async function attack(what: string, open: (port: number) => Promise<Attacker[]>): Promise<Outcome> {
    const name = uniqueName('ws-echo-memory');
    const attackers: Attacker[] = [];
    let others: Load | undefined;
    let sampler: ContainerMemorySampler | undefined;
    try {
      // The kubelet gives a pod the node's open-files limit; podman's default here is 1024.
      await podman([
        'run',
        '-d',
        '--name',
        name,
        '--memory',
        String(LIMIT_BYTES),
        '--ulimit',
        'nofile=20000:20000',
        '--ulimit',
        'nproc=1000:1000',
        '-p',
        '127.0.0.1::8000',
        '-p',
        '127.0.0.1::9100',
        ...chartOptions,
        image,
      ]);
      const port = await publishedPort(name, 8000);
      const metricsPort = await publishedPort(name, 9100);
      await waitFor200(port, '/readyz', { timeoutMs: 30_000 });
      sampler = new ContainerMemorySampler((await inspect(name)).State.Pid);
      const charged = sampler.chargeSocketBuffers();
      others = await startBystanders(port, BYSTANDERS, BYSTANDER_INTERVAL_MS);
      attackers.push(...(await open(port)));
      await sleep(HOLD_MS);
      const killed = (await inspect(name)).State;
      if (killed.Status !== 'running') {
        const peaks = sampler.stop();
        throw new Error(
          `${what}: the container was killed (exit ${killed.ExitCode}, OOMKilled ${killed.OOMKilled}); ` +
            `peak RSS ${mib(peaks.rssBytes)} MiB, RSS + socket buffers ${mib(peaks.rssPlusSocketBytes)} MiB, limit ${RSS_BOUND_MIB} MiB`,
        );
      }
      const closes = Object.fromEntries(
        await Promise.all(
          ['memory', 'message_timeout', 'slow_reader'].map(
            async (reason) => [reason, await scrape(metricsPort, 'websocket_overload_closes_total', { reason })] as const,
          ),
        ),
      );
      const refusedForMemory = await scrape(metricsPort, 'websocket_upgrades_rejected_total', { reason: 'memory' });
      const totals = await others.finish(10_000);
      others = undefined;
      const peaks = sampler.stop();
      const state = (await inspect(name)).State;
      const outcome = {
        peaks,
        startRss: sampler.start.rssBytes,
        charged,
        others: totals,
        attackers: tallyAttackers(attackers),
        closes,
        refusedForMemory,
        state,
      };
      record(what, attackers.length, outcome);
      return outcome;
    } finally {
      // Whatever failed, nothing may keep the test process alive.
      sampler?.stop();
      await others?.abort();
      for (const attacker of attackers) attacker.destroy();
      await removeContainer(name);
    }
  }

  function record(what: string, inputs: number, o: Outcome): void {
    const a = o.attackers;
    figures.add({
      case: `${what}, against the image at ${RSS_BOUND_MIB} MiB with the chart's defaults`,
      inputs,
      offender:
        `refused ${tally(a.refused)}, closed ${tally(a.closes) || 'none'}, cut without a close frame ${a.cut}, still open ${a.open}; ` +
        `guard: ${tally(o.closes)} closes, ${o.refusedForMemory} upgrades refused for memory`,
      others: `${o.others.clients} bystanders: ${o.others.echoed}/${o.others.sent} echoed, no close, slowest echo ${Math.round(o.others.slowestEchoMs)} ms`,
      memory: { startMiB: mib(o.startRss), peakMiB: mib(o.peaks.rssBytes) },
      lost: o.others.lost,
      notes:
        `peak cgroup usage ${mib(o.peaks.usageBytes)} MiB, peak RSS + kernel socket buffers ${mib(o.peaks.rssPlusSocketBytes)} MiB ` +
        `(socket buffers alone up to ${mib(o.peaks.socketBytes)} MiB; ${o.charged}); container ${o.state.Status}, exit ${o.state.ExitCode}`,
    });
  }

  function assertSurvived(what: string, o: Outcome): void {
    assert.equal(o.state.Status, 'running', `${what}: the container was killed (exit ${o.state.ExitCode}, OOMKilled ${o.state.OOMKilled})`);
    assert.equal(o.state.OOMKilled, false);
    assert.ok(o.peaks.usageBytes < LIMIT_BYTES, `${what}: cgroup usage peaked at ${mib(o.peaks.usageBytes)} MiB`);
    assert.ok(o.peaks.rssPlusSocketBytes < LIMIT_BYTES, `${what}: RSS + socket buffers peaked at ${mib(o.peaks.rssPlusSocketBytes)} MiB`);
    assertUnharmed(o.others, what);
    assert.ok(o.others.slowestEchoMs < SLOWEST_ECHO_BOUND_MS, `${what}: a bystander waited ${Math.round(o.others.slowestEchoMs)} ms for an echo`);
  }

  it('1,500 clients that send 60 KB echo requests and never read: refused or cut, the pod lives', async () => {
    const o = await attack('1,500 slow readers (60 KB messages, never reading)', (port) => openAttackers(1500, () => slowReader(port, 60_000)));
    assertSurvived('slow readers', o);
    assert.ok((o.attackers.refused['503'] ?? 0) > 0, 'past the soft watermark upgrades are refused');
    assert.ok(o.closes.memory! + o.closes.slow_reader! > 0, 'slow readers were cut');
  });

  it('3,000 clients that each hold an unfinished 56 KiB message in 1 KiB fragments, answering pings: refused or closed with 1008', async () => {
    const o = await attack('3,000 fragment holders (56 × 1 KiB, never finished, pongs answered)', (port) =>
      openAttackers(3000, () => fragmentHolder(port, 56, 1024)),
    );
    assertSurvived('fragment holders', o);
    assert.equal(o.attackers.open, 0, 'every holder that got in was closed by the message timeout');
    assert.ok((o.attackers.closes['1008'] ?? 0) > 0);
  });

  it('3,000 fragment holders and then 1,500 slow readers (the attack that killed the pod before the budget)', async () => {
    const o = await attack('3,000 fragment holders, then 1,500 slow readers', async (port) => [
      ...(await openAttackers(3000, () => fragmentHolder(port, 56, 1024))),
      ...(await openAttackers(1500, () => slowReader(port, 60_000))),
    ]);
    assertSurvived('both', o);
  });

  it('MAX_CONNECTIONS (10,000) hostile connections, half holders and half slow readers, interleaved', async () => {
    const o = await attack('10,000 hostile connections: 5,000 fragment holders and 5,000 slow readers, interleaved', (port) => {
      let i = 0;
      return openAttackers(10_000, () => (i++ % 2 === 0 ? fragmentHolder(port, 56, 1024) : slowReader(port, 60_000)));
    });
    assertSurvived('MAX_CONNECTIONS hostile', o);
  });
});
