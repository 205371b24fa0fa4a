// podman for the image tests: every call with scripts/containers.conf (runc,
// cgroupfs, ulimits a container host without systemd allows) and a timeout, so a stuck podman
// fails a test instead of hanging the run.
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './paths.js';
import { findTool, missingMessage } from './tools.js';

const run = promisify(execFile);

export const containersConf = process.env.CONTAINERS_CONF ?? join(repoRoot, 'scripts', 'containers.conf');
const env = { ...process.env, CONTAINERS_CONF: containersConf };

/** Why podman cannot run containers on this machine, or undefined when it can. */
export function podmanUnavailable(): string | undefined {
  if (findTool('podman') === undefined) return missingMessage(['podman']);
  const info = spawnSync('podman', ['info', '--format', '{{.Host.OCIRuntime.Name}}'], { env, encoding: 'utf8', timeout: 60_000 });
  if (info.error) return `\`podman info\` failed: ${info.error.message}`;
  if (info.status !== 0) return `\`podman info\` failed: ${info.stderr.trim().split('\n').pop() ?? ''}`;
  return undefined;
}

/** Runs podman; resolves with stdout, rejects with podman's stderr. */
export async function podman(args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await run('podman', args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`podman ${args.join(' ')}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** Best-effort cleanup for finally blocks and after hooks: never throws. */
export async function removeContainer(name: string): Promise<void> {
  await podman(['rm', '--force', '--ignore', '--time', '0', name]).catch(() => {});
}

/** `podman inspect` of one container, parsed. */
export async function inspect(name: string): Promise<ContainerInspect> {
  const [first] = JSON.parse(await podman(['container', 'inspect', name])) as ContainerInspect[];
  if (!first) throw new Error(`no container ${name}`);
  return first;
}

/** The fields of `podman inspect` the tests read. */
export interface ContainerInspect {
  Name: string;
  State: { Status: string; ExitCode: number; OOMKilled: boolean; Pid: number; StartedAt: string; FinishedAt: string; Health?: { Status: string } };
  Config: { User: string; StopTimeout: number; Env: string[]; Healthcheck?: { Test: string[] } };
  HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[] | null; SecurityOpt: string[] | null; Memory: number; RestartPolicy: { Name: string } };
  EffectiveCaps: string[] | null;
}

/** The processes in a container as `podman top` sees them (pid inside the container, user, capabilities, seccomp, command line). */
export async function top(name: string): Promise<{ pid: string; user: string; capeff: string; capbnd: string; seccomp: string; args: string }[]> {
  const out = await podman(['top', name, 'pid', 'user', 'capeff', 'capbnd', 'seccomp', 'args']);
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [pid = '', user = '', capeff = '', capbnd = '', seccomp = '', ...args] = line.trim().split(/\s+/);
      return { pid, user, capeff, capbnd, seccomp, args: args.join(' ') };
    });
}

/** The loopback port podman published a container port on (`-p 127.0.0.1::PORT`); known once the container started. */
export async function publishedPort(name: string, containerPort: number): Promise<number> {
  const out = (await podman(['port', name, `${containerPort}/tcp`])).trim();
  const port = Number(out.split(':').pop());
  if (!Number.isInteger(port) || port <= 0) throw new Error(`${name}: port ${containerPort} is not published (${out})`);
  return port;
}

/**
 * The image under test. WS_ECHO_IMAGE names an image that already exists;
 * otherwise scripts/build-image.sh builds localhost/ws-echo:dev from this
 * tree (seconds when nothing changed: the base image and podman's layers
 * are cached).
 */
export function ensureImage(): string {
  const given = process.env.WS_ECHO_IMAGE;
  if (given) return given;
  const script = join(repoRoot, 'scripts', 'build-image.sh');
  const result = spawnSync('bash', [script], { cwd: repoRoot, env, encoding: 'utf8', timeout: 15 * 60_000, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new Error(`scripts/build-image.sh failed (${result.error?.message ?? `exit ${result.status}`}):\n${result.stderr.slice(-4000)}`);
  }
  return 'localhost/ws-echo:dev';
}

let counter = 0;
/** A container or release name no other test run uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter++}`;
}
