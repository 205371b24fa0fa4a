// What the drain and the rebalancer need of the sockets they close: a set
// they can look at and, per socket, its state, a close and a terminate. A
// `ws` WebSocket is one; so is a fake in the unit tests.

/** WebSocket.OPEN (the WHATWG readyState). */
export const OPEN = 1;

// The close codes the server chooses itself (RFC 6455 §7.4.1 and the IANA registry).
/** 1008: the peer broke a rule of ours (a message that takes too long to arrive). */
export const POLICY_VIOLATION = 1008;
/** 1012: the server restarts; reconnect (the drain). */
export const SERVICE_RESTART = 1012;
/** 1013: try again later; reconnect (rebalancing, memory overload). */
export const TRY_AGAIN_LATER = 1013;

export interface ClosableSocket {
  readonly readyState: number;
  /** Sends a close frame with `code`; the socket leaves the set when the handshake ends. */
  close(code: number, reason: string): void;
  /** Destroys the TCP connection at once, without a close frame. */
  terminate(): void;
}

export interface SocketSet<S extends ClosableSocket = ClosableSocket> {
  readonly size: number;
  /** A copy of the open sockets, which the caller may reorder. */
  snapshot(): S[];
}
