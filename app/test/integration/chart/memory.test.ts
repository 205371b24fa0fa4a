// The chart and the service agree on the memory budget: for each set of
// values, helm (both majors) refuses to render exactly when the service would
// refuse to start with what the chart renders (MEMORY_LIMIT_BYTES as the
// downward API passes resources.limits.memory), including at the edge of the
// smallest limit that works. Memory quantities in every form a limit may
// take, and the pod env the budget needs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../src/config.js';
import { connectionAllowanceBytes, memoryBudget, planMemory, reserveBytes, BUDGET_FRACTION } from '../../../src/memory-budget.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHART_API_RESOURCES } from '../../../testkit/chart/api-resources.js';
import { helm, HELM_MAJORS, NAMESPACE, one, pool, RELEASE, render } from '../../../testkit/chart/helm.js';
import { FakeApiServer } from '../../../testkit/fake-apiserver.js';
import { chartDir } from '../../../testkit/paths.js';
import type { Manifest } from '../../../testkit/chart/k8s-schemas.js';
import { needsFetched } from '../../../testkit/tools.js';

const skip = needsFetched('helm');
const MIB = 1024 * 1024;

interface Container {
  env?: { name: string; value?: string; valueFrom?: { resourceFieldRef?: { resource: string } } }[];
}
const containerOf = (docs: Manifest[]): Container =>
  (one(docs, 'Deployment').spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!;

/** What the chart renders for `set`, or helm's error. */
async function outcome(set: string[], major: 4 | 3): Promise<{ env: Record<string, string>; limitFromDownwardApi: boolean } | { error: string }> {
  try {
    const container = containerOf(await render({ set, major }));
    const env: Record<string, string> = {};
    for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    const limitFromDownwardApi = container.env?.some((e) => e.name === 'MEMORY_LIMIT_BYTES' && e.valueFrom?.resourceFieldRef?.resource === 'limits.memory') ?? false;
    return { env, limitFromDownwardApi };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

// The smallest limit the defaults work with: the reserve plus the allowance over the fraction.
const DEFAULTS = { maxConnections: 10_000, maxPayloadBytes: 64 * 1024, backpressureBytes: MIB };
const EDGE = reserveBytes(DEFAULTS.maxConnections) + Math.ceil(connectionAllowanceBytes(DEFAULTS.maxPayloadBytes, DEFAULTS.backpressureBytes) / BUDGET_FRACTION);

interface Case {
  readonly what: string;
  readonly set: string[];
  /** resources.limits.memory in bytes, as the downward API would pass it (undefined: no limit). */
  readonly limitBytes: number | undefined;
}

const CASES: Case[] = [
  { what: 'the defaults (512Mi)', set: [], limitBytes: 512 * MIB },
  { what: '128Mi with 10,000 connections', set: ['resources.limits.memory=128Mi'], limitBytes: 128 * MIB },
  { what: '128Mi with 1,000 connections', set: ['resources.limits.memory=128Mi', 'config.maxConnections=1000'], limitBytes: 128 * MIB },
  { what: 'one byte under the smallest limit that works', set: [`resources.limits.memory=${EDGE - 1}`], limitBytes: EDGE - 1 },
  { what: 'the smallest limit that works', set: [`resources.limits.memory=${EDGE + 1}`], limitBytes: EDGE + 1 },
  { what: '0.5Gi', set: ['resources.limits.memory=0.5Gi'], limitBytes: 512 * MIB },
  { what: '600M', set: ['resources.limits.memory=600M'], limitBytes: 600_000_000 },
  { what: '1e9', set: ['resources.limits.memory=1e9'], limitBytes: 1e9 },
  { what: 'a budget set within the limit', set: ['config.memoryBudgetBytes=100000000'], limitBytes: 512 * MIB },
  { what: 'a budget set beyond the limit', set: ['config.memoryBudgetBytes=400000000'], limitBytes: 512 * MIB },
  { what: 'a budget smaller than one connection', set: ['config.memoryBudgetBytes=1000000'], limitBytes: 512 * MIB },
  { what: 'the budget off', set: ['config.memoryBudgetBytes=0', 'resources.limits.memory=128Mi'], limitBytes: 128 * MIB },
  { what: 'no limit', set: ['resources.limits=null'], limitBytes: undefined },
  { what: 'no limit, a budget set', set: ['resources.limits=null', 'config.memoryBudgetBytes=100000000'], limitBytes: undefined },
];

describe('the memory budget in the chart', { skip }, () => {
  it('helm refuses exactly the values the service would refuse, with both Helm majors', async () => {
    const disagreements: string[] = [];
    await pool(
      CASES.flatMap((c) => HELM_MAJORS.map((major) => ({ c, major }))),
      3,
      async ({ c, major }) => {
        const rendered = await outcome(c.set, major);
        if ('error' in rendered) {
          // What the service would say to these values: the limit passed through, the rest as the chart sets them by default.
          const values = Object.fromEntries(c.set.map((s) => s.split('=') as [string, string]));
          const verdict = memoryBudget({
            limitBytes: c.limitBytes,
            budgetBytes: values['config.memoryBudgetBytes'] === undefined ? undefined : Number(values['config.memoryBudgetBytes']),
            maxConnections: Number(values['config.maxConnections'] ?? DEFAULTS.maxConnections),
            maxPayloadBytes: DEFAULTS.maxPayloadBytes,
            backpressureBytes: DEFAULTS.backpressureBytes,
          });
          if (!('error' in verdict)) disagreements.push(`${c.what} (helm ${major}): helm refused (${rendered.error}), the service would start`);
          return;
        }
        assert.equal(rendered.limitFromDownwardApi, c.limitBytes !== undefined, `${c.what}: MEMORY_LIMIT_BYTES from the downward API exactly when there is a limit`);
        const env = c.limitBytes === undefined ? rendered.env : { ...rendered.env, MEMORY_LIMIT_BYTES: String(c.limitBytes) };
        try {
          planMemory(loadConfig(env), { limit: () => undefined });
        } catch (err) {
          disagreements.push(`${c.what} (helm ${major}): helm rendered it, the service would refuse: ${(err as Error).message}`);
        }
      },
    );
    assert.deepEqual(disagreements, []);
  });

  it('refuses a limit too small, naming the values, and a limit in thousandths of a byte', async () => {
    const small = await outcome(['resources.limits.memory=128Mi'], 4);
    assert.ok('error' in small);
    assert.match(small.error, /resources\.limits\.memory \(128Mi\) is too small.*config\.maxConnections \(10000\).*142\.1 MiB/);
    const milli = await outcome(['resources.limits.memory=512m'], 4);
    assert.ok('error' in milli && milli.error.includes('the suffix m means thousandths of a byte. Did you mean 512Mi?'));
  });

  it('renders the message limits and MEMORY_BUDGET_BYTES only when it is set', async () => {
    const defaults = await outcome([], 4);
    assert.ok(!('error' in defaults));
    assert.deepEqual([defaults.env.MAX_MESSAGE_FRAGMENTS, defaults.env.MESSAGE_TIMEOUT_SECONDS, defaults.env.MEMORY_BUDGET_BYTES], ['128', '15', undefined]);
    const set = await outcome(['config.memoryBudgetBytes=0'], 4);
    assert.ok(!('error' in set) && set.env.MEMORY_BUDGET_BYTES === '0');
  });
});

describe('kernel socket buffers (socketBuffers)', { skip }, () => {
  const sysctlsOf = async (set: string[], kubeVersion: string): Promise<Record<string, string>> => {
    const pod = (one(await render({ set, kubeVersion }), 'Deployment').spec as { template: { spec: { securityContext: { sysctls?: { name: string; value: string }[] } } } })
      .template.spec;
    return Object.fromEntries((pod.securityContext.sysctls ?? []).map((s) => [s.name, s.value]));
  };
  const OURS = { 'net.ipv4.tcp_rmem': '4096 131072 262144', 'net.ipv4.tcp_wmem': '4096 16384 262144' };

  it('sets the two sysctls unless told not to, whatever the cluster version (which NOTES warns about below 1.32)', async () => {
    assert.deepEqual(await sysctlsOf([], '1.34.0'), OURS);
    assert.deepEqual(await sysctlsOf([], '1.30.0'), OURS);
    assert.deepEqual(await sysctlsOf(['socketBuffers.enabled=false'], '1.34.0'), {});
    // The NOTES of `helm install` against the LOCAL FAKE API SERVER (not a kube-apiserver), which says which version it is.
    const api = new FakeApiServer();
    api.serveResources(CHART_API_RESOURCES);
    await api.listen();
    try {
      const kubeconfig = api.writeKubeconfig(join(mkdtempSync(join(tmpdir(), 'ws-echo-notes-')), 'kubeconfig.yaml'), NAMESPACE);
      const notes = async (version: string): Promise<string> => {
        api.kubernetesVersion = version;
        const r = await helm(['install', RELEASE, chartDir, '--dry-run=server', '--disable-openapi-validation', '--namespace', NAMESPACE], { env: { KUBECONFIG: kubeconfig } });
        assert.ok(r.ok, r.stderr);
        return r.stdout.slice(r.stdout.indexOf('NOTES:'));
      };
      assert.match(await notes('1.31.0'), /Kubelets older than 1\.32 refuse[\s\S]*--set socketBuffers\.enabled=false/);
      assert.doesNotMatch(await notes('1.32.0'), /socketBuffers/);
    } finally {
      await api.close();
    }
  });

  it("keeps the user's own sysctls, and their value where they set one of ours", async () => {
    const set = [
      'podSecurityContext.sysctls[0].name=net.ipv4.tcp_rmem',
      'podSecurityContext.sysctls[0].value=4096 131072 1048576',
      'podSecurityContext.sysctls[1].name=net.ipv4.ip_local_port_range',
      'podSecurityContext.sysctls[1].value=32768 60999',
    ];
    assert.deepEqual(await sysctlsOf(set, '1.34.0'), {
      'net.ipv4.tcp_rmem': '4096 131072 1048576',
      'net.ipv4.ip_local_port_range': '32768 60999',
      'net.ipv4.tcp_wmem': '4096 16384 262144',
    });
  });
});
