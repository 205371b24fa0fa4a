// The baseline: the minimal echo server of ws's README, nothing added. Same
// node_modules (so the same optional native add-ons) as ws-echo.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ port: Number(process.env.PORT ?? 8080), host: '127.0.0.1' });

wss.on('connection', function connection(ws) {
  ws.on('error', console.error);
  ws.on('message', function message(data, isBinary) {
    ws.send(data, { binary: isBinary });
  });
});

wss.on('listening', () => console.log(JSON.stringify({ msg: 'listening', port: (wss.address() as { port: number }).port })));
