// `npm run rollout`: the local proof that a rollout (or scale-down, or a
// killed replica, or autoscaling under a load profile) drops no client. Real
// replicas behind real nginx, real Prometheus, reference clients; writes a
// JSON report, a Markdown summary and plots (connections per replica, and
// with Prometheus the dashboard's panels) into reports/<mode>/.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeReport, type RunReport } from '../app/testkit/cluster/report.js';
import { PROXY_MODES, type ProxyMode } from '../app/testkit/cluster/from-chart.js';
import { APPS, type App } from '../app/testkit/cluster/local-cluster.js';
import { AUTOSCALERS, type AutoscalerKind } from '../app/testkit/cluster/from-chart.js';
import { MODES, runScenario, type AutoscaleOptions, type Mode } from '../app/testkit/cluster/scenario.js';
import { PRESETS, presetArgs } from '../app/testkit/cluster/presets.js';
import { PROFILE_SHAPES, type ProfileShape } from '../app/testkit/load-profile.js';

const HELP = `usage: npm run rollout -- [options]

  --preset NAME          design-load: the chart's design load, 3 replicas × 5,000 clients at one
                         message every 10 s, the chart's drain window and preStop, every replica
                         rolled; report in reports/design-load (other options still override)
  --mode MODE            rollout (default) | scale-down | scale-up | kill | naive | autoscale
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

autoscale: the chart's autoscaler, rendered by helm and run by a stand-in for the
HPA controller against the real Prometheus, while the clients follow a load
profile; rebalancing is on. --replicas, --clients and --duration do not apply.
  --autoscaler hpa|keda  the chart's HPA (prometheus-adapter) or KEDA ScaledObject (default hpa)
  --target N             autoscaling.targetConnectionsPerPod (default 250; the chart's is 5000)
  --min-replicas N       autoscaling.minReplicas (default: the chart's, 3)
  --max-replicas N       autoscaling.maxReplicas (default: the chart's, 20)
  --scale-down-window S  autoscaling.scaleDown.stabilizationWindowSeconds (default 60; the chart's is 300)
  --scale-up-window S    autoscaling.scaleUp.stabilizationWindowSeconds (default: the chart's, 0)
  --set KEY=VALUE        any other chart value for the render (repeatable)
  --sync-period S        seconds between the autoscaler's syncs (default 15, as kube-controller-manager)
  --profile steps|ramp   load shape (default steps)
  --from N               clients at the start and the end (default 300)
  --peak N               clients at the peak (default 1500)
  --steps N              steps: levels on the way up, the peak included (default 2)
  --hold S               seconds at each level up (default 50)
  --hold-start S         seconds at the first level (default: --hold)
  --hold-down S          seconds at each level down (default 125: the window, then a pod per grace period)
  --ramp S               ramp: seconds from --from to --peak and back (default 60)

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
    autoscaler: { type: 'string', default: 'hpa' },
    target: { type: 'string', default: '250' },
    'min-replicas': { type: 'string' },
    'max-replicas': { type: 'string' },
    'scale-down-window': { type: 'string', default: '60' },
    'scale-up-window': { type: 'string' },
    set: { type: 'string', multiple: true, default: [] },
    'sync-period': { type: 'string', default: '15' },
    profile: { type: 'string', default: 'steps' },
    from: { type: 'string', default: '300' },
    peak: { type: 'string', default: '1500' },
    steps: { type: 'string', default: '2' },
    hold: { type: 'string', default: '50' },
    'hold-start': { type: 'string' },
    'hold-down': { type: 'string', default: '125' },
    ramp: { type: 'string', default: '60' },
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
const rebalancing = (values.rebalance ?? (mode === 'scale-up' || mode === 'autoscale' ? 'on' : 'off')) === 'on';
if (values.rebalance !== undefined && !['on', 'off'].includes(values.rebalance)) {
  console.error(`rollout: --rebalance must be on or off, got ${JSON.stringify(values.rebalance)}`);
  process.exit(2);
}
const autoscale = mode === 'autoscale' ? autoscaleOptions() : undefined;
if (autoscale && values['no-prometheus']) {
  console.error('rollout: --mode autoscale needs Prometheus: the autoscaler reads its metric there');
  process.exit(2);
}
const folder =
  mode === 'scale-up' && !rebalancing ? `${mode}-no-rebalance` : autoscale && autoscale.autoscaler !== 'hpa' ? `${mode}-${autoscale.autoscaler}` : mode;
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
  ...(autoscale ? { autoscale } : {}),
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
for (const step of report.autoscale?.steps ?? []) {
  const s = (value: number | undefined): string => (value === undefined ? '–' : `${value.toFixed(1)} s`);
  console.log(
    `${step.direction} to ${step.clients} clients: ${step.replicasBefore} → ${step.replicasAfter} pods; first decision ${s(step.firstDecisionSeconds)}, endpoints ${s(step.servingSeconds)}${step.settled ? '' : ' (not settled within the hold)'}`,
  );
}
for (const down of report.autoscale?.scaleDowns ?? []) {
  console.log(`scale-down ${down.from} → ${down.to}: moved ${down.moved} clients, fewest possible ${down.fewestPossible}`);
}
if (report.imbalance) {
  const settled = report.imbalance.secondsToBelow1_25;
  console.log(
    `imbalance (max / mean) at the end ${report.imbalance.final.toFixed(2)}; under 1.25 ${settled === undefined ? 'never' : `${settled.toFixed(1)} s after the scale-up`}`,
  );
}
console.log(`report: ${files.markdown} (${[files.json, files.svg, files.dashboard].filter(Boolean).join(', ')})`);
process.exit(report.passed || mode === 'naive' ? 0 : 1);

/** The autoscale mode's options: each one a chart value for the render, or the stand-in's sync period, or the profile. */
function autoscaleOptions(): AutoscaleOptions {
  const autoscaler = values.autoscaler as AutoscalerKind;
  if (!AUTOSCALERS.includes(autoscaler)) {
    console.error(`rollout: --autoscaler must be one of ${AUTOSCALERS.join(', ')}, got ${JSON.stringify(values.autoscaler)}`);
    process.exit(2);
  }
  const shape = values.profile as ProfileShape;
  if (!PROFILE_SHAPES.includes(shape)) {
    console.error(`rollout: --profile must be one of ${PROFILE_SHAPES.join(', ')}, got ${JSON.stringify(values.profile)}`);
    process.exit(2);
  }
  const sets = [
    `autoscaling.targetConnectionsPerPod=${number('target', values.target, 1)}`,
    ...(values['min-replicas'] ? [`autoscaling.minReplicas=${number('min-replicas', values['min-replicas'], 1)}`] : []),
    ...(values['max-replicas'] ? [`autoscaling.maxReplicas=${number('max-replicas', values['max-replicas'], 1)}`] : []),
    `autoscaling.scaleDown.stabilizationWindowSeconds=${number('scale-down-window', values['scale-down-window'], 0)}`,
    ...(values['scale-up-window'] ? [`autoscaling.scaleUp.stabilizationWindowSeconds=${number('scale-up-window', values['scale-up-window'], 0)}`] : []),
    ...values.set,
  ];
  return {
    autoscaler,
    sets,
    syncPeriodSeconds: number('sync-period', values['sync-period'], 0.1),
    profile: {
      shape,
      from: number('from', values.from, 0),
      peak: number('peak', values.peak, 1),
      steps: number('steps', values.steps, 1),
      holdSeconds: number('hold', values.hold, 1),
      ...(values['hold-start'] ? { startSeconds: number('hold-start', values['hold-start'], 1) } : {}),
      holdDownSeconds: number('hold-down', values['hold-down'], 1),
      rampSeconds: number('ramp', values.ramp, 0),
    },
  };
}
