// The demo page served at `/`: a browser client that connects through the
// same WebSocket path, shows which replica answers, counts messages sent,
// echoed and lost, and reconnects on 1012 like the reference client
// (app/src/client.ts) does. Plain HTML and script, no build step.

/** Query parameter that asks the server to announce its replica name as the first message. */
export const SERVED_BY_PARAM = 'served-by';

/** Message after ms without an echo (while connected) counts as lost on the page. */
const LOST_AFTER_MS = 10_000;

/** The page, for a service whose WebSocket lives at `wsPath`. */
export function demoPage(wsPath: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ws-echo</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
  dl { display: grid; grid-template-columns: max-content max-content; gap: .3rem 1.5rem; }
  dt { color: #666; } dd { margin: 0; font-variant-numeric: tabular-nums; font-weight: 600; }
  #state.open { color: #070; } #state.closed { color: #b00; }
  ol { color: #555; font-size: .9rem; }
</style>
</head>
<body>
<h1>ws-echo</h1>
<p>Sends five messages a second to <code id="url"></code> and checks every echo. Restart the replica
(<code>kubectl rollout restart deployment/ws-echo</code>) and watch it move without losing one.</p>
<dl>
  <dt>connection</dt><dd id="state">connecting</dd>
  <dt>replica</dt><dd id="replica">-</dd>
  <dt>sent</dt><dd id="sent">0</dd>
  <dt>echoed</dt><dd id="echoed">0</dd>
  <dt>waiting for echo</dt><dd id="pending">0</dd>
  <dt>lost</dt><dd id="lost">0</dd>
  <dt>reconnects</dt><dd id="reconnects">0</dd>
</dl>
<ol id="log"></ol>
<script>
"use strict";
const WS_PATH = ${JSON.stringify(wsPath)};
const RECONNECT_CODES = [1001, 1006, 1012, 1013];
const LOST_AFTER_MS = ${LOST_AFTER_MS};
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + WS_PATH + "?${SERVED_BY_PARAM}=1";
const id = Math.random().toString(36).slice(2, 10);
const pending = new Map(); // seq -> time of its last transmission
const stats = { sent: 0, echoed: 0, lost: 0, reconnects: 0, replica: "-", state: "connecting" };
let ws, seq = 0, attempt = 0, opened = false;
document.getElementById("url").textContent = url;

function log(text) {
  const item = document.createElement("li");
  item.textContent = new Date().toLocaleTimeString() + " " + text;
  const list = document.getElementById("log");
  list.prepend(item);
  while (list.children.length > 8) list.lastChild.remove();
}

function connect() {
  ws = new WebSocket(url);
  ws.onopen = () => {
    if (opened) stats.reconnects++;
    opened = true;
    attempt = 0;
    stats.state = "open";
    // Resend whatever the previous connection never echoed.
    for (const s of pending.keys()) transmit(s);
  };
  ws.onmessage = (event) => {
    const text = String(event.data);
    if (text.startsWith("served-by ")) {
      stats.replica = text.slice(10);
      log("connected to " + stats.replica);
      return;
    }
    const s = Number(text.split(" ")[1]);
    if (pending.delete(s)) stats.echoed++;
  };
  ws.onclose = (event) => {
    stats.state = "closed (" + event.code + ")";
    log("closed with " + event.code + (event.reason ? " " + event.reason : ""));
    if (RECONNECT_CODES.includes(event.code) || !opened) {
      // Full jitter: a random delay up to an exponential ceiling.
      const delay = Math.random() * Math.min(5000, 100 * 2 ** attempt++);
      setTimeout(connect, delay);
    }
  };
}

function transmit(s) {
  pending.set(s, Date.now());
  ws.send(id + " " + s + " hello from the browser");
}

function send() {
  seq++;
  stats.sent++;
  if (ws && ws.readyState === WebSocket.OPEN) transmit(seq);
  else pending.set(seq, Infinity); // sent on the next open
}

function render() {
  const now = Date.now();
  stats.lost = 0;
  if (ws && ws.readyState === WebSocket.OPEN) for (const at of pending.values()) if (now - at > LOST_AFTER_MS) stats.lost++;
  for (const key of ["sent", "echoed", "lost", "reconnects", "replica", "state"]) document.getElementById(key).textContent = String(stats[key]);
  document.getElementById("pending").textContent = String(pending.size);
  document.getElementById("state").className = stats.state === "open" ? "open" : "closed";
}

window.wsEchoDemo = stats;
connect();
setInterval(send, 200);
setInterval(render, 250);
</script>
</body>
</html>
`;
}
