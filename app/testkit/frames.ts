// WebSocket frames for the hostile-input tests: an encoder that can build any
// frame, including ones RFC 6455 forbids; a reference receiver (the oracle)
// that predicts, byte for byte, what a conforming server answers to any input;
// and a seeded generator of hostile inputs.
//
// The oracle follows RFC 6455 §5 and §7.4, with the choices of the ws library
// where the RFC leaves one: a frame length larger than MAX_PAYLOAD_BYTES (or
// than 2^53 − 1) is refused with 1009 as soon as the header has arrived, a
// non-minimal length encoding is accepted, frames after a close frame are
// ignored, and the server echoes the peer's close code and reason.
import type { Prng } from './reliability.js';

export const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export interface FrameSpec {
  fin?: boolean;
  /** RSV1..3 as bits 0b100, 0b010, 0b001. */
  rsv?: number;
  opcode: number;
  /** Client frames must be masked (RFC 6455 §5.1); false builds an illegal one. */
  masked?: boolean;
  payload?: Buffer;
  /** Force the length encoding: 7-bit, 16-bit or 64-bit (non-minimal encodings are legal for ws). */
  lengthBits?: 7 | 16 | 64;
  /** Declare this length instead of the payload's (the payload is then truncated or padded by the caller). */
  declaredLength?: bigint;
  /** Mask key; a fixed one keeps inputs reproducible. */
  maskKey?: Buffer;
}

/** Encodes one frame exactly as specified, legal or not. */
export function encodeFrame(spec: FrameSpec): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0);
  const masked = spec.masked ?? true;
  const length = spec.declaredLength ?? BigInt(payload.length);
  const bits = spec.lengthBits ?? (length < 126n ? 7 : length < 65536n ? 16 : 64);
  const head: number[] = [((spec.fin ?? true) ? 0x80 : 0) | (((spec.rsv ?? 0) & 7) << 4) | (spec.opcode & 0x0f)];
  const maskBit = masked ? 0x80 : 0;
  if (bits === 7) head.push(maskBit | Number(length & 0x7fn));
  else if (bits === 16) head.push(maskBit | 126, Number((length >> 8n) & 0xffn), Number(length & 0xffn));
  else {
    head.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) head.push(Number((length >> shift) & 0xffn));
  }
  if (!masked) return Buffer.concat([Buffer.from(head), payload]);
  const key = spec.maskKey ?? Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
  return Buffer.concat([Buffer.from(head), key, body]);
}

/** A server frame (unmasked, as a server must send it). */
export function serverFrame(opcode: number, payload: Buffer): Buffer {
  return encodeFrame({ opcode, payload, masked: false });
}

