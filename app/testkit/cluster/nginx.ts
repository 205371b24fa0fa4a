// Real nginx in front of the replicas, configured from the same settings the
// chart's Ingress gives ingress-nginx (chart/values.yaml `ingress.*`) and the
// controller values in k8s/ (worker-shutdown-timeout).
//
// How this differs from ingress-nginx: ingress-nginx balances in Lua and
// applies endpoint changes without a reload; its cookie affinity stores a
// chosen endpoint in the cookie and, with session-cookie-change-on-failure,
// rewrites the cookie when that endpoint refuses. Here endpoint changes are
// nginx reloads (old workers keep their tunnels until the clients leave or
// worker_shutdown_timeout passes, as on a real reload), and cookie affinity is
// a consistent hash of the cookie: the same cookie maps to the same replica
// while it exists; when it refuses (proxy_next_upstream) or leaves the
// upstream, the hash falls through to another replica without rewriting the
// cookie (a final 503 hands out a new one). With affinity "hash", ingress-nginx retries on the same endpoint
// (its chash balancer picks by key alone, kubernetes/ingress-nginx#10730),
// while plain nginx's hash would move on to the next one: here retries are
// off for "hash", so a refused upgrade reaches the client as it would there.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, httpGet } from '../http.js';
import { spawnOwned } from '../processes.js';
import { requireTool } from '../tools.js';

export interface ProxySettings {
  /** proxy-read-timeout / proxy-send-timeout, seconds. */
  readonly proxyTimeoutSeconds: number;
  /** proxy-next-upstream, e.g. "error timeout http_503". */
  readonly nextUpstream: string;
  readonly nextUpstreamTries: number;
  readonly affinity: 'cookie' | 'hash' | 'none';
  readonly cookieName: string;
  readonly cookieMaxAgeSeconds: number;
  /** nginx variable(s) hashed for affinity "hash". */
  readonly hashBy: string;
  /** The controller's worker-shutdown-timeout, seconds. */
  readonly workerShutdownTimeoutSeconds: number;
}

/** How big the proxy is: nginx's worker_processes, worker_connections and worker_rlimit_nofile. */
export interface ProxyCapacity {
  readonly workerProcesses: number;
  readonly workerConnections: number;
  readonly workerRlimitNofile: number;
}

/** ingress-nginx's max-worker-connections: the floor, whatever the expected load. */
const INGRESS_NGINX_WORKER_CONNECTIONS = 16_384;
/** A proxied WebSocket holds two connections in nginx: the client's and the upstream one. */
const CONNECTIONS_PER_CLIENT = 2;
/**
 * Room over the steady count: the workers' shares are even only on average
 * (reuseport hashes each client's address and port), and while a replica
 * drains its clients reconnect through new tunnels before every old one has
 * closed.
 */
const HEADROOM = 1.25;
/** Descriptors a worker needs beyond its connections: listeners, logs, the reload handshake. */
const SPARE_DESCRIPTORS = 1024;

/** The hard RLIMIT_NOFILE this process (and so nginx, its child) runs under; nginx cannot raise its workers' above it. */
export function descriptorHardLimit(limits = readFileSync('/proc/self/limits', 'utf8')): number {
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(limits)?.[1];
  return hard === undefined || hard === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(hard);
}

/**
 * Sizes the proxy like a production ingress for `clients` expected clients:
 * one worker per core (ingress-nginx's worker-processes "auto"), more if a
 * worker's share of the connections would not fit the descriptor limit, and
 * enough connections per worker, with descriptors to back them, that the
 * proxy is not the first thing to give way.
 */
export function proxyCapacity(clients: number, cores = availableParallelism(), hardLimit = descriptorHardLimit()): ProxyCapacity {
  const connections = Math.ceil(CONNECTIONS_PER_CLIENT * clients * HEADROOM);
  const perWorkerMax = hardLimit - SPARE_DESCRIPTORS;
  const workerProcesses = Math.max(1, cores, Math.ceil(connections / perWorkerMax));
  const workerConnections = Math.max(Math.min(INGRESS_NGINX_WORKER_CONNECTIONS, perWorkerMax), Math.ceil(connections / workerProcesses));
  return { workerProcesses, workerConnections, workerRlimitNofile: Math.min(hardLimit, workerConnections + SPARE_DESCRIPTORS) };
}

