// Faults of the service process itself: out of file descriptors, and the
// Kubernetes API down, slow or refusing during a drain. (Faults of the proxy
// in front are e2e/nginx-faults.test.ts.)
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WebSocket } from 'ws';
import { EchoClient } from '../../../src/client.js';
import { API_FAULTS, FakeKubeApi, FAULT_DESCRIPTIONS } from '../../../testkit/fake-kube-faults.js';
import { assertContained, Figures, othersSaw, tally, watched } from '../../../testkit/reliability.js';
import { scrape } from '../../../testkit/service.js';
import { connect, wsUrl } from '../../../testkit/websocket.js';
import { ChildService } from '../../../testkit/child-service.js';

const figures = new Figures('faults');
after(() => figures.write());

describe('out of file descriptors', () => {
  const NOFILE = 256;
  it(`keeps serving, counts and logs once the accept failures under RLIMIT_NOFILE=${NOFILE}, and recovers when connections close`, async () => {
    const service = await ChildService.start({
      prefix: ['prlimit', `--nofile=${NOFILE}:${NOFILE}`],
      env: { HEARTBEAT_INTERVAL_SECONDS: '0', POD_NAME: 'fd-starved' },
    });
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
        const alive = service.running;
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
      await service.stop('SIGKILL');
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
        const service = await ChildService.start({
          env: {
            POD_NAME: 'ws-echo-7d9f-abcde',
            POD_NAMESPACE: 'apps',
            KUBERNETES_INTEGRATION: 'on',
            KUBECONFIG: path,
            DRAIN_WINDOW_SECONDS: String(WINDOW),
            DRAIN_CLOSE_TIMEOUT_SECONDS: String(TIMEOUT),
          },
        });
        const clients = Array.from({ length: CLIENTS }, (_, i) => new EchoClient({ urls: [wsUrl(service.port)], id: `k${i}`, initialBackoffMs: 60_000 }));
        try {
          await Promise.all(clients.map((c) => once(c.start(), 'open')));
          await sleep(300); // the first pod-deletion-cost patch goes out
          const signalledAt = Date.now();
          service.signal('SIGTERM');
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
          await service.stop('SIGKILL');
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