export function closePayload(code: number, reason: Buffer | string = ''): Buffer {
  const r = typeof reason === 'string' ? Buffer.from(reason) : reason;
  const out = Buffer.alloc(2 + r.length);
  out.writeUInt16BE(code, 0);
  r.copy(out, 2);
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
export function isUtf8(buf: Buffer): boolean {
  try {
    utf8.decode(buf);
    return true;
  } catch {
    return false;
  }
}

/** RFC 6455 §7.4: codes a peer may send (1004–1006 and 1015 are reserved; 3000–4999 are for libraries and apps). */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

export interface Prediction {
  /** Exactly what the server sends back after the 101. */
  readonly output: Buffer;
  /** The code of the server's close frame: an error (1002, 1007, 1009), the peer's own code echoed, or undefined (no close frame). */
  readonly closeCode: number | undefined;
  /** error: the server refused the input; handshake: the peer closed properly; open: all frames were fine (or the last one incomplete). */
  readonly outcome: 'error' | 'handshake' | 'open';
  /** Data messages the server echoes, pongs it sends. */
  readonly echoes: number;
  readonly pongs: number;
}

/**
 * What a conforming server answers to `input` (all bytes a client sends
 * after its upgrade request), for a server with this MAX_PAYLOAD_BYTES.
 */
export function predict(input: Buffer, maxPayload: number): Prediction {
  const out: Buffer[] = [];
  let echoes = 0;
  let pongs = 0;
  let pos = 0;
  let fragmented = 0; // opcode of the message being assembled, 0 if none
  let fragments: Buffer[] = [];
  let total = 0;
  const done = (outcome: Prediction['outcome'], closeCode?: number): Prediction => ({ output: Buffer.concat(out), closeCode, outcome, echoes, pongs });
  const fail = (code: number): Prediction => {
    out.push(serverFrame(OP.close, closePayload(code)));
    return done('error', code);
  };

  for (;;) {
    if (input.length - pos < 2) return done('open');
    const b0 = input[pos]!;
    const b1 = input[pos + 1]!;
    pos += 2;
    // §5.2: RSV bits must be 0 without a negotiated extension (and we negotiate none).
    if ((b0 & 0x70) !== 0) return fail(1002);
    const fin = (b0 & 0x80) !== 0;
    let opcode = b0 & 0x0f;
    const len7 = b1 & 0x7f;
    if (opcode === OP.continuation) {
      if (!fragmented) return fail(1002); // continuation of nothing
      opcode = fragmented;
    } else if (opcode === OP.text || opcode === OP.binary) {
      if (fragmented) return fail(1002); // a new message inside a fragmented one (§5.4)
    } else if (opcode >= OP.close && opcode <= OP.pong) {
      // §5.5: control frames are not fragmented and carry at most 125 bytes; a close payload is 0 or ≥ 2 bytes.
      if (!fin || len7 > 125 || (opcode === OP.close && len7 === 1)) return fail(1002);
    } else {
      return fail(1002); // reserved opcodes 3–7 and 0xB–0xF
    }
    if (!fin && !fragmented) fragmented = opcode;
    // §5.1: a server closes the connection on an unmasked client frame.
    if ((b1 & 0x80) === 0) return fail(1002);
    let length: number;
    if (len7 === 126) {
      if (input.length - pos < 2) return done('open');
      length = input.readUInt16BE(pos);
      pos += 2;
    } else if (len7 === 127) {
      if (input.length - pos < 8) return done('open');
      const high = input.readUInt32BE(pos);
      if (high > 2 ** 21 - 1) return fail(1009); // more than 2^53 − 1 bytes
      length = high * 2 ** 32 + input.readUInt32BE(pos + 4);
      pos += 8;
    } else {
      length = len7;
    }
    if (length > 0 && opcode < OP.close) {
      total += length;
      if (total > maxPayload) return fail(1009); // refused on the header, before any payload is buffered
    }
    if (input.length - pos < 4 + length) return done('open');
    const key = input.subarray(pos, pos + 4);
    const payload = Buffer.from(input.subarray(pos + 4, pos + 4 + length));
    for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!;
    pos += 4 + length;

    if (opcode === OP.close) {
      if (payload.length === 0) {
        out.push(serverFrame(OP.close, Buffer.alloc(0)));
        return done('handshake', 1005);
      }
      const code = payload.readUInt16BE(0);
      if (!isValidCloseCode(code)) return fail(1002);
      const reason = payload.subarray(2);
      if (!isUtf8(reason)) return fail(1007);
      out.push(serverFrame(OP.close, payload));
      return done('handshake', code);
    }
    if (opcode === OP.ping) {
      out.push(serverFrame(OP.pong, payload));
      pongs++;
      continue;
    }
    if (opcode === OP.pong) continue;
    fragments.push(payload);
    if (!fin) continue;
    const message = Buffer.concat(fragments);
    const type = fragmented || opcode;
    fragmented = 0;
    fragments = [];
    total = 0;
    if (type === OP.text && !isUtf8(message)) return fail(1007);
    out.push(serverFrame(type, message));
    echoes++;
  }
}

// ---------------------------------------------------------------------------
// Hostile inputs

/** Byte sequences that are not UTF-8 (RFC 3629 §3/§10; Unicode table 3-7). */
export const INVALID_UTF8: readonly (readonly number[])[] = [
  [0x80], // lone continuation byte
  [0xc0, 0x80], // overlong NUL
  [0xc1, 0xbf], // overlong
  [0xe0, 0x80, 0x80], // overlong
  [0xed, 0xa0, 0x80], // UTF-16 surrogate U+D800
  [0xed, 0xbf, 0xbf], // surrogate U+DFFF
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0xf5, 0x80, 0x80, 0x80], // invalid lead byte
  [0xff], // never valid
  [0xe2, 0x82], // truncated sequence
  [0xc3, 0x28], // lead byte followed by a non-continuation
];

const VALID_TEXT = ['', 'a', 'hello', 'héllo wörld', '✓ echo', '😀 4-byte', 'x'.repeat(200), '€€€'];

function randomText(rng: Prng, maxBytes: number): Buffer {
  if (rng.chance(0.5)) return Buffer.from(rng.pick(VALID_TEXT)).subarray(0, maxBytes);
  const chars: string[] = [];
  const n = rng.int(0, Math.min(maxBytes, 64));
  for (let i = 0; i < n; i++) {
    const plane = rng.int(0, 3);
    const cp = plane === 0 ? rng.int(0x20, 0x7e) : plane === 1 ? rng.int(0xa0, 0x7ff) : plane === 2 ? rng.int(0x800, 0xd7ff) : rng.int(0x10000, 0x10ffff);
    chars.push(String.fromCodePoint(cp));
  }
  return Buffer.from(chars.join(''));
}