/**
 * nginx's own words when it is the bottleneck: out of connections or
 * descriptors, or unable to accept. Lines at alert level and above are
 * included; a refused upstream during a drain is "error" and is not.
 */
const BOTTLENECK = /worker_connections are not enough|Too many open files|\[(alert|crit|emerg)\]/;

/** The first line of an nginx error log that says the proxy itself is the bottleneck, if any. */
export function proxyBottleneck(errorLog: string): string | undefined {
  return errorLog.split('\n').find((line) => BOTTLENECK.test(line));
}

export interface Upstream {
  readonly name: string;
  readonly port: number;
}

/** The nginx.conf for `upstreams`; `generation` is served at /__generation so a reload can be awaited. */
export function nginxConfig(
  settings: ProxySettings,
  upstreams: readonly Upstream[],
  listenPort: number,
  dir: string,
  generation: number,
  capacity: ProxyCapacity = proxyCapacity(0),
): string {
  const balance = {
    cookie: 'hash $affinity_key consistent;',
    hash: `hash ${settings.hashBy} consistent;`,
    none: '',
  }[settings.affinity];
  // nginx refuses an empty upstream; a server marked down stands in.
  // max_fails=0: ingress-nginx's Lua balancer never marks an endpoint down after
  // a refused request (kubernetes/ingress-nginx#4773); nginx's default would
  // take a pod out for 10 s after one 503 from a draining or shedding pod.
  const servers = upstreams.length > 0 ? upstreams.map((u) => `    server 127.0.0.1:${u.port} max_fails=0; # ${u.name}`) : ['    server 127.0.0.1:1 down;'];
  // ingress-nginx's hash balancer retries the endpoint it tried: no other pod is ever asked.
  const nextUpstream = settings.affinity === 'hash' ? 'off' : settings.nextUpstream;
  const cookie =
    settings.affinity === 'cookie'
      ? `      add_header Set-Cookie "${settings.cookieName}=$affinity_cookie; Path=/; Max-Age=${settings.cookieMaxAgeSeconds}; HttpOnly" always;`
      : '';
  return `# generated by app/testkit/cluster/nginx.ts (generation ${generation})
${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes ${capacity.workerProcesses};
worker_rlimit_nofile ${capacity.workerRlimitNofile};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log notice;
# Old workers keep their WebSocket tunnels this long after a reload (kubernetes/ingress-nginx#2461).
worker_shutdown_timeout ${settings.workerShutdownTimeoutSeconds}s;
events { worker_connections ${capacity.workerConnections}; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  # As ingress-nginx: pass Upgrade through, "close" for plain requests.
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  # Cookie affinity: the client's cookie, or a new random key that the response sets as the cookie.
  map $cookie_${settings.cookieName} $affinity_key { '' $request_id; default $cookie_${settings.cookieName}; }
  # A refused upgrade (every try answered 503) hands the client a new key, as
  # session-cookie-change-on-failure re-points ingress-nginx's cookie: the
  # same key would retry the same pods in the same order, and a client whose
  # tries all land on shedding pods would be refused until shedding ends.
  map $status $affinity_cookie { 503 $request_id; default $affinity_key; }
  upstream ws_echo {
    ${balance}
${servers.join('\n')}
  }
  server {
    # reuseport: one listening socket per worker, so the kernel spreads clients evenly over the workers.
    listen 127.0.0.1:${listenPort} reuseport;
    location = /__generation { return 200 "${generation}"; }
    location / {
      proxy_pass http://ws_echo;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout ${settings.proxyTimeoutSeconds}s;
      proxy_send_timeout ${settings.proxyTimeoutSeconds}s;
      proxy_next_upstream ${nextUpstream};
      proxy_next_upstream_tries ${settings.nextUpstreamTries};
${cookie}
    }
  }
}
`;
}

