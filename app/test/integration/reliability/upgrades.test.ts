// Hostile HTTP before the upgrade, against the real service as a child
// process: malformed handshakes and request-smuggling attempts written as raw
// bytes get their status line, slowloris clients get 408 without blocking
// anyone, and a connection flood past MAX_CONNECTIONS gets exactly as many
// 503s as the server counts. Bystander reference clients lose nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChildService } from '../../../testkit/child-service.js';
import { closePayload, OP, serverFrame } from '../../../testkit/frames.js';
import { exchange, splitHead } from '../../../testkit/http.js';
import { assertContained, Figures, othersSaw, tally, watched } from '../../../testkit/reliability.js';
import { scrape, waitFor } from '../../../testkit/service.js';
import { connect, SAMPLE_KEY, UpgradeRefused, upgradeRequest, type UpgradeRequestOptions } from '../../../testkit/websocket.js';

const figures = new Figures('upgrades');
after(() => figures.write());

/** An upgrade request to the echo path, broken the way `options` say. */
const upgrade = (options: UpgradeRequestOptions = {}): string => upgradeRequest({ host: 'echo.test', ...options });

interface Malformed {
  readonly name: string;
  readonly request: string;
  /** The status line the offender must get. */
  readonly status: number;
  /** The counter (metric{label}) that must count it, if any. */
  readonly counted?: `${'rejected' | 'http'}:${string}`;
  /** Extra check on the whole answer. */
  readonly answer?: RegExp;
}

const MALFORMED: readonly Malformed[] = [
  {
    name: 'missing Sec-WebSocket-Key',
    request: upgrade({ key: null }),
    status: 400,
    counted: 'rejected:invalid_handshake',
  },
  {
    name: 'Sec-WebSocket-Key not 16 bytes of base64',
    request: upgrade({ key: 'c2hvcnQ=' }),
    status: 400,
    counted: 'rejected:invalid_handshake',
  },
  {
    name: 'two Sec-WebSocket-Key headers',
    request: upgrade({ headers: { 'Sec-WebSocket-Key': SAMPLE_KEY } }),
    status: 400,
    counted: 'rejected:invalid_handshake',
  },
  ...['0', '12', '14', '99', 'thirteen'].map((v) => ({
    name: `Sec-WebSocket-Version: ${v}`,
    request: upgrade({ version: v }),
    status: 400,
    counted: 'rejected:invalid_handshake' as const,
    answer: /\r\nSec-WebSocket-Version: 13\r\n/i,
  })),
  {
    name: 'missing Sec-WebSocket-Version',
    request: upgrade({ version: null }),
    status: 400,
    counted: 'rejected:invalid_handshake',
  },
  {
    name: 'Upgrade: h2c on the WebSocket path',
    request: upgrade({ upgrade: 'h2c', key: null, version: null }),
    status: 400,
    counted: 'rejected:invalid_handshake',
  },
  { name: 'POST with an upgrade', request: upgrade({ method: 'POST' }), status: 405, counted: 'rejected:invalid_handshake' },
  {
    name: 'a 20 KiB header (over Node’s 16 KiB)',
    request: upgrade({ headers: { 'X-Padding': 'a'.repeat(20 * 1024) } }),
    status: 431,
    counted: 'http:headers_too_large',
  },
  {
    name: '3,000 small headers',
    request: upgrade({ headers: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`X-H${i}`, 'v'])) }),
    status: 431,
    counted: 'http:headers_too_large',
  },
  {
    name: 'smuggling: Content-Length with Transfer-Encoding',
    request: 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    counted: 'http:bad_request',
  },
  {
    name: 'smuggling: Content-Length with Transfer-Encoding on an upgrade',
    request: upgrade({ headers: { 'Content-Length': '5', 'Transfer-Encoding': 'chunked' } }),
    status: 400,
    counted: 'http:bad_request',
  },
  {
    name: 'smuggling: two different Content-Length',
    request: 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 41\r\n\r\nhelloGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    counted: 'http:bad_request',
  },
  {
    name: 'smuggling: Transfer-Encoding: chunked, identity',
    request: 'POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
    status: 400,
    counted: 'http:bad_request',
  },
  {
    name: 'smuggling: Transfer-Encoding folded onto a second line',
    request: 'POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n',
    status: 400,
    counted: 'http:bad_request',
  },
  {
    name: 'smuggling: space before the colon',
    request: 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello',
    status: 400,
    counted: 'http:bad_request',
  },
  { name: 'smuggling: bare LF line endings', request: 'GET /healthz HTTP/1.1\nHost: x\n\n', status: 400, counted: 'http:bad_request' },
  {
    name: 'smuggling: a request pipelined behind an upgrade becomes WebSocket bytes (close 1002), never HTTP',
    request: `${upgradeRequest()}GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n`,
    status: 101,
  },
  { name: 'NUL byte in a header value', request: upgrade({ headers: { 'X-A': 'a\x00b' } }), status: 400, counted: 'http:bad_request' },
  { name: 'no Host header', request: upgrade({ host: null }), status: 400, counted: 'rejected:invalid_handshake' },
  { name: 'TLS ClientHello on the plain port', request: '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', status: 400, counted: 'http:bad_request' },
  { name: 'HTTP/2 connection preface', request: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 400, counted: 'http:bad_request' },
  { name: 'upgrade on another path', request: upgrade({ path: '/chat' }), status: 404, counted: 'rejected:path' },
  { name: 'upgrade with an absolute-form target', request: upgrade({ path: 'http://evil.example/echo' }), status: 404, counted: 'rejected:path' },
  { name: 'upgrade on /echo/../echo (no path normalisation)', request: upgrade({ path: '/echo/../echo' }), status: 404, counted: 'rejected:path' },
  { name: 'upgrade on /metrics of the public port', request: upgrade({ path: '/metrics' }), status: 404, counted: 'rejected:path' },
  { name: 'forbidden Origin', request: upgrade({ headers: { Origin: 'https://evil.example.net' } }), status: 403, counted: 'rejected:origin' },
  { name: 'Origin: null (sandboxed iframe, file://)', request: upgrade({ headers: { Origin: 'null' } }), status: 403, counted: 'rejected:origin' },
  { name: 'plain HTTP GET on the WebSocket path', request: 'GET /echo HTTP/1.1\r\nHost: x\r\n\r\n', status: 426, answer: /\r\nUpgrade: websocket\r\n/i },
  { name: 'GET /metrics on the public port', request: 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n', status: 404 },
];

