// What the drain and the rebalancer need of the sockets they close: a set
// they can look at and, per socket, its state, a close and a terminate. A
// `ws` WebSocket is one; so is a fake in the unit tests.

/** WebSocket.OPEN (the WHATWG readyState). */
export const OPEN = 1;

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
