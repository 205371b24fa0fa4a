// What one connection makes the process hold on its receiving side, read
// from ws's Receiver. ws exposes the sending side (bufferedAmount) but not
// this, so these functions read the Receiver's own fields (ws/lib/receiver.js,
// ws 8.x): the raw chunks not yet parsed (_bufferedBytes, _buffers), the
// fragments of the message being assembled (_messageLength, _fragments), and
// where the parser is (_state, _fragmented). Each fragment and chunk is a
// Buffer object besides its bytes, which is what many tiny fragments cost
// (measured: about 230 bytes each for 8-byte fragments), so parts count too.
//
// integration/overload.test.ts checks these readings against a real ws
// socket fed known frames: a ws upgrade that renames the fields fails it.
// At run time a socket whose Receiver lacks them counts 0 and
// `receiverReadable` says so (connections.ts logs it once).
import type { WebSocket } from 'ws';

/** Bytes counted for each fragment or chunk object besides its payload. */
export const PART_OVERHEAD_BYTES = 256;

/** The parser waits for the first byte of a frame (ws's GET_INFO). */
const GET_INFO = 0;

interface ReceiverFields {
  _bufferedBytes: number;
  _buffers: unknown[];
  _messageLength: number;
  _fragments: unknown[];
  _fragmented: number;
  _state: number;
}

function receiverOf(ws: WebSocket): ReceiverFields | undefined {
  return (ws as unknown as { _receiver?: ReceiverFields })._receiver;
}

/** Whether this ws exposes the Receiver fields read here (checked once per process on a real socket). */
export function receiverReadable(ws: WebSocket): boolean {
  const r = receiverOf(ws);
  return (
    r !== undefined &&
    typeof r._bufferedBytes === 'number' &&
    Array.isArray(r._buffers) &&
    typeof r._messageLength === 'number' &&
    Array.isArray(r._fragments) &&
    typeof r._fragmented === 'number' &&
    typeof r._state === 'number'
  );
}

/** Bytes of a message the peer has begun and not finished, with their parts' overhead; 0 between messages. */
export function inboundBytes(ws: WebSocket): number {
  const r = receiverOf(ws);
  if (r === undefined || r._buffers === undefined) return 0;
  return r._bufferedBytes + r._messageLength + (r._buffers.length + r._fragments.length) * PART_OVERHEAD_BYTES;
}

/** True from a message's first byte until its last frame is parsed. */
export function messageInProgress(ws: WebSocket): boolean {
  const r = receiverOf(ws);
  if (r === undefined) return false;
  return r._state !== GET_INFO || r._fragmented !== 0 || r._bufferedBytes > 0;
}
