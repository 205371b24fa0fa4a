// Configuration: every environment variable the service reads, its default,
// its parsing and its validation, in one place. The rest of the code receives
// the frozen `Config` and never reads process.env itself.
import { hostname } from 'node:os';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const KUBERNETES_MODES = ['auto', 'on', 'off'] as const;
export type KubernetesMode = (typeof KUBERNETES_MODES)[number];

export const SWITCH = ['on', 'off'] as const;

/** Paths the public port serves itself; the WebSocket path may not shadow them. */
export const RESERVED_PATHS = ['/healthz', '/readyz', '/metrics'] as const;

export interface Config {
  /** Public port: WebSocket, /healthz, /readyz. 0 picks a free port. */
  readonly port: number;
  /** Prometheus /metrics port, never the public one. 0 picks a free port. */
  readonly metricsPort: number;
  /** Address both ports bind to; unset lets Node pick (all IPv6 and IPv4 addresses). */
  readonly host: string | undefined;
  readonly wsPath: string;
  readonly maxConnections: number;
  readonly maxPayloadBytes: number;
  /** Outgoing bytes buffered for one client above which we stop reading from it. */
  readonly backpressureBytes: number;
  /** Exact origins allowed to open a socket; empty means any origin. */
  readonly allowedOrigins: readonly string[];
  /** Seconds between pings; 0 turns the heartbeat off. */
  readonly heartbeatIntervalSeconds: number;
  readonly drainWindowSeconds: number;
  readonly drainCloseTimeoutSeconds: number;
  /** Seconds a client may take to send a complete request head. */
  readonly headersTimeoutSeconds: number;
  readonly logLevel: LogLevel;
  /** Name shown in X-Served-By, logs and Kubernetes calls. */
  readonly podName: string;
  readonly podNamespace: string | undefined;
  /** The pod's UID (downward API): lets `kubectl describe pod` find our Events. */
  readonly podUid: string | undefined;
  /** Kubernetes integration: auto (on inside a cluster), on, off. */
  readonly kubernetes: KubernetesMode;
  /** Set by the kubelet in every pod; its presence is how `auto` detects a cluster. */
  readonly kubernetesServiceHost: string | undefined;
  /** A kubeconfig file for running outside a cluster with KUBERNETES_INTEGRATION=on. */
  readonly kubeconfig: string | undefined;
  /** At most one pod-deletion-cost patch per this many seconds. */
  readonly podDeletionCostIntervalSeconds: number;
  readonly rebalance: RebalanceConfig;
}

/** Rebalancing after scale-up (app/src/rebalance.ts). */
export interface RebalanceConfig {
  readonly enabled: boolean;
  /** Label selector of the pods of our Deployment: the fleet view; empty means none. */
  readonly podSelector: string | undefined;
  /** Fair share when the fleet cannot be seen (the HPA target); 0 means none. */
  readonly targetConnections: number;
  /** Shed only when above the share by more than this fraction. */
  readonly tolerance: number;
  /** Fraction of our connections we may close per interval. */
  readonly rate: number;
  readonly intervalSeconds: number;
  /** After shedding stops, this long before it may start again. */
  readonly cooldownSeconds: number;
}

