// The public library (`ws-echo/graceful`): ws-echo's drain, rebalancing and
// Kubernetes integration for any `ws` server. The app keeps its own
// http(s).Server, WebSocketServer(s), routes and messages; `attach` wraps the
// `handleUpgrade` of the WebSocketServers it is given, so it sees exactly the
// sockets they accept (with `server:` or `noServer: true` alike) and refuses
// their upgrades while the pod drains or sheds, and touches nothing else.
// ws-echo's own service (service.ts) is built on it.
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { RETRY_AFTER_SECONDS } from './admission.js';
import { ConfigError, readGracefulConfig, settingsReader, type GracefulConfig } from './config.js';
import { DeletionCostReporter } from './deletion-cost.js';
import { DrainController, DrainProgress, type DrainState, type DrainSummary, type PodEvents } from './drain.js';
import { writeHttpError } from './http-error.js';
import { connectToCluster } from './kube.js';
import type { ApiCallCounter } from './kube-api.js';
import { createLogger, type Logger } from './logger.js';
import { Rebalancer, RebalanceStatus, type FleetView } from './rebalance.js';
import type { SettingName } from './settings.js';
import { SERVICE_RESTART, TRY_AGAIN_LATER } from './sockets.js';

export { ConfigError, DrainProgress, RebalanceStatus, SERVICE_RESTART, TRY_AGAIN_LATER, type DrainState, type DrainSummary };

/** How often the deletion-cost reporter looks at the connection count. */
const DELETION_COST_CHECK_MS = 1000;
/** After a failed pod-deletion-cost patch, this long before the next try. */
const DELETION_COST_BACKOFF_MS = 60_000;

/**
 * The settings, each named as the camelCase of the environment variable that
 * sets it in ws-echo (and in the chart), with the same default and range.
 */
export interface GracefulSettings {
  /** DRAIN_WINDOW_SECONDS (default 20): the 1012 closes are spread over this many seconds. */
  readonly drainWindowSeconds?: number | undefined;
  /** DRAIN_CLOSE_TIMEOUT_SECONDS (default 5): after the window, this long for close handshakes, then terminate. */
  readonly drainCloseTimeoutSeconds?: number | undefined;
  /** POD_NAME (default the host name): the pod, for Events, pod-deletion-cost and the fleet view. */
  readonly podName?: string | undefined;
  /** POD_NAMESPACE (default the service account's namespace). */
  readonly podNamespace?: string | undefined;
  /** POD_UID: lets `kubectl describe pod` show the drain's Events. */
  readonly podUid?: string | undefined;
  /** KUBERNETES_INTEGRATION (default auto: on inside a cluster): Events, pod-deletion-cost, the fleet view. */
  readonly kubernetesIntegration?: 'auto' | 'on' | 'off' | undefined;
  /** KUBECONFIG: with kubernetesIntegration 'on' outside a cluster. */
  readonly kubeconfig?: string | undefined;
  /** POD_DELETION_COST_INTERVAL_SECONDS (default 30): at most one patch per this many seconds. */
  readonly podDeletionCostIntervalSeconds?: number | undefined;
  /** REBALANCE (default on): shed connections above the fair share after a scale-up. */
  readonly rebalance?: 'on' | 'off' | boolean | undefined;
  /** REBALANCE_POD_SELECTOR: label selector of the Deployment's pods (the fleet view). */
  readonly rebalancePodSelector?: string | undefined;
  /** REBALANCE_TARGET_CONNECTIONS (default 0: none): fair share when the fleet cannot be seen. */
  readonly rebalanceTargetConnections?: number | undefined;
  /** REBALANCE_TOLERANCE (default 0.2): shed only above share × (1 + tolerance). */
  readonly rebalanceTolerance?: number | undefined;
  /** REBALANCE_RATE (default 0.05): fraction of the connections that may be closed per interval. */
  readonly rebalanceRate?: number | undefined;
  /** REBALANCE_INTERVAL_SECONDS (default 10). */
  readonly rebalanceIntervalSeconds?: number | undefined;
  /** REBALANCE_COOLDOWN_SECONDS (default 60). */
  readonly rebalanceCooldownSeconds?: number | undefined;
}

