// docs/RUNBOOK.md and the alerts: every alert of the chart's PrometheusRule
// carries a runbook_url that points to its own section of the runbook,
// which says what it means, how to confirm it (kubectl and PromQL), what to
// do and when to escalate; the symptom sections are there; and every PromQL
// of the runbook parses (promtool) and reads only metrics the service
// exports, so a renamed metric cannot leave the runbook stale.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { one, render } from '../../../testkit/chart/helm.js';
import type { Manifest } from '../../../testkit/chart/k8s-schemas.js';
import { readYaml, scenarioValues, valueAt } from '../../../testkit/chart/values.js';
import { exportedMetrics } from '../../../testkit/metrics-text.js';
import { chartDir, repoRoot } from '../../../testkit/paths.js';
import { needs, needsFetched, requireTool } from '../../../testkit/tools.js';

const skip = needsFetched('helm');
const RUNBOOK = readFileSync(join(repoRoot, 'docs', 'RUNBOOK.md'), 'utf8');
const ALERT_PARTS = ['What it means', 'How to confirm', 'What to do', 'When to escalate'];
const SYMPTOMS = ['A rollout is stuck', 'Clients report disconnects', 'The HPA does not scale', 'One pod has all the connections'];

interface Section {
  readonly heading: string;
  readonly anchor: string;
  readonly body: string;
}

/**
 * The level-2 sections of a Markdown text, with the anchor GitHub gives
 * each heading: lower case, punctuation other than - and _ dropped, spaces
 * as -, and -1, -2 … after a repeated one (counted over every heading).
 */
function sections(markdown: string): Section[] {
  const seen = new Map<string, number>();
  const found: Section[] = [];
  const lines = markdown.split('\n');
  let fenced = false;
  lines.forEach((line, i) => {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = fenced ? null : /^(#{1,6}) (.+)$/.exec(line);
    if (!heading) return;
    const base = heading[2]!.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    if (heading[1] !== '##') return;
    const next = lines.findIndex((l, j) => j > i && /^## /.test(l));
    found.push({ heading: heading[2]!, anchor: n === 0 ? base : `${base}-${n}`, body: lines.slice(i + 1, next < 0 ? undefined : next).join('\n') });
  });
  return found;
}

const bySection = new Map(sections(RUNBOOK).map((s) => [s.heading, s]));
const promqlBlocks = [...RUNBOOK.matchAll(/```promql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());

describe('docs/RUNBOOK.md and the alerts', { skip }, () => {
  let alerts: { alert: string; annotations: Record<string, string> }[] = [];
  let rule: Manifest;
  before(async () => {
    if (skip) return;
    rule = one(await render({ scenario: 'monitoring' }), 'PrometheusRule');
    alerts = (rule.spec as { groups: { rules: { alert: string; annotations: Record<string, string> }[] }[] }).groups.flatMap((g) => g.rules);
  });

  it("links every alert to its own section in the repository's runbook (Chart.yaml home)", () => {
    const home = readYaml<{ home: string }>(join(chartDir, 'Chart.yaml')).home;
    assert.match(home, /^https:\/\/github\.com\/[^/]+\/[^/]+$/);
    assert.equal(alerts.length, 8);
    for (const { alert, annotations } of alerts) {
      const section = bySection.get(alert);
      assert.ok(section, `docs/RUNBOOK.md has no section "## ${alert}"`);
      assert.equal(annotations.runbook_url, `${home}/blob/main/docs/RUNBOOK.md#${section.anchor}`, alert);
    }
  });

  it('says for every alert what it means, how to confirm it with kubectl and PromQL, what to do and when to escalate', () => {
    for (const { alert } of alerts) {
      const body = bySection.get(alert)!.body;
      const parts = [...body.matchAll(/^### (.+)$/gm)].map((m) => m[1]);
      assert.deepEqual(parts, ALERT_PARTS, alert);
      const confirm = body.slice(body.indexOf('### How to confirm'), body.indexOf('### What to do'));
      assert.match(confirm, /```promql\n/, `${alert}: PromQL to confirm it`);
      assert.match(confirm, /^kubectl /m, `${alert}: kubectl to confirm it`);
    }
    const documented = [...bySection.keys()].filter((h) => h.startsWith('WsEcho'));
    assert.deepEqual(documented.sort(), alerts.map((a) => a.alert).sort(), 'a section for an alert the chart does not have');
  });

  it('has the symptom sections: symptom, checks, fix', () => {
    for (const symptom of SYMPTOMS) {
      const section = bySection.get(symptom);
      assert.ok(section, `docs/RUNBOOK.md has no section "## ${symptom}"`);
      assert.deepEqual([...section.body.matchAll(/^### (.+)$/gm)].map((m) => m[1]), ['Symptom', 'Checks', 'Fix'], symptom);
    }
  });

  it('links within the runbook only to sections that exist', () => {
    const anchors = new Set(sections(RUNBOOK).map((s) => s.anchor));
    for (const [, anchor] of RUNBOOK.matchAll(/\]\(#([^)]+)\)/g)) assert.ok(anchors.has(anchor!), `#${anchor} is not a section`);
  });

  it('takes metrics.prometheusRule.runbookBaseUrl where the runbook is served elsewhere, and refuses one with a fragment', async () => {
    const base = valueAt(scenarioValues('operations'), 'metrics.prometheusRule.runbookBaseUrl') as string;
    const custom = one(await render({ scenario: 'operations' }), 'PrometheusRule');
    for (const r of (custom.spec as { groups: { rules: { alert: string; annotations: Record<string, string> }[] }[] }).groups.flatMap((g) => g.rules)) {
      assert.equal(r.annotations.runbook_url, `${base}#${r.alert.toLowerCase()}`);
    }
    await assert.rejects(render({ set: ['metrics.prometheusRule.enabled=true', 'metrics.prometheusRule.runbookBaseUrl=https://wiki.example.com/runbook#top'] }), /\/metrics\/prometheusRule\/runbookBaseUrl/);
  });
});

describe('the PromQL of docs/RUNBOOK.md', () => {
  it('reads only metrics the service exports, scoped to the example release', async () => {
    const exported = await exportedMetrics();
    assert.ok(promqlBlocks.length >= 12, `only ${promqlBlocks.length} PromQL blocks`);
    for (const query of promqlBlocks) {
      const names = query.match(/\bwebsocket_[a-z0-9_]+/g) ?? [];
      assert.ok(names.length > 0, query);
      for (const name of names) assert.ok(exported.has(name), `${name} is not exported by app/src/metrics.ts: ${query}`);
      for (const selector of query.match(/\{[^}]*\}/g) ?? []) assert.match(selector, /^\{namespace="realtime",pod=~"echo-ws-echo-\.\*"/, query);
    }
  });

  it('parses with promtool', { skip: needs('promtool') }, () => {
    const rules = promqlBlocks.map((expr, i) => ({ record: `runbook:query_${i}`, expr }));
    const dir = mkdtempSync(join(tmpdir(), 'ws-echo-runbook-'));
    writeFileSync(join(dir, 'runbook.yaml'), JSON.stringify({ groups: [{ name: 'runbook', rules }] }));
    const check = spawnSync(requireTool('promtool'), ['check', 'rules', join(dir, 'runbook.yaml')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });
});