/** Thrown by loadConfig; `problems` holds one line per bad variable. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads and validates the configuration. Collects every problem before
 * throwing, so a user fixes all bad variables in one round.
 */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  // An empty variable counts as unset: `env: [{name: PORT, value: ""}]` in a
  // manifest means "no opinion", not "port zero".
  const raw = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const fail = (name: string, value: string, allowed: string): void => {
    problems.push(`${name}=${JSON.stringify(value)} is invalid: ${allowed}`);
  };

  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const value = raw(name);
    if (value === undefined) return fallback;
    const parsed = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      fail(name, value, `must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return parsed;
  };

  // Seconds accept decimals ("0.5") so tests and impatient users can use short windows.
  const seconds = (name: string, fallback: number, min: number, max: number, zeroMeans?: string): number => {
    const value = raw(name);
    if (value === undefined) return fallback;
    const parsed = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
    if (zeroMeans !== undefined && parsed === 0) return 0;
    if (!Number.isFinite(parsed) || parsed < min || parsed > max) {
      const zero = zeroMeans === undefined ? '' : `, or 0 ${zeroMeans}`;
      fail(name, value, `must be a number of seconds from ${min} to ${max}${zero}`);
      return fallback;
    }
    return parsed;
  };

  const fraction = (name: string, fallback: number, min: number, max: number): number => {
    const value = raw(name);
    if (value === undefined) return fallback;
    const parsed = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
    if (!Number.isFinite(parsed) || parsed < min || parsed > max) {
      fail(name, value, `must be a number from ${min} to ${max} (a fraction: 0.2 is 20 %)`);
      return fallback;
    }
    return parsed;
  };

  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const value = raw(name);
    if (value === undefined) return fallback;
    const lower = value.toLowerCase() as T;
    if (!allowed.includes(lower)) {
      fail(name, value, `must be one of ${allowed.join(', ')}`);
      return fallback;
    }
    return lower;
  };

  const port = integer('PORT', 8000, 0, 65535);
  const metricsPort = integer('METRICS_PORT', 9100, 0, 65535);
  if (port !== 0 && port === metricsPort) {
    fail('METRICS_PORT', String(metricsPort), 'must differ from PORT, metrics are never served on the public port');
  }

  const wsPath = raw('WS_PATH') ?? '/echo';
  if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/.test(wsPath)) {
    fail('WS_PATH', wsPath, 'must be a URL path starting with "/", without query or fragment');
  } else if ((RESERVED_PATHS as readonly string[]).includes(wsPath)) {
    fail('WS_PATH', wsPath, `must not be one of ${RESERVED_PATHS.join(', ')}`);
  }

  const allowedOrigins: string[] = [];
  const originsValue = raw('ALLOWED_ORIGINS');
  if (originsValue !== undefined && originsValue !== '*') {
    for (const entry of originsValue
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const origin = canonicalOrigin(entry);
      if (origin === undefined) {
        fail(
          'ALLOWED_ORIGINS',
          originsValue,
          `"${entry}" is not an origin; use "*" or a comma-separated list like https://app.example.com,http://localhost:3000`,
        );
        break;
      }
      allowedOrigins.push(origin);
    }
  }

  const config: Config = {
    port,
    metricsPort,
    host: raw('HOST'),
    wsPath,
    maxConnections: integer('MAX_CONNECTIONS', 10000, 1, 1_000_000),
    maxPayloadBytes: integer('MAX_PAYLOAD_BYTES', 64 * 1024, 1, 256 * 1024 * 1024),
    // At least the socket's own 16 KiB buffer: the check starts once that is full (connections.ts).
    backpressureBytes: integer('BACKPRESSURE_BYTES', 1024 * 1024, 16 * 1024, 1024 * 1024 * 1024),
    allowedOrigins,
    heartbeatIntervalSeconds: seconds('HEARTBEAT_INTERVAL_SECONDS', 30, 0.1, 3600, 'to turn the heartbeat off'),
    drainWindowSeconds: seconds('DRAIN_WINDOW_SECONDS', 20, 0, 3600),
    drainCloseTimeoutSeconds: seconds('DRAIN_CLOSE_TIMEOUT_SECONDS', 5, 0.1, 600),
    headersTimeoutSeconds: seconds('HTTP_HEADERS_TIMEOUT_SECONDS', 10, 0.1, 600),
    logLevel: oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    podName: raw('POD_NAME') ?? hostname(),
    podNamespace: raw('POD_NAMESPACE'),
    podUid: raw('POD_UID'),
    kubernetes: oneOf('KUBERNETES_INTEGRATION', 'auto', KUBERNETES_MODES),
    kubernetesServiceHost: raw('KUBERNETES_SERVICE_HOST'),
    kubeconfig: raw('KUBECONFIG'),
    podDeletionCostIntervalSeconds: seconds('POD_DELETION_COST_INTERVAL_SECONDS', 10, 1, 3600),
    rebalance: {
      enabled: oneOf('REBALANCE', 'on', SWITCH) === 'on',
      podSelector: raw('REBALANCE_POD_SELECTOR'),
      targetConnections: integer('REBALANCE_TARGET_CONNECTIONS', 0, 0, 1_000_000),
      tolerance: fraction('REBALANCE_TOLERANCE', 0.2, 0, 10),
      rate: fraction('REBALANCE_RATE', 0.05, 0.001, 1),
      intervalSeconds: seconds('REBALANCE_INTERVAL_SECONDS', 10, 0.1, 3600),
      cooldownSeconds: seconds('REBALANCE_COOLDOWN_SECONDS', 60, 0, 86_400),
    },
  };
  const selector = config.rebalance.podSelector;
  if (selector !== undefined && !/^[A-Za-z0-9._/-]+=[A-Za-z0-9._-]*(,[A-Za-z0-9._/-]+=[A-Za-z0-9._-]*)*$/.test(selector)) {
    fail('REBALANCE_POD_SELECTOR', selector, 'must be an equality label selector like app.kubernetes.io/name=ws-echo,app.kubernetes.io/instance=echo');
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/**
 * Returns the canonical `scheme://host[:port]` form of an origin (as in the
 * Origin header, RFC 6454), or undefined if `value` is not one.
 */
export function canonicalOrigin(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  const bare = url.pathname === '/' && url.search === '' && url.hash === '' && !value.endsWith('/');
  if (!['http:', 'https:'].includes(url.protocol) || !bare || url.username !== '') return undefined;
  return url.origin;
}
