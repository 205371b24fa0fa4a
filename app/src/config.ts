// Configuration: the frozen `Config` the rest of the code receives, loaded
// from the environment through the settings table (settings.ts), which holds
// every variable's default, parser and meaning. Nothing else reads process.env.
import { hostname } from 'node:os';
import { SETTINGS, type KubernetesMode, type LogLevel, type Setting, type SettingName, type SettingValue } from './settings.js';

export { canonicalOrigin, KUBERNETES_MODES, LOG_LEVELS, RESERVED_PATHS, type KubernetesMode, type LogLevel } from './settings.js';

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
  /** Frames one message may come in. */
  readonly maxMessageFragments: number;
  /** Seconds a started message may take to arrive whole; 0 turns the timeout off. */
  readonly messageTimeoutSeconds: number;
  /** MEMORY_LIMIT_BYTES; unset: read from the cgroup (memory-budget.ts planMemory). */
  readonly memoryLimitBytes: number | undefined;
  /** MEMORY_BUDGET_BYTES; unset: derived from the limit; 0: off. */
  readonly memoryBudgetBytes: number | undefined;
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

/** The settings of the drain, the rebalancer and the Kubernetes integration: what the library (graceful.ts) reads. */
export type GracefulConfig = Pick<
  Config,
  | 'drainWindowSeconds'
  | 'drainCloseTimeoutSeconds'
  | 'podName'
  | 'podNamespace'
  | 'podUid'
  | 'kubernetes'
  | 'kubernetesServiceHost'
  | 'kubeconfig'
  | 'podDeletionCostIntervalSeconds'
  | 'rebalance'
>;

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

/** Reads settings from `env` by the table; `problems` collects one line per bad value. */
export interface SettingsReader {
  readonly read: <N extends SettingName>(name: N) => SettingValue<N>;
  /** The trimmed text of a variable that is not a setting (KUBERNETES_SERVICE_HOST); empty counts as unset. */
  readonly raw: (name: string) => string | undefined;
  readonly problems: string[];
}

/**
 * A reader of settings from `env`. `label` names a setting in error messages
 * (its variable by default; the library names its option instead).
 */
export function settingsReader(env: Env, label: (name: SettingName) => string = (name) => name): SettingsReader {
  const problems: string[] = [];
  // An empty variable counts as unset: `env: [{name: PORT, value: ""}]` in a
  // manifest means "no opinion", not "port zero".
  const raw = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === '' ? undefined : value;
  };
  const read = <N extends SettingName>(name: N): SettingValue<N> => {
    const setting = SETTINGS[name] as Setting<SettingValue<N>>;
    const text = raw(name);
    if (text === undefined) return setting.default as SettingValue<N>;
    const value = setting.parser.parse(text);
    if (value !== undefined) return value;
    problems.push(`${label(name)}=${JSON.stringify(text)} is invalid: must be ${setting.parser.allowed}`);
    return setting.default as SettingValue<N>;
  };
  return { read, raw, problems };
}

/**
 * Reads and validates the configuration. Collects every problem before
 * throwing, so a user fixes all bad variables in one round.
 */
export function loadConfig(env: Env = process.env): Config {
  const { read, raw, problems } = settingsReader(env);

  const port = read('PORT');
  const metricsPort = read('METRICS_PORT');
  if (port !== 0 && port === metricsPort) {
    problems.push(`METRICS_PORT="${metricsPort}" is invalid: must differ from PORT, metrics are never served on the public port`);
  }
  const config: Config = {
    port,
    metricsPort,
    host: read('HOST'),
    wsPath: read('WS_PATH'),
    maxConnections: read('MAX_CONNECTIONS'),
    maxPayloadBytes: read('MAX_PAYLOAD_BYTES'),
    backpressureBytes: read('BACKPRESSURE_BYTES'),
    maxMessageFragments: read('MAX_MESSAGE_FRAGMENTS'),
    messageTimeoutSeconds: read('MESSAGE_TIMEOUT_SECONDS'),
    memoryLimitBytes: read('MEMORY_LIMIT_BYTES'),
    memoryBudgetBytes: read('MEMORY_BUDGET_BYTES'),
    allowedOrigins: read('ALLOWED_ORIGINS'),
    heartbeatIntervalSeconds: read('HEARTBEAT_INTERVAL_SECONDS'),
    headersTimeoutSeconds: read('HTTP_HEADERS_TIMEOUT_SECONDS'),
    logLevel: read('LOG_LEVEL'),
    ...readGracefulConfig({ read, raw }),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** The library's part of the settings, read the same way by the service and by the library. */
export function readGracefulConfig({ read, raw }: Pick<SettingsReader, 'read' | 'raw'>): GracefulConfig {
  return {
    drainWindowSeconds: read('DRAIN_WINDOW_SECONDS'),
    drainCloseTimeoutSeconds: read('DRAIN_CLOSE_TIMEOUT_SECONDS'),
    podName: read('POD_NAME') ?? hostname(),
    podNamespace: read('POD_NAMESPACE'),
    podUid: read('POD_UID'),
    kubernetes: read('KUBERNETES_INTEGRATION'),
    // Set by the kubelet in every pod, not a setting of ours: how `auto` detects a cluster.
    kubernetesServiceHost: raw('KUBERNETES_SERVICE_HOST'),
    kubeconfig: read('KUBECONFIG'),
    podDeletionCostIntervalSeconds: read('POD_DELETION_COST_INTERVAL_SECONDS'),
    rebalance: {
      enabled: read('REBALANCE') === 'on',
      podSelector: read('REBALANCE_POD_SELECTOR'),
      targetConnections: read('REBALANCE_TARGET_CONNECTIONS'),
      tolerance: read('REBALANCE_TOLERANCE'),
      rate: read('REBALANCE_RATE'),
      intervalSeconds: read('REBALANCE_INTERVAL_SECONDS'),
      cooldownSeconds: read('REBALANCE_COOLDOWN_SECONDS'),
    },
  };
}
