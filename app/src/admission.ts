// Whether an upgrade request becomes a WebSocket: a pure function of the
// request, the pod's state and the policy, so every rule and its order can be
// read here and tested without a socket. server.ts carries out the decision.
import type { RejectReason } from './metrics.js';
import { canonicalOrigin } from './settings.js';

/** Whether the public port takes new sockets; the drain controller and the rebalancer flip it. */
export interface Admission {
  /** False once the pod drains: /readyz answers 503 and upgrades get 503. */
  accepting: boolean;
  /** True while the pod sheds load after a scale-up: upgrades get 503, readiness stays 200. */
  rebalancing: boolean;
  /** True while clients hold more than the soft watermark of the memory budget (overload.ts): upgrades get 503. */
  memoryPressure: boolean;
}

/** What the decision looks at in an upgrade request. */
export interface UpgradeRequest {
  readonly host: string | undefined;
  /** The path without the query string. */
  readonly path: string;
  readonly origin: string | undefined;
}

export interface AdmissionPolicy {
  readonly wsPath: string;
  /** Canonical origins allowed to open a socket; empty: any. */
  readonly allowedOrigins: ReadonlySet<string>;
  readonly maxConnections: number;
}

export interface Refusal {
  readonly admit: false;
  readonly reason: RejectReason;
  readonly status: number;
  readonly message: string;
  /** 503s that a retry may cure: answered with Retry-After, which proxies and clients honour. */
  readonly retryLater: boolean;
}

export type Decision = { readonly admit: true } | Refusal;

/** Seconds a client refused with 503 (draining, short of memory, rebalancing, full) is told to wait (Retry-After). */
export const RETRY_AFTER_SECONDS = 1;

const ADMIT: Decision = { admit: true };

function refuse(reason: RejectReason, status: number, message: string, retryLater = false): Refusal {
  return { admit: false, reason, status, message, retryLater };
}

/**
 * The decision for one upgrade. The order matters: a malformed or misrouted
 * request is refused for what it is (400, 404) even by a draining pod; a
 * draining pod refuses before it looks at the origin, so a retry elsewhere
 * gets the real answer; the connection limit comes last.
 */
export function decideUpgrade(request: UpgradeRequest, state: Admission & { readonly connections: number }, policy: AdmissionPolicy): Decision {
  // RFC 6455 §4.2.1: a handshake without Host is refused. Node answers 400
  // itself for plain requests (requireHostHeader) but hands upgrades to us.
  if (request.host === undefined) return refuse('invalid_handshake', 400, 'missing Host header');
  if (request.path !== policy.wsPath) return refuse('path', 404, `no WebSocket endpoint here; connect to ${policy.wsPath}`);
  if (!state.accepting) return refuse('draining', 503, 'this replica is shutting down; retry', true);
  // Browsers always send Origin; clients without one are not browsers, so
  // cross-site WebSocket hijacking does not apply to them.
  const origin = request.origin;
  if (origin !== undefined && policy.allowedOrigins.size > 0 && !policy.allowedOrigins.has(canonicalOrigin(origin) ?? '')) {
    return refuse('origin', 403, `origin ${origin} is not allowed`);
  }
  if (state.memoryPressure) return refuse('memory', 503, 'this replica is short of memory; retry on another', true);
  if (state.rebalancing) return refuse('rebalancing', 503, 'this replica holds more than its share of connections; retry on another', true);
  if (state.connections >= policy.maxConnections) return refuse('max_connections', 503, 'connection limit reached; retry on another replica', true);
  return ADMIT;
}
