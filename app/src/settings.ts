// The service's settings: every environment variable it reads, declared once
// with its default, the values it allows, how it is parsed, what it does and
// which chart value sets it. config.ts loads them; the README's configuration
// table (scripts/readme-config.ts), the config tests and the chart's
// consistency test are all derived from this table, so they cannot drift.

/** How one variable's text becomes a value, and what the tests and docs need to know about it. */
export type Parser<T> = ParserBase<T> & (NumberBounds | Choices | { readonly kind: 'text' });

interface ParserBase<T> {
  /** What the value may be, as error messages and the README say it. */
  readonly allowed: string;
  /** The value, or undefined when `text` (trimmed, never empty) is not allowed. */
  parse(text: string): T | undefined;
}

/** Whole numbers, seconds or fractions between two bounds. */
export interface NumberBounds {
  readonly kind: 'integer' | 'seconds' | 'fraction';
  readonly min: number;
  readonly max: number;
  /** What 0 means when it is allowed outside [min, max] (the heartbeat: off). */
  readonly zeroMeans?: string;
}

/** One of a few words, case-insensitive; the value is the lower-case word. */
export interface Choices {
  readonly kind: 'choice';
  readonly values: readonly string[];
}

function integer(min: number, max: number): Parser<number> {
  return {
    kind: 'integer',
    min,
    max,
    allowed: `a whole number from ${min} to ${max}`,
    parse(text) {
      const value = /^\d+$/.test(text) ? Number(text) : NaN;
      return Number.isSafeInteger(value) && value >= min && value <= max ? value : undefined;
    },
  };
}

// Seconds accept decimals ("0.5") so tests and impatient users can use short windows.
function seconds(min: number, max: number, zeroMeans?: string): Parser<number> {
  return {
    kind: 'seconds',
    min,
    max,
    ...(zeroMeans === undefined ? {} : { zeroMeans }),
    allowed: `a number of seconds from ${min} to ${max}${zeroMeans === undefined ? '' : `, or 0 ${zeroMeans}`}`,
    parse(text) {
      const value = decimal(text);
      if (zeroMeans !== undefined && value === 0) return 0;
      return value >= min && value <= max ? value : undefined;
    },
  };
}

function fraction(min: number, max: number): Parser<number> {
  return {
    kind: 'fraction',
    min,
    max,
    allowed: `a number from ${min} to ${max} (a fraction: 0.2 is 20 %)`,
    parse(text) {
      const value = decimal(text);
      return value >= min && value <= max ? value : undefined;
    },
  };
}

function decimal(text: string): number {
  return /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
}

function choice<const V extends string>(values: readonly V[]): Parser<V> {
  return {
    kind: 'choice',
    values,
    allowed: `one of ${values.join(', ')}`,
    parse(text) {
      const lower = text.toLowerCase() as V;
      return values.includes(lower) ? lower : undefined;
    },
  };
}

