// The answer to an upgrade request we refuse: the socket is still raw TCP
// (no ServerResponse exists for an upgrade), so the response is written by hand.
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/** Answers a raw socket (an upgrade we refuse) with a complete HTTP response, then closes it. */
export function writeHttpError(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${message}\n`;
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.once('error', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
}