/** Each setting and the variable it stands for: one table for reading options and the environment alike. */
const SETTING_VARIABLES = {
  drainWindowSeconds: 'DRAIN_WINDOW_SECONDS',
  drainCloseTimeoutSeconds: 'DRAIN_CLOSE_TIMEOUT_SECONDS',
  podName: 'POD_NAME',
  podNamespace: 'POD_NAMESPACE',
  podUid: 'POD_UID',
  kubernetesIntegration: 'KUBERNETES_INTEGRATION',
  kubeconfig: 'KUBECONFIG',
  podDeletionCostIntervalSeconds: 'POD_DELETION_COST_INTERVAL_SECONDS',
  rebalance: 'REBALANCE',
  rebalancePodSelector: 'REBALANCE_POD_SELECTOR',
  rebalanceTargetConnections: 'REBALANCE_TARGET_CONNECTIONS',
  rebalanceTolerance: 'REBALANCE_TOLERANCE',
  rebalanceRate: 'REBALANCE_RATE',
  rebalanceIntervalSeconds: 'REBALANCE_INTERVAL_SECONDS',
  rebalanceCooldownSeconds: 'REBALANCE_COOLDOWN_SECONDS',
} as const satisfies Record<keyof GracefulSettings, SettingName>;

/** The environment variables the library reads (with `env`), in the order of GracefulSettings. */
export const GRACEFUL_VARIABLES: readonly SettingName[] = Object.values(SETTING_VARIABLES);

/** The Kubernetes calls the library makes: ws-echo's KubernetesApi, or anything with the same three methods. */
export interface PodApi extends PodEvents, FleetView {
  patchDeletionCost(cost: number): Promise<boolean>;
}

export interface GracefulOptions extends GracefulSettings {
  /** The app's WebSocketServer, or several sharing one http server; `server:` and `noServer: true` alike. */
  readonly wss: WebSocketServer | readonly WebSocketServer[];
  /** The http(s) server: closed once the drain is over, so that the process can end on its own. */
  readonly server?: HttpServer | HttpsServer;
  /** Where settings not given as options are read from, by their variable names (e.g. `process.env`, as the chart sets it). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** SIGTERM starts the drain, a second SIGTERM or SIGINT closes everything at once, and the process exits 0 at the end. Default false: the app owns its signals and calls `drain()`. */
  readonly handleSignals?: boolean;
  /** Called with 0 once the drain is over. Default: `process.exit` with handleSignals, else nothing. */
  readonly exit?: (code: number) => void;
  /** A pino logger (the library logs as module drain, rebalance, kube). Default: pino JSON lines on stdout at info. */
  readonly logger?: Logger;
  /**
   * Where the state that decides upgrades is kept, for an app that combines
   * it with rules of its own (ws-echo does). Default: a private object.
   */
  readonly admission?: { accepting: boolean; rebalancing: boolean };
  /** The Kubernetes calls, for an app that has made its own client (or a test): skips the detection. */
  readonly cluster?: PodApi | undefined;
  /** Counts each Kubernetes API call by result (ws-echo's websocket_kubernetes_api_requests_total). */
  readonly apiCallCounter?: ApiCallCounter;
  /** Start rebalancing and pod-deletion-cost reports at once (default true). */
  readonly startBackground?: boolean;
}

export interface GracefulEvents {
  /** The drain began: readiness is now false, upgrades are refused. */
  drain: [info: { readonly reason: string; readonly connections: number }];
  /** Just before the library closes `ws` with `code` (1012 drain, 1013 rebalancing): send your own goodbye here. */
  closing: [ws: WebSocket, code: number];
  /** The drain is over; `exit(0)` follows. */
  finished: [summary: DrainSummary];
  /** An upgrade refused with 503 + Retry-After while draining or shedding. */
  refused: [reason: 'draining' | 'rebalancing', request: IncomingMessage];
}

/**
 * Attaches the drain and the rebalancer to an app's `ws` servers. Resolves
 * once the Kubernetes integration is settled (it is loaded only when on).
 * Throws a ConfigError naming every bad setting.
 *
 * @example
 * const graceful = await attach({ server, wss, env: process.env, handleSignals: true });
 * // in the app's request handler:
 * if (req.url === '/readyz') return graceful.readinessHandler(req, res);
 */