/** Any text, or text that `parse` accepts. */
function text(allowed: string): Parser<string>;
function text<T>(allowed: string, parse: (text: string) => T | undefined): Parser<T>;
function text(allowed: string, parse: (text: string) => unknown = (t) => t): Parser<unknown> {
  return { kind: 'text', allowed, parse };
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const KUBERNETES_MODES = ['auto', 'on', 'off'] as const;
export type KubernetesMode = (typeof KUBERNETES_MODES)[number];

export const SWITCH = ['on', 'off'] as const;

/** Paths the public port serves itself; the WebSocket path may not shadow them. */
export const RESERVED_PATHS = ['/healthz', '/readyz', '/metrics'] as const;

/**
 * A URL path as RFC 3986 allows it (pchar and "/"), starting with "/",
 * without query or fragment, and not one of the paths the port serves itself.
 */
const WS_PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/;

/** An equality-based label selector, the only kind the fleet view sends: k=v,k=v. */
const LABEL_SELECTOR = /^[A-Za-z0-9._/-]+=[A-Za-z0-9._-]*(,[A-Za-z0-9._/-]+=[A-Za-z0-9._-]*)*$/;

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

/** `*` (any origin: an empty list) or a comma-separated list of origins. */
function origins(text: string): string[] | undefined {
  if (text === '*') return [];
  const list: string[] = [];
  for (const entry of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const origin = canonicalOrigin(entry);
    if (origin === undefined) return undefined;
    list.push(origin);
  }
  return list;
}

/** One setting: its parser, its default (undefined: unset), its meaning and the chart value that sets it. */
export interface Setting<T> {
  readonly parser: Parser<T>;
  readonly default: T | undefined;
  /** The default as the README shows it, where the value itself would not say it (computed or unset). */
  readonly defaultText?: string;
  /** One line: what the setting does. Markdown. */
  readonly meaning: string;
  /**
   * How the Helm chart sets it: the values.yaml key it comes from, or why
   * the chart computes it or leaves it alone. The chart tests check each key
   * against this table.
   */
  readonly chart: ChartValue | { readonly computed: string } | { readonly unset: string };
}

/** A values.yaml key that sets the variable as it is (booleans as on/off). */
export interface ChartValue {
  readonly value: string;
  /** Where the chart allows less than the service, and why. */
  readonly narrower?: { readonly min: number; readonly why: string };
}

function setting<T>(parser: Parser<T>, defaultValue: T | undefined, meaning: string, chart: Setting<T>['chart'], defaultText?: string): Setting<T> {
  return { parser, default: defaultValue, meaning, chart, ...(defaultText === undefined ? {} : { defaultText }) };
}

/** Every environment variable of the service, in the order the README lists them. */
export const SETTINGS = {
  PORT: setting(integer(0, 65535), 8000, 'public port: WebSocket, `/healthz`, `/readyz` (0 picks a free port)', {
    value: 'config.port',
    narrower: { min: 1, why: 'the probes and the Service need a fixed port' },
  }),
  METRICS_PORT: setting(integer(0, 65535), 9100, 'Prometheus `/metrics`; never served on the public port; must differ from `PORT`', {
    value: 'config.metricsPort',
    narrower: { min: 1, why: 'the monitors need a fixed port' },
  }),
  HOST: setting(
    text('an address to bind (IP address or host name)'),
    undefined,
    'address both ports bind to',
    { unset: 'a pod listens on all its addresses' },
    'all addresses',
  ),
  WS_PATH: setting(
    text(`a path starting with "/", without query or fragment, not ${RESERVED_PATHS.join(', ')}`, (t): string | undefined =>
      WS_PATH.test(t) && !(RESERVED_PATHS as readonly string[]).includes(t) ? t : undefined,
    ),
    '/echo',
    'where the WebSocket lives; other paths get 404',
    { value: 'config.wsPath' },
  ),
  MAX_CONNECTIONS: setting(integer(1, 1_000_000), 10_000, 'open sockets per process; past it an upgrade gets HTTP 503 + `Retry-After`', {
    value: 'config.maxConnections',
  }),
  MAX_PAYLOAD_BYTES: setting(integer(1, 256 * 1024 * 1024), 64 * 1024, 'largest message (all fragments together); larger ones are closed with 1009', {
    value: 'config.maxPayloadBytes',
  }),
  // At least the socket's own 16 KiB buffer: the check starts once that is full (connections.ts).
  BACKPRESSURE_BYTES: setting(
    integer(16 * 1024, 1024 * 1024 * 1024),
    1024 * 1024,
    'bytes queued for one client above which the server stops reading from it until it reads its echoes',
    { value: 'config.backpressureBytes' },
  ),
  MAX_MESSAGE_FRAGMENTS: setting(
    integer(1, 16_384),
    128,
    'frames one message may come in; more are closed with 1008 (each held fragment costs a few hundred bytes besides its payload)',
    { value: 'config.maxMessageFragments' },
  ),
  MESSAGE_TIMEOUT_SECONDS: setting(
    seconds(0.1, 3600, 'to turn it off'),
    15,
    'a message must arrive whole within this once its first byte has; a client that holds one open longer is closed with 1008',
    { value: 'config.messageTimeoutSeconds' },
  ),
  MEMORY_LIMIT_BYTES: setting(
    integer(1, 2 ** 50),
    undefined,
    "the container's memory limit, from which the memory budget is derived",
    { computed: 'downward API: resources.limits.memory, when it is set' },
    "read from the container's cgroup",
  ),
  MEMORY_BUDGET_BYTES: setting(
    integer(0, 2 ** 50),
    undefined,
    'bytes clients may make the process hold (queued echoes, unfinished messages, kernel socket buffers) before it refuses upgrades and then closes the largest holders; 0 turns the budget off',
    { computed: 'config.memoryBudgetBytes when set (null leaves the service to derive it; the chart checks the limit the same way)' },
    'derived from the memory limit (see Memory)',
  ),
  ALLOWED_ORIGINS: setting(
    text('"*" or a comma-separated list of origins like https://app.example.com,http://localhost:3000', origins),
    [],
    'browsers whose `Origin` is not listed get HTTP 403; clients that send no `Origin` (not browsers) are allowed',
    { value: 'config.allowedOrigins' },
    '`*` (any)',
  ),
  HEARTBEAT_INTERVAL_SECONDS: setting(
    seconds(0.1, 3600, 'to turn the heartbeat off'),
    30,
    'ping every interval; a peer that has not answered the previous ping is terminated',
    { value: 'config.heartbeatIntervalSeconds' },
  ),
  DRAIN_WINDOW_SECONDS: setting(seconds(0, 3600), 20, 'on SIGTERM, spread the 1012 closes over this window', { value: 'drain.windowSeconds' }),
  DRAIN_CLOSE_TIMEOUT_SECONDS: setting(seconds(0.1, 600), 5, 'after the window, wait this long for close handshakes, then terminate', {
    value: 'drain.closeTimeoutSeconds',
  }),
  HTTP_HEADERS_TIMEOUT_SECONDS: setting(seconds(0.1, 600), 10, 'a client must send its whole request head within this (slowloris guard)', {
    value: 'config.httpHeadersTimeoutSeconds',
  }),
  LOG_LEVEL: setting(choice(LOG_LEVELS), 'info', 'pino level; `debug` logs each connection open/close, never each message', { value: 'config.logLevel' }),
  POD_NAME: setting(
    text('any name'),
    undefined,
    'replica name in `X-Served-By`, logs and Kubernetes calls',
    { computed: 'downward API: metadata.name' },
    'the host name',
  ),
  POD_NAMESPACE: setting(text('any namespace'), undefined, 'namespace for Kubernetes calls (else read from the service account)', {
    computed: 'downward API: metadata.namespace',
  }),
  POD_UID: setting(text('any UID'), undefined, "the pod's UID, so `kubectl describe pod` shows its Events", { computed: 'downward API: metadata.uid' }),
  KUBERNETES_INTEGRATION: setting(choice(KUBERNETES_MODES), 'auto', 'Kubernetes Events and pod-deletion-cost; `auto` turns it on inside a cluster', {
    value: 'kubernetesIntegration.enabled',
  }),
  KUBECONFIG: setting(text('a kubeconfig file'), undefined, 'with `KUBERNETES_INTEGRATION=on` outside a cluster: which API server to talk to', {
    unset: 'in a pod the service account is used',
  }),
  POD_DELETION_COST_INTERVAL_SECONDS: setting(
    seconds(1, 3600),
    30,
    'at most one pod-deletion-cost patch per this many seconds (±10 % jitter), and only on a 5 % change: a fleet of N pods sends at most N / interval patches a second',
    { value: 'kubernetesIntegration.deletionCostIntervalSeconds' },
  ),
  REBALANCE: setting(choice(SWITCH), 'on', 'shed connections above the fair share after a scale-up (see Rebalancing)', { value: 'rebalance.enabled' }),
  REBALANCE_POD_SELECTOR: setting(
    text('an equality label selector like app.kubernetes.io/name=ws-echo,app.kubernetes.io/instance=echo', (t): string | undefined =>
      LABEL_SELECTOR.test(t) ? t : undefined,
    ),
    undefined,
    "label selector of the Deployment's pods: the fleet view",
    { computed: "the Deployment's selector labels, when rebalance.fleetView is on" },
  ),
  REBALANCE_TARGET_CONNECTIONS: setting(integer(0, 1_000_000), 0, 'fair share when the fleet cannot be seen (the HPA target); 0: none', {
    computed: 'rebalance.targetConnections, else autoscaling.targetConnectionsPerPod with an autoscaler',
  }),
  REBALANCE_TOLERANCE: setting(fraction(0, 10), 0.2, 'shed only above share × (1 + tolerance)', { value: 'rebalance.tolerance' }),
  REBALANCE_RATE: setting(fraction(0.001, 1), 0.05, 'fraction of its connections a pod may close per interval', { value: 'rebalance.rate' }),
  REBALANCE_INTERVAL_SECONDS: setting(seconds(0.1, 3600), 10, 'seconds between rounds (and fleet lists)', { value: 'rebalance.intervalSeconds' }),
  REBALANCE_COOLDOWN_SECONDS: setting(seconds(0, 86_400), 60, 'after shedding stops, wait this long before it may start again', {
    value: 'rebalance.cooldownSeconds',
  }),
} as const satisfies Record<string, Setting<unknown>>;

export type SettingName = keyof typeof SETTINGS;
/** The parsed type of a setting. */
export type SettingValue<N extends SettingName> = Exclude<ReturnType<(typeof SETTINGS)[N]['parser']['parse']>, undefined>;
