// `npm run rollout`: the local proof that a rollout (or scale-down, or a
// killed replica) drops no client. Real replicas behind real nginx, real
// Prometheus, reference clients; writes a JSON report, a Markdown summary and
// plots (connections per replica, and with Prometheus the dashboard's panels)
// into reports/<mode>/.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeReport, type RunReport } from '../app/testkit/cluster/report.js';
import { PROXY_MODES, type ProxyMode } from '../app/testkit/cluster/from-chart.js';
import { APPS, type App } from '../app/testkit/cluster/local-cluster.js';
import { MODES, runScenario, type Mode } from '../app/testkit/cluster/scenario.js';
import { PRESETS, presetArgs } from '../app/testkit/cluster/presets.js';

const HELP = `usage: npm run rollout -- [options]

  --preset NAME          design-load: the chart's design load, 3 replicas × 5,000 clients at one
                         message every 10 s, the chart's drain window and preStop, every replica
                         rolled; report in reports/design-load (other options still override)
  --mode MODE            rollout (default) | scale-down | scale-up | kill | naive
  --proxy MODE           retry (default: ingress-nginx as the chart configures it, or a Gateway
                         with HTTPRoute retry) | no-retry (a Gateway that passes a refused upgrade's
                         503 to the client)
  --app APP              ws-echo (default) | example: what the replicas run; example is the chat
                         app of examples/chat built on the graceful library (ws-echo/graceful)
  --replicas N           replicas before the operation (default 3)
  --clients N            reference clients through nginx (default 600)
  --rate R               messages per second per client (default 1)
  --duration S           run at least S seconds (default 45)
  --window S             DRAIN_WINDOW_SECONDS (default 8; the chart's is 20)
  --close-timeout S      DRAIN_CLOSE_TIMEOUT_SECONDS (default 5)
  --prestop S            preStop sleep before SIGTERM (default 2; the chart's is 5)
  --scale-to N           replicas after scale-down (default replicas - 1) or scale-up (default replicas × 2)
  --rebalance on|off     replicas rebalance after scale-up (default: on for scale-up, off otherwise,
                         so that rollout reports show the rollout alone; the chart turns it on)
  --rebalance-interval S REBALANCE_INTERVAL_SECONDS (default 5; the chart's is 10)
  --rebalance-rate F     REBALANCE_RATE, the fraction shed per interval (default 0.1; the chart's is 0.05)
  --no-prometheus        skip Prometheus, the PromQL checks and the dashboard plot
  --out DIR              report folder (default reports/<mode>)
  --replot FILE          redraw report.md and connections.svg from a report.json, run nothing

naive: replicas exit at once on SIGTERM with no preStop, like the recipe's Go
server behind nginx; the report shows what the drain prevents.`;