export async function attach(options: GracefulOptions): Promise<Graceful> {
  const config = gracefulConfig(options);
  const logger = options.logger ?? createLogger('info', config.podName);
  const counter = options.apiCallCounter ?? { countKubeApi: () => undefined };
  const cluster = 'cluster' in options ? options.cluster : await connectToCluster(config, logger, counter);
  return new Graceful(options, config, logger, cluster);
}

/** The settings from the options, then `env`, then the defaults; every problem in one ConfigError. */
export function gracefulConfig(options: GracefulSettings & Pick<GracefulOptions, 'env'>): GracefulConfig {
  const texts: Record<string, string | undefined> = {};
  const fromOption = new Set<SettingName>();
  for (const [option, variable] of Object.entries(SETTING_VARIABLES) as [keyof GracefulSettings, SettingName][]) {
    const value = options[option];
    if (value === undefined) {
      texts[variable] = options.env?.[variable];
    } else {
      texts[variable] = typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value);
      fromOption.add(variable);
    }
  }
  // How `auto` detects a cluster, as in ws-echo: set by the kubelet in every pod.
  texts.KUBERNETES_SERVICE_HOST = (options.env ?? process.env).KUBERNETES_SERVICE_HOST;
  const optionOf = Object.fromEntries(Object.entries(SETTING_VARIABLES).map(([option, variable]) => [variable, option]));
  const reader = settingsReader(texts, (variable) => (fromOption.has(variable) ? `option ${optionOf[variable]}` : variable));
  const config = readGracefulConfig(reader);
  if (reader.problems.length > 0) throw new ConfigError(reader.problems);
  return config;
}

/** The handle `attach` returns. */
export class Graceful extends EventEmitter<GracefulEvents> {
  /** The drain state machine (its `progress` holds the numbers for metrics). */
  readonly drainController: DrainController;
  readonly rebalancer: Rebalancer;
  /** The settings in effect. */
  readonly config: GracefulConfig;
  readonly #sockets = new Set<WebSocket>();
  readonly #admission: { accepting: boolean; rebalancing: boolean };
  readonly #deletionCost: DeletionCostReporter | undefined;
  readonly #log: Logger;
  readonly #restore: (() => void)[] = [];

  /** Use `attach`. */
  constructor(options: GracefulOptions, config: GracefulConfig, logger: Logger, cluster: PodApi | undefined) {
    super();
    this.config = config;
    this.#log = logger;
    this.#admission = options.admission ?? { accepting: true, rebalancing: false };
    const sockets = { get size() { return set.size; }, snapshot: () => [...set] }; // prettier-ignore
    const set = this.#sockets;
    const onClosing = (ws: unknown, code: number): void => this.#emitSafely('closing', ws as WebSocket, code);
    this.#deletionCost =
      cluster &&
      new DeletionCostReporter({
        patch: (cost) => cluster.patchDeletionCost(cost),
        connectionCount: () => set.size,
        minIntervalMs: config.podDeletionCostIntervalSeconds * 1000,
        checkIntervalMs: DELETION_COST_CHECK_MS,
        failureBackoffMs: DELETION_COST_BACKOFF_MS,
      });
    this.rebalancer = new Rebalancer({
      sockets,
      admission: this.#admission,
      config: config.rebalance,
      podName: config.podName,
      fleet: cluster,
      logger,
      onClosing,
    });
    const exit = options.exit ?? (options.handleSignals ? (code: number) => process.exit(code) : () => undefined);
    this.drainController = new DrainController({
      sockets,
      admission: this.#admission,
      windowSeconds: config.drainWindowSeconds,
      closeTimeoutSeconds: config.drainCloseTimeoutSeconds,
      logger,
      exit,
      events: cluster,
      onBegin: (reason) => {
        // From now on the drain alone closes sockets and decides about upgrades.
        this.#deletionCost?.stop();
        this.rebalancer.stop();
        this.#emitSafely('drain', { reason, connections: set.size });
      },
      onClosing,
      onFinished: (summary) => {
        this.#emitSafely('finished', summary);
        options.server?.close();
      },
    });
    for (const wss of Array.isArray(options.wss) ? (options.wss as readonly WebSocketServer[]) : [options.wss as WebSocketServer]) this.#wrap(wss);
    if (options.handleSignals) {
      const onSignal = (signal: NodeJS.Signals): void => this.drainController.onSignal(signal);
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      this.#restore.push(() => process.off('SIGTERM', onSignal).off('SIGINT', onSignal));
    }
    if (options.startBackground ?? true) this.startBackground();
  }

