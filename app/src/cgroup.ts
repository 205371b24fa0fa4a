// The container's memory as the kernel sees it, from the process's own
// cgroup: the limit past which the kernel kills the process, and the kernel
// socket buffers charged to the container. Both cgroup versions:
// - v2 (/sys/fs/cgroup/memory.max, memory.stat): socket buffers are always
//   charged to the cgroup and count toward memory.max, so a client that fills
//   them can get the pod OOM-killed without the process allocating anything;
// - v1 (/sys/fs/cgroup/memory/memory.limit_in_bytes): socket buffers are
//   charged (to memory.kmem.tcp.usage_in_bytes) only where the runtime turned
//   TCP accounting on; they are read then, and count as held.
// Inside a container the process's cgroup is mounted at these paths; outside
// one they hold the host's root cgroup, whose limit is "max" (v2) or a
// near-2^63 number (v1): no limit.
import { readFileSync } from 'node:fs';

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** v1 reports "no limit" as the largest page-aligned 64-bit number; anything this large is none. */
const NO_LIMIT_ABOVE = 2 ** 60;

export interface MemoryLimit {
  readonly bytes: number;
  /** Where it was read, for the log line at start. */
  readonly source: string;
}

/** Reads the container's memory cgroup: v2 if `root` has memory.max, else v1 under `root`/memory. */
export class ContainerMemory {
  readonly version: 1 | 2 | undefined;
  readonly #dir: string;

  /** `root`: where the cgroup file systems are mounted; or `cgroup`: one memory cgroup directory named outright. */
  constructor(root = CGROUP_ROOT, cgroup?: { readonly dir: string; readonly version: 1 | 2 }) {
    if (cgroup !== undefined) {
      this.version = cgroup.version;
      this.#dir = cgroup.dir;
    } else if (readNumberOrMax(`${root}/memory.max`) !== undefined) {
      this.version = 2;
      this.#dir = root;
    } else if (readNumberOrMax(`${root}/memory/memory.limit_in_bytes`) !== undefined) {
      this.version = 1;
      this.#dir = `${root}/memory`;
    } else {
      this.version = undefined;
      this.#dir = root;
    }
  }

  /** What the kernel compares with the limit: memory.current (v2), memory.usage_in_bytes (v1); 0 when unreadable. */
  usageBytes(): number {
    const usage = readNumberOrMax(`${this.#dir}/${this.version === 2 ? 'memory.current' : 'memory.usage_in_bytes'}`);
    return typeof usage === 'number' ? usage : 0;
  }

  /** The memory limit, or undefined when there is none (or no cgroup to read). */
  limit(): MemoryLimit | undefined {
    const file = this.version === 2 ? 'memory.max' : this.version === 1 ? 'memory.limit_in_bytes' : undefined;
    if (file === undefined) return undefined;
    const bytes = readNumberOrMax(`${this.#dir}/${file}`);
    if (bytes === undefined || bytes === 'max' || bytes >= NO_LIMIT_ABOVE) return undefined;
    return { bytes, source: `cgroup v${this.version} ${this.#dir}/${file}` };
  }

  /**
   * Kernel socket buffers charged to the container now: memory.stat's
   * `sock` (v2), or memory.kmem.tcp.usage_in_bytes (v1, 0 unless TCP
   * accounting is on). 0 when neither can be read.
   */
  kernelSocketBytes(): number {
    if (this.version === 2) {
      const stat = readOrUndefined(`${this.#dir}/memory.stat`);
      const match = stat === undefined ? null : /^sock (\d+)$/m.exec(stat);
      return match ? Number(match[1]) : 0;
    }
    if (this.version === 1) {
      const usage = readNumberOrMax(`${this.#dir}/memory.kmem.tcp.usage_in_bytes`);
      return typeof usage === 'number' ? usage : 0;
    }
    return 0;
  }
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function readNumberOrMax(path: string): number | 'max' | undefined {
  const text = readOrUndefined(path)?.trim();
  if (text === undefined) return undefined;
  if (text === 'max') return 'max';
  return /^\d+$/.test(text) ? Number(text) : undefined;
}
