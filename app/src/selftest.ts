// `helm test` entry point (runs in the service image): opens a real
// WebSocket to SELFTEST_URL through the Service, sends SELFTEST_MESSAGES
// messages with the reference client, and exits 0 only if every one came
// back intact. Its own small config: it is a separate program, not the service.
import { EchoClient } from './client.js';

const url = process.env.SELFTEST_URL;
const count = Number(process.env.SELFTEST_MESSAGES ?? '100');
const timeoutMs = Number(process.env.SELFTEST_TIMEOUT_SECONDS ?? '30') * 1000;
if (!url || !/^wss?:\/\//.test(url) || !Number.isSafeInteger(count) || count < 1 || !(timeoutMs > 0)) {
  process.stderr.write(
    `selftest: set SELFTEST_URL (ws://host:port/path, got ${JSON.stringify(url)}), SELFTEST_MESSAGES (≥ 1) and SELFTEST_TIMEOUT_SECONDS (> 0)\n`,
  );
  process.exit(2);
}

const client = new EchoClient({ urls: [url], id: 'selftest', paddingBytes: 32 });
const opened = new Promise<string | undefined>((resolve) => client.once('open', resolve));
client.start();
const servedBy = await Promise.race([opened, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref())]);
if (servedBy === 'timeout') {
  process.stderr.write(
    `selftest: could not open ${url} within ${timeoutMs / 1000}s (failed upgrades: ${JSON.stringify(client.stats.failedUpgradeStatuses)})\n`,
  );
  process.exit(1);
}
for (let i = 0; i < count; i++) client.send();
const lost = await client.stop(timeoutMs);
const { sent, echoed, corrupted, duplicated, outOfOrder } = client.stats;
const ok = lost === 0 && corrupted === 0 && duplicated === 0 && outOfOrder === 0 && echoed === count;
process.stdout.write(`${JSON.stringify({ ok, url, servedBy, sent, echoed, lost, corrupted, duplicated, outOfOrder })}\n`);
process.exit(ok ? 0 : 1);
