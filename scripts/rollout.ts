// `npm run rollout`: the local proof that a rollout (or scale-down, or a
// killed replica) drops no client. Real replicas behind real nginx, real
// Prometheus, reference clients; writes a JSON report, a Markdown summary and
// a plot into reports/<mode>/.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeReport } from './cluster/report.js';
import { MODES, runScenario, type Mode } from './cluster/run.js';

const HELP = `usage: npm run rollout -- [options]

  --mode MODE            rollout (default) | scale-down | kill | naive
  --replicas N           replicas before the operation (default 3)
  --clients N            reference clients through nginx (default 600)
  --rate R               messages per second per client (default 1)
  --duration S           run at least S seconds (default 45)
  --window S             DRAIN_WINDOW_SECONDS (default 8; the chart's is 20)
  --close-timeout S      DRAIN_CLOSE_TIMEOUT_SECONDS (default 5)
  --prestop S            preStop sleep before SIGTERM (default 2; the chart's is 5)
  --scale-to N           replicas left by scale-down (default replicas - 1)
  --no-prometheus        skip Prometheus and the PromQL checks
  --out DIR              report folder (default reports/<mode>)

naive: replicas exit at once on SIGTERM with no preStop, like the original Go
server behind nginx; the report shows what the drain prevents.`;

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'rollout' },
    replicas: { type: 'string', default: '3' },
    clients: { type: 'string', default: '600' },
    rate: { type: 'string', default: '1' },
    duration: { type: 'string', default: '45' },
    window: { type: 'string', default: '8' },
    'close-timeout': { type: 'string', default: '5' },
    prestop: { type: 'string', default: '2' },
    'scale-to': { type: 'string' },
    'no-prometheus': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}

function number(name: string, value: string, min: number): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < min) {
    console.error(`rollout: --${name} must be a number ≥ ${min}, got ${JSON.stringify(value)}\n\n${HELP}`);
    process.exit(2);
  }
  return parsed;
}

const mode = values.mode as Mode;
if (!MODES.includes(mode)) {
  console.error(`rollout: --mode must be one of ${MODES.join(', ')}, got ${JSON.stringify(values.mode)}`);
  process.exit(2);
}
const replicas = number('replicas', values.replicas, 1);
const out = values.out ?? join('reports', mode);
rmSync(join(out, 'work'), { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const report = await runScenario({
  mode,
  replicas,
  clients: number('clients', values.clients, 1),
  rate: number('rate', values.rate, 0),
  durationSeconds: number('duration', values.duration, 1),
  drain: {
    windowSeconds: number('window', values.window, 0),
    closeTimeoutSeconds: number('close-timeout', values['close-timeout'], 0.1),
    preStopSeconds: number('prestop', values.prestop, 0),
  },
  scaleTo: number('scale-to', values['scale-to'] ?? String(replicas - 1), 1),
  prometheus: !values['no-prometheus'],
  progress: process.stdout.isTTY === true,
  dir: join(out, 'work'),
  command: `npm run rollout -- ${process.argv.slice(2).join(' ')}`.trim(),
});
const files = await writeReport(report, out);
rmSync(join(out, 'work'), { recursive: true, force: true });
const t = report.totals;
console.log(
  `${report.mode}: ${report.passed ? 'PASSED' : 'FAILED'} — sent ${t.sent}, echoed ${t.echoed}, lost ${t.lost}, ` +
    `abnormal closes ${t.abnormalCloses}, failed upgrades ${t.failedUpgrades}, reconnect gap p50 ${Math.round(t.reconnectGapMs.p50)} ms / p99 ${Math.round(t.reconnectGapMs.p99)} ms`,
);
for (const failure of report.failures) console.log(`  - ${failure}`);
console.log(`report: ${files.markdown} (${files.json}, ${files.svg})`);
process.exit(report.passed || mode === 'naive' ? 0 : 1);