function invalidText(rng: Prng): Buffer {
  const bad = Buffer.from(rng.pick(INVALID_UTF8));
  const before = Buffer.from(rng.pick(VALID_TEXT).slice(0, 10));
  const after = rng.chance(0.5) ? Buffer.from('tail') : Buffer.alloc(0);
  return Buffer.concat([before, bad, after]);
}

export interface HostileInput {
  /** Which generator made it (for the tally). */
  readonly kind: string;
  readonly bytes: Buffer;
}

/**
 * One hostile input: either plain random bytes, or a few frames built to hit
 * every rule of RFC 6455 §5 (legal ones mixed in), optionally mutated by a
 * bit flip or truncated. `maxPayload` is the server's MAX_PAYLOAD_BYTES.
 */
export function hostileInput(rng: Prng, maxPayload: number): HostileInput {
  if (rng.chance(0.25)) return { kind: 'random bytes', bytes: rng.bytes(rng.chance(0.9) ? rng.int(1, 64) : rng.int(65, 4096)) };
  const frames: Buffer[] = [];
  const kinds: string[] = [];
  const count = rng.int(1, 5);
  const maskKey = (): Buffer => rng.bytes(4);
  for (let i = 0; i < count; i++) {
    const kind = rng.pick(FRAME_KINDS);
    kinds.push(kind);
    frames.push(...frameOfKind(kind, rng, maxPayload, maskKey));
  }
  let bytes = Buffer.concat(frames);
  // Named after the first illegal frame; inputs made only of legal frames are "legal frames".
  let kind = kinds.find((k) => !LEGAL_KINDS.has(k)) ?? 'legal frames';
  if (bytes.length > 0 && rng.chance(0.12)) {
    bytes = Buffer.from(bytes);
    const bit = rng.int(0, bytes.length * 8 - 1);
    bytes[bit >> 3]! ^= 1 << (bit & 7);
    kind = `${kind}, bit flipped`;
  } else if (bytes.length > 1 && rng.chance(0.08)) {
    bytes = bytes.subarray(0, rng.int(1, bytes.length - 1));
    kind = `${kind}, truncated`;
  }
  return { kind, bytes };
}

const FRAME_KINDS = [
  'legal',
  'legal',
  'fragmented legal',
  'ping',
  'pong',
  'unmasked',
  'reserved opcode',
  'rsv bits',
  'oversized',
  'fragmented oversized',
  'huge length',
  'control over 125',
  'fragmented control',
  'invalid utf-8 text',
  'invalid utf-8 across fragments',
  'close',
  'close bad code',
  'close bad reason',
  'close 1 byte',
  'continuation without start',
  'new message inside fragmented',
  'non-minimal length',
] as const;
type FrameKind = (typeof FRAME_KINDS)[number];
const LEGAL_KINDS: ReadonlySet<string> = new Set(['legal', 'fragmented legal', 'ping', 'pong', 'non-minimal length']);

