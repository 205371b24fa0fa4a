// Runs the real helm binary on the chart. scripts/fetch-helm.sh puts helm
// into .tools/bin once; ensureTool runs it when the binary is missing, so
// `npm test` works on a fresh clone after `npm install`.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { Manifest } from './k8s-schemas.js';

const run = promisify(execFile);

/** The repository root (this file runs from dist/app/test/chart/). */
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
export const chartDir = join(repoRoot, 'chart');
export const helmBin = join(repoRoot, '.tools', 'bin', 'helm');

/** Runs an idempotent fetch script once when the file it produces is missing. */
export function ensureTool(script: string, produces: string): void {
  if (existsSync(join(repoRoot, produces))) return;
  execFileSync('bash', [join(repoRoot, script)], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
}

export function ensureHelm(): string {
  ensureTool('scripts/fetch-helm.sh', join('.tools', 'bin', 'helm'));
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
  scenario?: string;
  kubeVersion?: string;
  set?: string[];
}

/** `helm template` of the chart; resolves with the parsed documents, rejects with helm's message. */
export async function render({ scenario = 'default', kubeVersion = '1.34.0', set = [] }: RenderOptions = {}): Promise<Manifest[]> {
  const args = ['template', RELEASE, chartDir, '--namespace', NAMESPACE, '--kube-version', kubeVersion, '--values', join(chartDir, 'ci', `${scenario}-values.yaml`)];
  for (const s of set) args.push('--set', s);
  const result = await helm(args);
  if (!result.ok) throw new Error(result.stderr.trim());
  return parseAllDocuments(result.stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null);
}

/** Runs `fn` over `items` with at most `limit` at once (helm is CPU-bound; the machine has 2 cores). */
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