describe('hostile HTTP before the upgrade', () => {
  let service: ChildService;
  before(async () => {
    service = await ChildService.start({
      env: {
        ALLOWED_ORIGINS: 'https://app.example.com',
        HTTP_HEADERS_TIMEOUT_SECONDS: '1',
        HEARTBEAT_INTERVAL_SECONDS: '0',
        POD_NAME: 'upgrades',
      },
    });
  });
  after(() => service.stop('SIGKILL'));

  const counter = async (key: string): Promise<number> => {
    const [kind, reason] = key.split(':') as [string, string];
    return scrape(service.metricsPort, kind === 'rejected' ? 'websocket_upgrades_rejected_total' : 'websocket_http_errors_total', { reason });
  };
  const counters = async (): Promise<Record<string, number>> => {
    const keys = [...new Set(MALFORMED.flatMap((m) => (m.counted ? [m.counted] : [])))];
    return Object.fromEntries(await Promise.all(keys.map(async (k) => [k, await counter(k)] as const)));
  };

  it(`answers ${MALFORMED.length} kinds of malformed upgrades and smuggling attempts, 20 of each at once, with their status, and counts each`, async () => {
    const REPEAT = 20;
    const before = await counters();
    const acceptedBefore = await scrape(service.metricsPort, 'websocket_upgrades_accepted_total');
    const problems: string[] = [];
    const run = await watched(service, async () => {
      await Promise.all(
        MALFORMED.flatMap((m) =>
          Array.from({ length: REPEAT }, async () => {
            const result = await exchange(service.port, [Buffer.from(m.request, 'latin1')], { timeoutMs: 10_000 });
            const { status, body } = splitHead(result.received);
            const text = result.received.toString('latin1');
            if (!status.startsWith(`HTTP/1.1 ${m.status} `)) problems.push(`${m.name}: got ${JSON.stringify(status)}`);
            else if (!result.closed) problems.push(`${m.name}: the connection stayed open`);
            else if (m.answer && !m.answer.test(text)) problems.push(`${m.name}: answer lacks ${m.answer}`);
            // The smuggled request behind the upgrade: one 101, then a close frame 1002, and no second HTTP response.
            else if (m.status === 101 && !body.equals(serverFrame(OP.close, closePayload(1002))))
              problems.push(`${m.name}: after the 101 got ${body.toString('hex')}`);
          }),
        ),
      );
    });
    assert.deepEqual([...new Set(problems)], []);
    assertContained(run, 'malformed upgrades');
    const after = await counters();
    const expected: Record<string, number> = {};
    for (const m of MALFORMED) if (m.counted) expected[m.counted] = (expected[m.counted] ?? 0) + REPEAT;
    for (const [key, n] of Object.entries(expected)) assert.equal(after[key]! - before[key]!, n, `counter ${key}`);
    // Only the smuggling case behind a valid upgrade was accepted (then closed with 1002).
    assert.equal((await scrape(service.metricsPort, 'websocket_upgrades_accepted_total')) - acceptedBefore, REPEAT + run.others.clients);
    const byStatus: Record<string, number> = {};
    for (const m of MALFORMED) byStatus[m.status] = (byStatus[m.status] ?? 0) + REPEAT;
    figures.add({
      case: `malformed upgrades and smuggling attempts, raw bytes (${MALFORMED.length} kinds × ${REPEAT}, all at once)`,
      details: MALFORMED.map(
        (m) =>
          [
            m.name,
            `HTTP ${m.status}${m.status === 101 ? ', then close 1002' : ''}, closed${m.counted ? `; ${m.counted.startsWith('rejected') ? 'websocket_upgrades_rejected_total' : 'websocket_http_errors_total'}{reason="${m.counted.split(':')[1]}"} +${REPEAT}` : ''}`,
          ] as const,
      ),
      inputs: MALFORMED.length * REPEAT,
      offender: `HTTP ${tally(byStatus)}, each connection closed; counted exactly in websocket_upgrades_rejected_total / websocket_http_errors_total`,
      others: othersSaw(run.others),
      memory: run.memory,
      lost: run.others.lost,
    });
  });

  it('answers 300 slowloris clients with 408 at the header timeout, while new clients connect and everyone echoes', async () => {
    const SLOW = 300;
    const timeoutSeconds = 1;
    const before = await scrape(service.metricsPort, 'websocket_http_errors_total', { reason: 'headers_timeout' });
    const run = await watched(service, async () => {
      const slow = Array.from({ length: SLOW }, (_, i) => {
        // Half trickle a header line every 200 ms, half send nothing at all.
        const chunks = i % 2 === 0 ? ['GET /echo HTTP/1.1\r\nHost: x\r\n', ...Array.from({ length: 40 }, () => 'X-Slow: 1\r\n')] : [];
        return trickle(service.port, chunks, 200);
      });
      await sleep(200);
      // Meanwhile new clients connect and echo at once.
      const upgradeMs: number[] = [];
      for (let i = 0; i < 50; i++) {
        const started = Date.now();
        const ws = await connect(service.port);
        upgradeMs.push(Date.now() - started);
        ws.close();
      }
      return { slow: await Promise.all(slow), upgradeMs };
    });
    const { slow, upgradeMs } = run.result;
    const statuses: Record<string, number> = {};
    for (const s of slow) statuses[s.status || 'none'] = (statuses[s.status || 'none'] ?? 0) + 1;
    assert.deepEqual(statuses, { 'HTTP/1.1 408 Request Timeout': SLOW });
    const closedAfter = slow.map((s) => s.ms / 1000);
    // Node checks the deadline once a second (connectionsCheckingInterval); 2 s of slack on top.
    assert.ok(Math.max(...closedAfter) <= timeoutSeconds + 1 + 2, `the last slowloris client was cut after ${Math.max(...closedAfter)} s`);
    assertContained(run, 'slowloris');
    assert.equal((await scrape(service.metricsPort, 'websocket_http_errors_total', { reason: 'headers_timeout' })) - before, SLOW);
    figures.add({
      case: `slowloris: ${SLOW} connections (half trickle a header line every 200 ms, half send nothing), HTTP_HEADERS_TIMEOUT_SECONDS=${timeoutSeconds}`,
      inputs: SLOW,
      offender: `408 and closed, ${Math.min(...closedAfter).toFixed(1)}–${Math.max(...closedAfter).toFixed(1)} s after connecting; counted in websocket_http_errors_total{reason="headers_timeout"}`,
      others: `${othersSaw(run.others)}; 50 new clients upgraded meanwhile in ${Math.min(...upgradeMs)}–${Math.max(...upgradeMs)} ms`,
      memory: run.memory,
      lost: run.others.lost,
    });
  });
});

