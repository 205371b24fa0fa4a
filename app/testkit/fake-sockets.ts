// Sockets without a network, for the unit tests of the drain and the
// rebalancer: each records the close it was asked for, and leaves the set
// when its close handshake would finish (at once, or never for a mute peer).
import { OPEN, type ClosableSocket, type SocketSet } from '../src/sockets.js';

export class FakeSocket implements ClosableSocket {
  readyState = OPEN;
  /** The close code asked for, if any. */
  closedWith: number | undefined;
  terminated = false;

  constructor(
    private readonly set: FakeSocketSet,
    /** A mute peer never answers the close frame: it stays until terminated. */
    readonly mute = false,
  ) {}

  close(code: number): void {
    this.closedWith = code;
    this.readyState = 2; // CLOSING
    if (!this.mute) this.set.remove(this);
  }

  terminate(): void {
    this.terminated = true;
    this.set.remove(this);
  }
}

export class FakeSocketSet implements SocketSet<FakeSocket> {
  readonly #open = new Set<FakeSocket>();
  /** Every socket ever added, in order. */
  readonly all: FakeSocket[] = [];

  /** Adds `count` sockets (mute ones never finish a close handshake). */
  add(count: number, mute = false): FakeSocket[] {
    const added = Array.from({ length: count }, () => new FakeSocket(this, mute));
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