function frameOfKind(kind: FrameKind, rng: Prng, maxPayload: number, maskKey: () => Buffer): Buffer[] {
  const small = (): number => (rng.chance(0.9) ? rng.int(0, 200) : rng.int(0, maxPayload));
  const data = (): { opcode: number; payload: Buffer } =>
    rng.chance(0.5) ? { opcode: OP.text, payload: randomText(rng, small()) } : { opcode: OP.binary, payload: rng.bytes(small()) };
  switch (kind) {
    case 'legal':
      return [encodeFrame({ ...data(), maskKey: maskKey() })];
    case 'fragmented legal': {
      const { opcode, payload } = data();
      const cut = rng.int(0, payload.length);
      const first = payload.subarray(0, cut);
      const rest = payload.subarray(cut);
      const out = [encodeFrame({ opcode, payload: first, fin: false, maskKey: maskKey() })];
      if (rng.chance(0.3)) out.push(encodeFrame({ opcode: OP.ping, payload: rng.bytes(rng.int(0, 125)), maskKey: maskKey() })); // control frames may interleave (§5.4)
      out.push(encodeFrame({ opcode: OP.continuation, payload: rest, maskKey: maskKey() }));
      return out;
    }
    case 'ping':
      return [encodeFrame({ opcode: OP.ping, payload: rng.bytes(rng.int(0, 125)), maskKey: maskKey() })];
    case 'pong':
      return [encodeFrame({ opcode: OP.pong, payload: rng.bytes(rng.int(0, 125)), maskKey: maskKey() })];
    case 'unmasked':
      return [encodeFrame({ ...data(), masked: false })];
    case 'reserved opcode':
      return [encodeFrame({ opcode: rng.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]), payload: rng.bytes(rng.int(0, 50)), maskKey: maskKey() })];
    case 'rsv bits':
      return [encodeFrame({ ...data(), rsv: rng.int(1, 7), maskKey: maskKey() })];
    case 'oversized':
      return [encodeFrame({ opcode: rng.pick([OP.text, OP.binary]), payload: rng.bytes(maxPayload + rng.int(1, 64)), maskKey: maskKey() })];
    case 'fragmented oversized': {
      const n = rng.int(2, 5);
      const each = Math.ceil((maxPayload + rng.int(1, 512)) / n);
      const opcode = rng.pick([OP.binary, OP.text]);
      return Array.from({ length: n }, (_, i) =>
        encodeFrame({ opcode: i === 0 ? opcode : OP.continuation, fin: i === n - 1, payload: Buffer.alloc(each, 0x61), maskKey: maskKey() }),
      );
    }
    case 'huge length': {
      // A header that declares far more than MAX_PAYLOAD_BYTES (or 2^63), with a little payload behind it.
      const declaredLength = rng.pick([BigInt(maxPayload + 1), 65535n, 1n << 32n, 1n << 53n, (1n << 63n) + 5n, (1n << 64n) - 1n]);
      return [
        encodeFrame({
          opcode: rng.pick([OP.text, OP.binary]),
          declaredLength,
          lengthBits: declaredLength < 65536n ? 16 : 64,
          payload: rng.bytes(rng.int(0, 16)),
          maskKey: maskKey(),
        }),
      ];
    }
    case 'control over 125': {
      const length = rng.int(126, 300);
      return [encodeFrame({ opcode: rng.pick([OP.ping, OP.pong, OP.close]), payload: rng.bytes(length), maskKey: maskKey() })];
    }
    case 'fragmented control':
      return [encodeFrame({ opcode: rng.pick([OP.ping, OP.pong, OP.close]), fin: false, payload: rng.bytes(rng.int(0, 20)), maskKey: maskKey() })];
    case 'invalid utf-8 text':
      return [encodeFrame({ opcode: OP.text, payload: invalidText(rng), maskKey: maskKey() })];
    case 'invalid utf-8 across fragments': {
      const payload = rng.chance(0.5) ? invalidText(rng) : Buffer.from('valid when joined: €😀'); // the joined message decides, not each fragment
      const cut = rng.int(1, Math.max(1, payload.length - 1));
      return [
        encodeFrame({ opcode: OP.text, fin: false, payload: payload.subarray(0, cut), maskKey: maskKey() }),
        encodeFrame({ opcode: OP.continuation, payload: payload.subarray(cut), maskKey: maskKey() }),
      ];
    }
    case 'close': {
      const code = rng.pick([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999]);
      const payload = rng.chance(0.2) ? Buffer.alloc(0) : closePayload(code, randomText(rng, 100).subarray(0, rng.int(0, 100)));
      return [encodeFrame({ opcode: OP.close, payload: isUtf8(payload.subarray(2)) ? payload : closePayload(code), maskKey: maskKey() })];
    }
    case 'close bad code':
      return [
        encodeFrame({
          opcode: OP.close,
          payload: closePayload(rng.pick([0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]), 'bye'),
          maskKey: maskKey(),
        }),
      ];
    case 'close bad reason':
      return [encodeFrame({ opcode: OP.close, payload: closePayload(1000, invalidText(rng).subarray(0, 123)), maskKey: maskKey() })];
    case 'close 1 byte':
      return [encodeFrame({ opcode: OP.close, payload: Buffer.from([0x03]), maskKey: maskKey() })];
    case 'continuation without start':
      return [encodeFrame({ opcode: OP.continuation, payload: rng.bytes(rng.int(0, 20)), maskKey: maskKey() })];
    case 'new message inside fragmented':
      return [
        encodeFrame({ opcode: OP.binary, fin: false, payload: rng.bytes(10), maskKey: maskKey() }),
        encodeFrame({ opcode: rng.pick([OP.text, OP.binary]), payload: Buffer.from('x'), maskKey: maskKey() }),
      ];
    case 'non-minimal length': {
      const { opcode, payload } = data();
      return [encodeFrame({ opcode, payload: payload.subarray(0, 100), lengthBits: rng.pick([16, 64] as const), maskKey: maskKey() })];
    }
  }
}
