// Sockets without a network, for the unit tests of the drain, the
// rebalancer and the overload guard: each records the close it was asked
// for, and leaves its set when its close handshake would finish (at once, or
// never for a mute peer).
import { OPEN, type ClosableSocket, type SocketSet } from '../src/sockets.js';

export class FakeSocket implements ClosableSocket {
  readyState = OPEN;
  /** The close code asked for, if any. */
  closedWith: number | undefined;
  terminated = false;

  constructor(
    /** Called when the socket leaves: its close handshake finished, or it was terminated. */
    private readonly gone: (socket: FakeSocket) => void,
    /** A mute peer never answers the close frame: it stays until terminated. */
    readonly mute = false,
  ) {}

  close(code: number): void {
    this.closedWith = code;
    this.readyState = 2; // CLOSING
    if (!this.mute) this.gone(this);
  }

  terminate(): void {
    this.terminated = true;
    this.gone(this);
  }
}

export class FakeSocketSet implements SocketSet<FakeSocket> {
  readonly #open = new Set<FakeSocket>();
  /** Every socket ever added, in order. */
  readonly all: FakeSocket[] = [];

  /** Adds `count` sockets (mute ones never finish a close handshake). */
  add(count: number, mute = false): FakeSocket[] {
    const added = Array.from({ length: count }, () => new FakeSocket((s) => this.remove(s), mute));
    for (const socket of added) this.#open.add(socket);
    this.all.push(...added);
    return added;
  }

  remove(socket: FakeSocket): void {
    if (this.#open.delete(socket)) socket.readyState = 3; // CLOSED
  }

  get size(): number {
    return this.#open.size;
  }

  snapshot(): FakeSocket[] {
    return [...this.#open];
  }

  /** How many sockets were asked to close with `code`. */
  closedWith(code: number): number {
    return this.all.filter((s) => s.closedWith === code).length;
  }
}

/** A socket as the overload guard sees it, with the bytes and states a test sets. */
export class FakeGuardedSocket extends FakeSocket {
  bufferedAmount = 0;
  inbound = 0;
  inProgress = false;
  messagesReceived = 0;
  backpressured = false;
  pausedSince: number | undefined = undefined;
  needsDrain = false;
  messageSince: number | undefined = undefined;
  messagesAtMark = 0;
  closeDeadline: number | undefined = undefined;

  inboundBytes(): number {
    return this.inbound;
  }

  // As in ws: held inbound bytes mean a message is under way.
  messageInProgress(): boolean {
    return this.inProgress || this.inbound > 0;
  }
}

/** A set of FakeGuardedSockets, iterable as the guard reads the registry. */
export class FakeGuardedSocketSet {
  readonly #open = new Set<FakeGuardedSocket>();

  add(fields: Partial<FakeGuardedSocket> = {}, mute = false): FakeGuardedSocket {
    const socket = Object.assign(new FakeGuardedSocket((s) => this.remove(s as FakeGuardedSocket), mute), fields);
    this.#open.add(socket);
    return socket;
  }

  remove(socket: FakeGuardedSocket): void {
    if (this.#open.delete(socket)) socket.readyState = 3; // CLOSED
  }

  values(): Iterable<FakeGuardedSocket> {
    return [...this.#open];
  }

  get size(): number {
    return this.#open.size;
  }
}
