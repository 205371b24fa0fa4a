// bufferutil is an optional dependency: ws unmasks client frames with it
// when it loads, and in JavaScript when it does not (not installed, no
// prebuilt binary for the platform, or WS_NO_BUFFER_UTIL=1). Both paths must
// echo the same bytes; and where it is installed, ws must actually load it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { bufferutilLoadedBy } from '../../testkit/bench/bench.js';
import { ChildService } from '../../testkit/child-service.js';
import { repoRoot } from '../../testkit/paths.js';

/** Sizes on both sides of ws's thresholds (it masks under 48 and unmasks under 32 bytes in JavaScript anyway). */
const SIZES = [16, 100, 4096, 60_000];

async function echoes(env: Record<string, string>): Promise<void> {
  const service = await ChildService.start({ env: { ...(process.env.NODE_PATH ? { NODE_PATH: process.env.NODE_PATH } : {}), ...env } });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${service.port}/echo`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    for (const size of SIZES) {
      const payload = randomBytes(size);
      const echo = new Promise<Buffer>((resolve) => ws.once('message', (data) => resolve(data as Buffer)));
      ws.send(payload);
      assert.deepEqual(await echo, payload, `echo of ${size} bytes`);
    }
    ws.close();
  } finally {
    await service.stop('SIGKILL');
  }
}

describe('bufferutil (optional dependency)', () => {
  it('is declared optional, so an install where no binary fits still succeeds', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { optionalDependencies?: Record<string, string> };
    assert.ok(pkg.optionalDependencies?.bufferutil, 'package.json optionalDependencies.bufferutil');
  });

  it('falls back to JavaScript masking with WS_NO_BUFFER_UTIL=1, and the echo is the same', async () => {
    assert.equal(bufferutilLoadedBy({ WS_NO_BUFFER_UTIL: '1' }), null);
    await echoes({ WS_NO_BUFFER_UTIL: '1' });
  });

  it('is loaded by ws where it is installed with a binary for this platform, and the echo is the same', async (t) => {
    const installed = process.env.NODE_PATH ?? join(repoRoot, 'node_modules');
    const prebuilds = join(installed, 'bufferutil', 'prebuilds', `${process.platform}-${process.arch}`);
    if (!existsSync(prebuilds)) {
      t.skip(`bufferutil has no binary at ${prebuilds} (not installed yet: npm ci installs it)`);
      return;
    }
    assert.match(bufferutilLoadedBy() ?? 'not loaded', /bufferutil/);
    await echoes({});
  });
});
