// What k8s/e2e-kind.sh asserts on its clients and reads from Prometheus:
// app/testkit/cluster/kind-run.ts on hand-made totals and answers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { balance, checkTotals, kindReport, type LoadRecord, mergeTotals, parseChecks, promqlValue } from '../../testkit/cluster/kind-run.js';
import { summary } from '../../testkit/cluster/report.js';
import type { LoadTotals } from '../../testkit/load.js';

const clean: LoadTotals = {
  clients: 4,
  sent: 100,
  echoed: 100,
  lost: 0,
  resent: 3,
  duplicated: 0,
  corrupted: 0,
  outOfOrder: 0,
  abnormalCloses: 0,
  failedUpgrades: 0,
  reconnects: 5,
  closeCodes: { '1000': 4, '1012': 4, '1013': 1 },
  reconnectGapMs: { p50: 40, p99: 90, max: 95, count: 5 },
  slowestEchoMs: 120,
};

describe('kind run checks', () => {
  it('passes a rollout whose clients were closed with 1012 or 1013 only and all reconnected', () => {
    const verdict = checkTotals(clean, 'restart', 4);
    assert.deepEqual(verdict.problems, []);
    assert.match(verdict.summary, /reconnects 5 \(≥ 4\), closes 1000×4 1012×4 1013×1, reconnect gap p50 40 ms \/ p99 90 ms \/ max 95 ms/);
  });

  it('names every broken promise', () => {
    const broken = {
      ...clean,
      echoed: 97,
      lost: 2,
      corrupted: 1,
      abnormalCloses: 1,
      failedUpgrades: 2,
      reconnects: 3,
      closeCodes: { '1000': 4, '1006': 1, '1012': 2 },
    };
    assert.deepEqual(checkTotals(broken, 'restart', 4).problems, [
      '2 messages lost',
      'sent 100 but echoed 97 and lost 2',
      '1 corrupted echoes',
      '1 abnormal closes (1006)',
      '2 failed upgrades seen by clients',
      'closes other than 1000/1012/1013: 1006×1',
      '3 reconnects, fewer than the 4 expected',
    ]);
  });

  it('steady: a 1012 or a reconnect the rebalancer did not ask for is a cut', () => {
    assert.deepEqual(checkTotals({ ...clean, reconnects: 1, closeCodes: { '1000': 4, '1013': 1 } }, 'steady', 0).problems, []);
    assert.deepEqual(checkTotals({ ...clean, reconnects: 2, closeCodes: { '1000': 4, '1013': 1 } }, 'steady', 0).problems, [
      '2 reconnects for 1 rebalancer closes (1013): connections were cut',
    ]);
    assert.deepEqual(checkTotals({ ...clean, reconnects: 1, closeCodes: { '1000': 4, '1012': 1 } }, 'steady', 0).problems, [
      'closes other than 1000/1013: 1012×1',
      '1 reconnects for 0 rebalancer closes (1013): connections were cut',
    ]);
    assert.deepEqual(checkTotals({ ...clean, sent: 0, echoed: 0, reconnects: 0, closeCodes: { '1000': 4 } }, 'steady', 0).problems, ['no message was sent']);
  });

  it('reads Prometheus answers: a sum, 0 for no series, an error as an error', () => {
    const vector = (values: number[]): string =>
      JSON.stringify({
        status: 'success',
        data: { resultType: 'vector', result: values.map((v, i) => ({ metric: { pod: `p${i}` }, value: [1, String(v)] })) },
      });
    assert.equal(promqlValue(vector([2, 3.5])), 5.5);
    assert.equal(promqlValue(vector([])), 0);
    assert.equal(promqlValue(JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [1, '7'] } })), 7);
    assert.throws(() => promqlValue(JSON.stringify({ status: 'error', error: 'parse error: unexpected }' })), /parse error: unexpected }/);
    assert.throws(
      () => promqlValue(JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } })),
      /expected an instant vector, got matrix/,
    );
  });

  it('calls pods balanced when there are enough of them and none has less than the share of the mean', () => {
    assert.equal(balance({ 'echo-ws-echo-abc-1': 10, 'echo-ws-echo-abc-2': 6, 'echo-ws-echo-abc-3': 8 }, 3, 0.5).ok, true);
    assert.equal(balance({ 'echo-ws-echo-abc-1': 20, 'echo-ws-echo-abc-2': 3, 'echo-ws-echo-abc-3': 1 }, 3, 0.5).ok, false);
    assert.equal(balance({ 'echo-ws-echo-abc-1': 8, 'echo-ws-echo-abc-2': 8 }, 3, 0.5).ok, false, 'too few pods');
    assert.equal(balance({}, 1, 0.5).ok, false);
    assert.equal(balance({ 'echo-ws-echo-abc-1': 4, 'echo-ws-echo-abc-2': 2 }, 2, 0.5).text, 'abc-1=4, abc-2=2 (mean 3.0)');
  });

  it('merges loads exactly and builds a report that fails on any FAILED check or an unclean exit', () => {
    const record = (startedAt: number, totals: LoadTotals, gaps: number[], replica: string): LoadRecord => ({
      url: 'ws://localhost:8080/echo',
      clients: totals.clients,
      ratePerClient: 2,
      startedAt,
      endedAt: startedAt + 5000,
      totals,
      reconnectGapsMs: gaps,
      samples: [{ at: startedAt + 1000, connections: { [replica]: totals.clients } }],
    });
    const started = Date.parse('2026-11-30T10:00:00Z');
    const loads = new Map([
      ['rollout', record(started + 10_000, clean, [10, 20, 30, 40, 95], 'echo-ws-echo-a-1')],
      ['drain', record(started + 60_000, { ...clean, closeCodes: { '1000': 4 }, reconnects: 0 }, [], 'echo-ws-echo-b-2')],
    ]);
    const totals = mergeTotals([...loads.values()]);
    assert.equal(totals.sent, 200);
    assert.deepEqual(totals.closeCodes, { '1000': 8, '1012': 4, '1013': 1 });
    assert.deepEqual(totals.reconnectGapMs, { p50: 30, p99: 95, max: 95, count: 5 });
    const checks = parseChecks('preflight\tpassed\tdocker 29\nrollout\tpassed\tclients: a | b\n');
    const passed = kindReport({
      command: 'k8s/e2e-kind.sh',
      startedAt: '2026-11-30T10:00:00Z',
      exitedCleanly: true,
      settings: {},
      checks,
      loads,
      now: started + 90_000,
    });
    assert.equal(passed.passed, true);
    assert.equal(passed.durationSeconds, 90);
    assert.deepEqual(
      passed.connectionsPerReplica.map((s) => s.t),
      [11_000, 61_000],
    );
    assert.deepEqual(passed.replicas, { initial: ['echo-ws-echo-a-1'], final: ['echo-ws-echo-b-2'], allReplaced: true, exitCodes: {} });
    const markdown = summary(passed, 'connections.svg');
    assert.match(markdown, /^# ws-echo on kind: PASSED/);
    assert.match(markdown, /\| rollout \| passed \| clients: a \\\| b \|/);
    const failed = kindReport({
      command: 'x',
      startedAt: '2026-11-30T10:00:00Z',
      exitedCleanly: false,
      settings: {},
      checks: parseChecks('chart\tFAILED\thelm test failed\n'),
      loads: new Map(),
    });
    assert.deepEqual(failed.failures, ['chart: helm test failed']);
    const stopped = kindReport({ command: 'x', startedAt: '2026-11-30T10:00:00Z', exitedCleanly: false, settings: {}, checks, loads: new Map() });
    assert.equal(stopped.passed, false);
    assert.match(stopped.failures[0]!, /stopped before its last step without a FAILED check/);
  });
});