const PRESET = /^--preset(?:=(.*))?$/;
const presetAt = process.argv.findIndex((arg) => PRESET.test(arg));
const presetName = presetAt === -1 ? undefined : (PRESET.exec(process.argv[presetAt]!)![1] ?? process.argv[presetAt + 1]);
if (presetAt !== -1 && !PRESETS.includes(presetName as (typeof PRESETS)[number])) {
  console.error(`rollout: --preset must be one of ${PRESETS.join(', ')}, got ${JSON.stringify(presetName)}`);
  process.exit(2);
}
const { values } = parseArgs({
  // A preset's options come first, so any option given on the command line overrides them.
  args: [...(presetName ? presetArgs(presetName as (typeof PRESETS)[number]) : []), ...process.argv.slice(2)],
  options: {
    preset: { type: 'string' },
    mode: { type: 'string', default: 'rollout' },
    app: { type: 'string', default: 'ws-echo' },
    proxy: { type: 'string', default: 'retry' },
    replicas: { type: 'string', default: '3' },
    clients: { type: 'string', default: '600' },
    rate: { type: 'string', default: '1' },
    duration: { type: 'string', default: '45' },
    window: { type: 'string', default: '8' },
    'close-timeout': { type: 'string', default: '5' },
    prestop: { type: 'string', default: '2' },
    'scale-to': { type: 'string' },
    rebalance: { type: 'string' },
    'rebalance-interval': { type: 'string', default: '5' },
    'rebalance-rate': { type: 'string', default: '0.1' },
    'no-prometheus': { type: 'boolean', default: false },
    out: { type: 'string' },
    replot: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}

if (values.replot) {
  const report = JSON.parse(readFileSync(values.replot, 'utf8')) as RunReport;
  const files = await writeReport(report, values.out ?? dirname(values.replot));
  console.log(`redrawn: ${[files.markdown, files.svg, files.dashboard].filter(Boolean).join(', ')}`);
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
const app = values.app as App;
if (!APPS.includes(app) || (app === 'example' && mode === 'naive')) {
  console.error(`rollout: --app must be one of ${APPS.join(', ')} (naive runs ws-echo only), got ${JSON.stringify(values.app)}`);
  process.exit(2);
}
const proxy = values.proxy as ProxyMode;
if (!PROXY_MODES.includes(proxy)) {
  console.error(`rollout: --proxy must be one of ${PROXY_MODES.join(', ')}, got ${JSON.stringify(values.proxy)}`);
  process.exit(2);
}
const replicas = number('replicas', values.replicas, 1);
const rebalancing = (values.rebalance ?? (mode === 'scale-up' ? 'on' : 'off')) === 'on';
if (values.rebalance !== undefined && !['on', 'off'].includes(values.rebalance)) {
  console.error(`rollout: --rebalance must be on or off, got ${JSON.stringify(values.rebalance)}`);
  process.exit(2);
}
const folder = mode === 'scale-up' && !rebalancing ? `${mode}-no-rebalance` : mode;
const out = values.out ?? join('reports', `${app === 'example' ? 'example-' : ''}${folder}${proxy === 'no-retry' ? '-no-retry' : ''}`);
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
  scaleTo: number('scale-to', values['scale-to'] ?? String(mode === 'scale-up' ? replicas * 2 : replicas - 1), 1),
  rebalance: !rebalancing
    ? undefined
    : {
        intervalSeconds: number('rebalance-interval', values['rebalance-interval'], 0.1),
        rate: number('rebalance-rate', values['rebalance-rate'], 0.001),
        tolerance: 0.2,
        cooldownSeconds: 30,
      },
  prometheus: !values['no-prometheus'],
  app,
  proxy,
  progress: process.stdout.isTTY === true,
  progressLineSeconds: 5,
  dir: join(out, 'work'),
  command: `npm run rollout -- ${process.argv.slice(2).join(' ')}`.trim(),
}).catch((err: unknown) => {
  // A run that cannot finish (e.g. the proxy is the bottleneck) says why in one line, not a stack.
  console.error(`${mode}: FAILED — ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
const files = await writeReport(report, out);
rmSync(join(out, 'work'), { recursive: true, force: true });
const t = report.totals;
console.log(
  `${report.mode}: ${report.passed ? 'PASSED' : 'FAILED'} — sent ${t.sent}, echoed ${t.echoed}, lost ${t.lost}, ` +
    `abnormal closes ${t.abnormalCloses}, failed upgrades ${t.failedUpgrades}, reconnect gap p50 ${Math.round(t.reconnectGapMs.p50)} ms / p99 ${Math.round(t.reconnectGapMs.p99)} ms`,
);
for (const failure of report.failures) console.log(`  - ${failure}`);
if (report.imbalance) {
  const settled = report.imbalance.secondsToBelow1_25;
  console.log(
    `imbalance (max / mean) at the end ${report.imbalance.final.toFixed(2)}; under 1.25 ${settled === undefined ? 'never' : `${settled.toFixed(1)} s after the scale-up`}`,
  );
}
console.log(`report: ${files.markdown} (${[files.json, files.svg, files.dashboard].filter(Boolean).join(', ')})`);
process.exit(report.passed || mode === 'naive' ? 0 : 1);