  /** serving → draining → closing → exited. */
  get state(): DrainState {
    return this.drainController.state;
  }

  /** For the app's readiness probe: false from the first moment of the drain. */
  get ready(): boolean {
    return this.#admission.accepting;
  }

  /** True while the pod holds more than its fair share and sheds (upgrades refused, readiness unchanged). */
  get shedding(): boolean {
    return this.#admission.rebalancing;
  }

  /** Open sockets of the servers attached to. */
  get connections(): number {
    return this.#sockets.size;
  }

  /** The drain's numbers, for the app's metrics. */
  get drainProgress(): DrainProgress {
    return this.drainController.progress;
  }

  /** The rebalancer's numbers, for the app's metrics. */
  get rebalanceStatus(): RebalanceStatus {
    return this.rebalancer.status;
  }

  /** A readiness route: 200 "ready" while serving, 503 "draining" after. */
  readonly readinessHandler = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(this.ready ? 'ready\n' : 'draining\n');
  };

  /**
   * Starts the drain, as SIGTERM would, and resolves with its summary when it
   * is over. A second call closes every socket at once, as a second signal.
   */
  drain(reason = 'drain()'): Promise<DrainSummary> {
    this.drainController.onSignal(reason);
    return this.drainController.finished;
  }

  /** Starts the rebalancer's rounds and the deletion-cost reports (done by `attach` unless startBackground is false). */
  startBackground(): void {
    this.#deletionCost?.start();
    this.rebalancer.start();
  }

  /** Stops the background work and gives the servers back as they were; open sockets stay open. */
  detach(): void {
    this.#deletionCost?.stop();
    this.rebalancer.stop();
    for (const restore of this.#restore.splice(0)) restore();
  }

  // Every upgrade of this server passes here, whoever routes it (ws itself
  // with `server:`, or the app with `noServer: true`).
  #wrap(wss: WebSocketServer): void {
    // An app may have wrapped it already: put back exactly what was there.
    const own = Object.getOwnPropertyDescriptor(wss, 'handleUpgrade');
    const original = wss.handleUpgrade.bind(wss);
    wss.handleUpgrade = (req, socket, head, callback) => {
      const refusal = this.#refusal();
      // A request this server would not handle gets its own answer from ws.
      if (refusal !== undefined && wss.shouldHandle(req) !== false) return this.#refuse(refusal, req, socket);
      original(req, socket, head, (ws, request) => {
        this.#track(ws);
        callback(ws, request);
      });
    };
    this.#restore.push(() => {
      if (own) Object.defineProperty(wss, 'handleUpgrade', own);
      else delete (wss as Partial<WebSocketServer>).handleUpgrade;
    });
  }

  #refusal(): 'draining' | 'rebalancing' | undefined {
    if (!this.#admission.accepting) return 'draining';
    if (this.#admission.rebalancing) return 'rebalancing';
    return undefined;
  }

  #refuse(reason: 'draining' | 'rebalancing', req: IncomingMessage, socket: Duplex): void {
    this.#emitSafely('refused', reason, req);
    const message = reason === 'draining' ? 'this replica is shutting down; retry' : 'this replica holds more than its share of connections; retry on another';
    writeHttpError(socket, 503, message, { 'Retry-After': String(RETRY_AFTER_SECONDS) });
  }

  #track(ws: WebSocket): void {
    this.#sockets.add(ws);
    ws.once('close', () => this.#sockets.delete(ws));
    // A handshake that finished after the drain took its list: close it now, as the drain would have.
    if (this.state === 'draining' || this.state === 'closing') {
      this.#emitSafely('closing', ws, SERVICE_RESTART);
      ws.close(SERVICE_RESTART, 'service restart');
      this.drainController.progress.closeFramesSent++;
    }
  }

  // A listener that throws must not stop the drain halfway.
  #emitSafely<E extends keyof GracefulEvents>(event: E, ...args: GracefulEvents[E]): void {
    try {
      (this.emit as (event: E, ...args: GracefulEvents[E]) => boolean)(event, ...args);
    } catch (err) {
      this.#log.error({ err, event }, 'a graceful event listener threw; carrying on');
    }
  }
}
