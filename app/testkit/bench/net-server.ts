// The floor: a raw TCP echo on node:net, no WebSocket framing, no masking, no
// per-message objects. It answers each read with one write of the same bytes,
// which is what any echo over TCP must do at least; ws-echo and the ws
// baseline are measured against it to show how far framing puts them from
// what Node itself costs.
import { createServer } from 'node:net';

const server = createServer((socket) => {
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk) => socket.write(chunk));
});

server.maxConnections = 1 << 20;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', port: (server.address() as { port: number }).port }));
});