describe('connection flood past MAX_CONNECTIONS', () => {
  const LIMIT = 200;
  let service: ChildService;
  before(async () => {
    service = await ChildService.start({ env: { MAX_CONNECTIONS: String(LIMIT), HEARTBEAT_INTERVAL_SECONDS: '0', POD_NAME: 'flood' } });
  });
  after(() => service.stop('SIGKILL'));

  it('refuses every upgrade past the limit with 503 + Retry-After, the counter and the 503s agree exactly, and freed slots are reused', async () => {
    const FLOOD = 800;
    const rejectedBefore = await scrape(service.metricsPort, 'websocket_upgrades_rejected_total', { reason: 'max_connections' });
    const run = await watched(service, async () => {
      const outcomes = await Promise.all(Array.from({ length: FLOOD }, () => connect(service.port).catch((err: unknown) => err)));
      const opened = outcomes.filter((o): o is import('ws').WebSocket => !(o instanceof Error));
      const refused = outcomes.filter((o): o is UpgradeRefused => o instanceof UpgradeRefused);
      const other = outcomes.filter((o) => o instanceof Error && !(o instanceof UpgradeRefused));
      const rejected = (await scrape(service.metricsPort, 'websocket_upgrades_rejected_total', { reason: 'max_connections' })) - rejectedBefore;
      const active = await scrape(service.metricsPort, 'websocket_connections_active');
      // Free 50 slots: 50 new clients get in, the 51st does not.
      await Promise.all(
        opened.slice(0, 50).map(async (ws) => {
          const closed = new Promise((resolve) => ws.once('close', resolve));
          ws.close();
          await closed;
        }),
      );
      await waitFor('the server to see 50 closes', async () => (await scrape(service.metricsPort, 'websocket_connections_active')) === LIMIT - 50);
      const again = await Promise.all(Array.from({ length: 51 }, () => connect(service.port).catch((err: unknown) => err)));
      const reopened = again.filter((o): o is import('ws').WebSocket => !(o instanceof Error));
      for (const ws of [...opened.slice(50), ...reopened]) ws.terminate();
      return {
        opened: opened.length,
        refused,
        other: other.length,
        rejected,
        active,
        reopened: reopened.length,
        refusedAgain: again.filter((o) => o instanceof UpgradeRefused).length,
      };
    });
    const r = run.result;
    const bystanders = run.others.clients;
    assert.equal(r.other, 0, 'every attempt got an answer: 101 or 503');
    assert.equal(r.opened, LIMIT - bystanders, 'exactly up to MAX_CONNECTIONS (the bystanders count too)');
    assert.equal(r.refused.length, FLOOD - r.opened);
    assert.ok(
      r.refused.every((e) => e.status === 503 && e.headers['retry-after'] === '1'),
      'each refusal is 503 with Retry-After: 1',
    );
    assert.equal(r.rejected, r.refused.length, 'websocket_upgrades_rejected_total{reason="max_connections"} equals the 503s the clients saw');
    assert.equal(r.active, LIMIT);
    assert.equal(r.reopened, 50);
    assert.equal(r.refusedAgain, 1);
    assertContained(run, 'connection flood');
    figures.add({
      case: `connection flood: ${FLOOD} upgrades at once against MAX_CONNECTIONS=${LIMIT} (${bystanders} bystanders connected first), then 50 freed slots and 51 new upgrades`,
      inputs: FLOOD + 51,
      offender: `${r.opened} got 101, ${r.refused.length} got 503 + Retry-After: 1 = websocket_upgrades_rejected_total{reason="max_connections"} ${r.rejected}; after 50 closes: 50 × 101, 1 × 503`,
      others: othersSaw(run.others),
      memory: run.memory,
      lost: run.others.lost,
    });
  });
});

/** A client that writes `chunks` one every `everyMs` (stopping when the server closes) and reports the answer. */
async function trickle(port: number, chunks: readonly string[], everyMs: number): Promise<{ status: string; ms: number }> {
  const { connect: tcpConnect } = await import('node:net');
  const started = Date.now();
  const socket = tcpConnect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let i = 0;
  const timer = setInterval(() => {
    if (i < chunks.length && socket.writable) socket.write(chunks[i++]!);
  }, everyMs);
  let giveUp: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise<void>((resolve) => (giveUp = setTimeout(resolve, 15_000)))]);
  clearTimeout(giveUp);
  clearInterval(timer);
  socket.destroy();
  return { status: received.split('\r\n')[0] ?? '', ms: Date.now() - started };
}
