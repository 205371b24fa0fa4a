// The Node half of k8s/e2e-kind.sh: the script drives kind, helm and kubectl
// and calls this for what needs the reference client or judgement.
//
//   load --url U --clients N --rate R --settle S --out F --ready F
//        reference clients (app/testkit/load.ts) until SIGTERM; touches --ready
//        once all are connected, logs progress, writes their totals to --out
//   check --file F --expect restart|steady --min-reconnects N
//        a load's totals against the promise; one line, exit 1 if broken
//   promql-value                 Prometheus query JSON on stdin → the sum of its samples
//   balance --pods N --min-share F   per-pod connections (Prometheus JSON on stdin) shared out?
//   count-items                  a Kubernetes list JSON on stdin → how many items
//   report --dir D --started ISO --command C --result passed|failed
//        report.json, report.md and connections.svg into D, from its checks.tsv,
//        settings.tsv and load-*.json (the format of `npm run rollout`)
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  balance,
  checkTotals,
  EXPECTATIONS,
  type Expectation,
  kindReport,
  type LoadRecord,
  parseChecks,
  parseSettings,
  promqlSamples,
  promqlValue,
} from '../app/testkit/cluster/kind-run.js';

const [command, ...rest] = process.argv.slice(2);
const { values } = parseArgs({
  args: rest,
  options: {
    url: { type: 'string' },
    clients: { type: 'string' },
    rate: { type: 'string', default: '2' },
    settle: { type: 'string', default: '10' },
    out: { type: 'string' },
    ready: { type: 'string' },
    file: { type: 'string' },
    expect: { type: 'string' },
    'min-reconnects': { type: 'string', default: '0' },
    pods: { type: 'string' },
    'min-share': { type: 'string', default: '0.5' },
    dir: { type: 'string' },
    started: { type: 'string' },
    command: { type: 'string', default: 'k8s/e2e-kind.sh' },
    result: { type: 'string' },
  },
});

function required(name: keyof typeof values): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') usage(`${command}: --${name} is required`);
  return value;
}

function number(name: keyof typeof values, min: number): number {
  const parsed = Number(required(name));
  if (!Number.isFinite(parsed) || parsed < min) usage(`${command}: --${name} must be a number ≥ ${min}, got ${JSON.stringify(values[name])}`);
  return parsed;
}

function usage(message: string): never {
  process.stderr.write(`e2e-kind.js: ${message}\nsubcommands: load, check, promql-value, balance, count-items, report (see scripts/e2e-kind.ts)\n`);
  process.exit(2);
}

const stdin = (): string => readFileSync(0, 'utf8');

switch (command) {
  case 'load':
    await runLoad();
    break;
  case 'check': {
    const expect = required('expect') as Expectation;
    if (!EXPECTATIONS.includes(expect)) usage(`check: --expect must be one of ${EXPECTATIONS.join(', ')}`);
    const record = JSON.parse(readFileSync(required('file'), 'utf8')) as LoadRecord;
    const verdict = checkTotals(record.totals, expect, number('min-reconnects', 0));
    console.log(verdict.ok ? verdict.summary : `${verdict.problems.join('; ')} — ${verdict.summary}`);
    process.exit(verdict.ok ? 0 : 1);
    break;
  }
  case 'promql-value':
    console.log(String(Math.round(promqlValue(stdin()))));
    break;
  case 'balance': {
    const perPod = Object.fromEntries(promqlSamples(stdin()).map((s) => [s.labels.pod ?? '?', s.value]));
    const verdict = balance(perPod, number('pods', 1), number('min-share', 0));
    console.log(verdict.text);
    process.exit(verdict.ok ? 0 : 1);
    break;
  }
  case 'count-items': {
    const list = JSON.parse(stdin()) as { items?: unknown[] };
    console.log(String(list.items?.length ?? 0));
    break;
  }
  case 'report':
    await report();
    break;
  default:
    usage(`unknown subcommand ${JSON.stringify(command)}`);
}

// The load and the report are imported where used: the script calls the
// small subcommands every poll, and Vega alone takes a second to load.
async function runLoad(): Promise<void> {
  const { Load } = await import('../app/testkit/load.js');
  const url = required('url');
  const clients = number('clients', 1);
  const rate = number('rate', 0);
  const settleMs = number('settle', 0) * 1000;
  const out = required('out');
  const ready = required('ready');
  const load = new Load({ url, clients, rate, openPerTick: 10 });
  const startedAt = Date.now();
  const samples: LoadRecord['samples'] = [];
  const sampler = setInterval(() => {
    const connections: Record<string, number> = {};
    for (const client of load.clients) if (client.connected) connections[client.servedBy ?? '?'] = (connections[client.servedBy ?? '?'] ?? 0) + 1;
    samples.push({ at: Date.now(), connections });
    if (samples.length % 5 === 0) {
      const t = load.totals();
      console.log(
        `${new Date().toISOString()} connected ${Object.values(connections).reduce((a, b) => a + b, 0)}/${clients} sent ${t.sent} echoed ${t.echoed} waiting ${t.lost} reconnects ${t.reconnects}`,
      );
    }
  }, 1000);
  // Registered before the clients open: a stop during the start still reports.
  process.once('SIGTERM', () => {
    clearInterval(sampler);
    void load.finish(settleMs).then((totals) => {
      const record: LoadRecord = {
        url,
        clients,
        ratePerClient: rate,
        startedAt,
        endedAt: Date.now(),
        totals,
        reconnectGapsMs: load.clients.flatMap((c) => c.stats.reconnectGapsMs),
        samples,
      };
      writeFileSync(out, `${JSON.stringify(record)}\n`);
      console.log(`stopped: sent ${totals.sent} echoed ${totals.echoed} lost ${totals.lost}`);
      process.exit(0);
    });
  });
  await load.open();
  load.startSending();
  writeFileSync(ready, '');
  console.log(`${new Date().toISOString()} ${clients} clients connected to ${url}`);
}

async function report(): Promise<void> {
  const { writeReport } = await import('../app/testkit/cluster/report.js');
  const dir = required('dir');
  const result = required('result');
  if (result !== 'passed' && result !== 'failed') usage('report: --result must be passed or failed');
  const read = (file: string): string => {
    try {
      return readFileSync(join(dir, file), 'utf8');
    } catch {
      return '';
    }
  };
  const loads = new Map<string, LoadRecord>();
  for (const file of readdirSync(dir)) {
    const step = /^load-(.+)\.json$/.exec(file)?.[1];
    if (step) loads.set(step, JSON.parse(read(file)) as LoadRecord);
  }
  const run = kindReport({
    command: required('command'),
    startedAt: required('started'),
    exitedCleanly: result === 'passed',
    settings: parseSettings(read('settings.tsv')),
    checks: parseChecks(read('checks.tsv')),
    loads,
  });
  const files = await writeReport(run, dir);
  process.stderr.write(`e2e-kind: ${run.passed ? 'PASSED' : 'FAILED'}; report: ${files.markdown} (${files.json}, ${files.svg})\n`);
}