/** A running nginx master (a child of this process) and its upstream list. */
export class NginxProxy {
  #generation = 0;
  #upstreams: Upstream[] = [];
  #reloading: Promise<void> = Promise.resolve();
  /** Date.now() and the upstream names after each completed reload. */
  readonly reloads: { at: number; upstreams: string[] }[] = [];

  private constructor(
    readonly binary: string,
    readonly dir: string,
    readonly port: number,
    readonly settings: ProxySettings,
    readonly capacity: ProxyCapacity,
    readonly master: ChildProcess,
  ) {}

  static async start(settings: ProxySettings, upstreams: readonly Upstream[], folder: string, capacity = proxyCapacity(0)): Promise<NginxProxy> {
    const dir = resolve(folder); // nginx reads relative paths from its prefix, not from our cwd
    const binary = requireTool('nginx');
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    const port = await freePort();
    writeFileSync(join(dir, 'nginx.conf'), nginxConfig(settings, upstreams, port, dir, 0, capacity));
    const master = spawnOwned(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'inherit', 'inherit'] });
    const proxy = new NginxProxy(binary, dir, port, settings, capacity, master);
    proxy.#upstreams = [...upstreams];
    await proxy.#awaitGeneration(0);
    return proxy;
  }

  get upstreams(): readonly Upstream[] {
    return this.#upstreams;
  }

  /**
   * Rewrites the upstream list and reloads nginx (SIGHUP), resolving once new
   * workers answer. Calls run one after another, like the controller's syncs.
   */
  setUpstreams(upstreams: readonly Upstream[]): Promise<void> {
    const reload = this.#reloading.then(async () => {
      this.#upstreams = [...upstreams];
      const generation = ++this.#generation;
      writeFileSync(join(this.dir, 'nginx.conf'), nginxConfig(this.settings, upstreams, this.port, this.dir, generation, this.capacity));
      this.master.kill('SIGHUP');
      await this.#awaitGeneration(generation);
      this.reloads.push({ at: Date.now(), upstreams: upstreams.map((u) => u.name) });
    });
    this.#reloading = reload.catch(() => {});
    return reload;
  }

  /** The line of nginx's error log that says it is the bottleneck, if it has said so yet. */
  bottleneck(): string | undefined {
    const log = join(this.dir, 'error.log');
    return existsSync(log) ? proxyBottleneck(readFileSync(log, 'utf8')) : undefined;
  }

  /**
   * Rejects as soon as nginx's error log says the proxy is the bottleneck
   * (checked every `intervalMs`), with that line; `stop()` ends the watch.
   */
  watchBottleneck(intervalMs = 500): { failed: Promise<never>; stop: () => void } {
    let timer: NodeJS.Timeout | undefined;
    const failed = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        const line = this.bottleneck();
        if (line !== undefined) {
          clearInterval(timer);
          reject(
            new Error(
              `the proxy is the bottleneck (${this.capacity.workerProcesses} workers × ${this.capacity.workerConnections} connections): nginx says "${line.trim()}"`,
            ),
          );
        }
      }, intervalMs);
      timer.unref();
    });
    failed.catch(() => {}); // observed by whoever races it
    return { failed, stop: () => clearInterval(timer) };
  }

  /** pids of nginx's master and its workers (old workers included while they drain after a reload). */
  pids(): number[] {
    const master = this.master.pid;
    if (master === undefined) return [];
    const children = (() => {
      try {
        return readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    })();
    return [master, ...children];
  }

  async stop(): Promise<void> {
    if (this.master.exitCode !== null || this.master.signalCode !== null) return;
    const exited = once(this.master, 'exit');
    this.master.kill('SIGTERM'); // fast shutdown: the run is over
    await exited;
  }

  async #awaitGeneration(generation: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const body = await httpGet(this.port, '/__generation').then(
        (a) => a.body,
        () => '',
      );
      if (body === String(generation)) return;
      if (this.master.exitCode !== null) throw new Error(`nginx exited with ${this.master.exitCode}; see ${this.dir}/error.log`);
      if (Date.now() > deadline) throw new Error(`nginx did not load generation ${generation}; see ${this.dir}/error.log`);
      await sleep(20);
    }
  }
}
