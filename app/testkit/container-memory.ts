// A podman container's memory as the host sees it, sampled while a test
// attacks it: the main process's RSS, the cgroup's usage (what the kernel
// compares with the limit) and the kernel socket buffers charged to it. On
// cgroup v1 those buffers are charged only once TCP accounting is on for the
// cgroup (memory.kmem.tcp.limit_in_bytes set), which `chargeSocketBuffers`
// does, so that the service sees them and must handle them as on cgroup v2,
// where they always count toward the limit.
import { readFileSync, writeFileSync } from 'node:fs';
import { ContainerMemory } from '../src/cgroup.js';
import { rssBytes } from './proc.js';

export interface MemoryPeaks {
  /** VmRSS of the container's main process. */
  readonly rssBytes: number;
  /** The cgroup's usage (v1 memory.usage_in_bytes, v2 memory.current). */
  readonly usageBytes: number;
  /** Kernel socket buffers charged to the cgroup. */
  readonly socketBytes: number;
  /** RSS plus socket buffers at the same moment: what cgroup v2 would compare with the limit. */
  readonly rssPlusSocketBytes: number;
}

export class ContainerMemorySampler {
  readonly #cgroup: ContainerMemory;
  readonly #dir: string;
  readonly #timer: NodeJS.Timeout;
  #peaks: MemoryPeaks = { rssBytes: 0, usageBytes: 0, socketBytes: 0, rssPlusSocketBytes: 0 };
  /** The first sample: where the attack started from. */
  readonly start: MemoryPeaks;

  constructor(
    readonly pid: number,
    intervalMs = 50,
  ) {
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const v1 = lines.find((l) => /^\d+:memory:/.test(l));
    this.#dir = v1 === undefined ? `/sys/fs/cgroup${lines.find((l) => l.startsWith('0::'))!.slice(3)}` : `/sys/fs/cgroup/memory${v1.split(':')[2]}`;
    this.#cgroup = new ContainerMemory(undefined, { dir: this.#dir, version: v1 === undefined ? 2 : 1 });
    this.sample();
    this.start = this.#peaks;
    this.#timer = setInterval(() => this.sample(), intervalMs).unref();
  }

  /** Turns TCP accounting on for a v1 cgroup, with a limit no test reaches; says how socket buffers are charged. */
  chargeSocketBuffers(): string {
    if (this.#cgroup.version === 2) return 'cgroup v2: socket buffers count toward the limit';
    writeFileSync(`${this.#dir}/memory.kmem.tcp.limit_in_bytes`, String(2 ** 40));
    return 'cgroup v1 with TCP accounting on: socket buffers charged (memory.kmem.tcp), as cgroup v2 charges them';
  }

  sample(): void {
    let rss = 0;
    try {
      rss = rssBytes(this.pid);
    } catch {
      // The process is gone: the test sees that in the container's state.
    }
    const sockets = this.#cgroup.kernelSocketBytes();
    const p = this.#peaks;
    this.#peaks = {
      rssBytes: Math.max(p.rssBytes, rss),
      usageBytes: Math.max(p.usageBytes, this.#cgroup.usageBytes()),
      socketBytes: Math.max(p.socketBytes, sockets),
      rssPlusSocketBytes: Math.max(p.rssPlusSocketBytes, rss + sockets),
    };
  }

  stop(): MemoryPeaks {
    clearInterval(this.#timer);
    this.sample();
    return this.#peaks;
  }
}
