// The local nginx's configuration (testkit/cluster/nginx.ts) behaves like
// ingress-nginx where the cluster reports depend on it: no endpoint is marked
// down after a refusal, and with hash affinity no retry reaches another pod.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { descriptorHardLimit, nginxConfig, proxyBottleneck, proxyCapacity, type ProxySettings } from '../../testkit/cluster/nginx.js';

const SETTINGS: ProxySettings = {
  proxyTimeoutSeconds: 3600,
  nextUpstream: 'error timeout http_503',
  nextUpstreamTries: 3,
  affinity: 'cookie',
  cookieName: 'WSECHO_AFFINITY',
  cookieMaxAgeSeconds: 3600,
  hashBy: '$arg_client',
  workerShutdownTimeoutSeconds: 3600,
};
const UPSTREAMS = [
  { name: 'a', port: 1001 },
  { name: 'b', port: 1002 },
];
const config = (settings: Partial<ProxySettings>): string => nginxConfig({ ...SETTINGS, ...settings }, UPSTREAMS, 8080, '/tmp/nginx', 1);

describe('local nginx configuration', () => {
  it('retries a refused upgrade on another pod with cookie affinity or none, as ingress-nginx does', () => {
    for (const affinity of ['cookie', 'none'] as const) {
      assert.match(config({ affinity }), /proxy_next_upstream error timeout http_503;\n\s+proxy_next_upstream_tries 3;/);
    }
    assert.match(config({ affinity: 'cookie' }), /hash \$affinity_key consistent;/);
  });

  it('never retries on another pod with hash affinity: ingress-nginx retries the same endpoint', () => {
    const text = config({ affinity: 'hash' });
    assert.match(text, /hash \$arg_client consistent;/);
    assert.match(text, /proxy_next_upstream off;/);
  });

  it('never marks a pod down after a refused request (max_fails=0), and stands in a down server for an empty upstream', () => {
    assert.equal(config({}).match(/max_fails=0/g)?.length, 2);
    assert.match(nginxConfig(SETTINGS, [], 8080, '/tmp/nginx', 1), /server 127\.0\.0\.1:1 down;/);
  });
});

describe('local nginx sized like a production ingress', () => {
  it('gives every expected client two connections, with headroom, over one worker per core', () => {
    const capacity = proxyCapacity(15_000, 2, 1_000_000);
    assert.equal(capacity.workerProcesses, 2);
    // 15,000 clients × 2 connections × 1.25 (uneven shares, reconnects while old tunnels close) / 2 workers
    assert.equal(capacity.workerConnections, 18_750);
    assert.equal(capacity.workerRlimitNofile, 18_750 + 1024, 'every connection needs a descriptor, plus listeners and logs');
    const text = nginxConfig(SETTINGS, UPSTREAMS, 8080, '/tmp/nginx', 1, capacity);
    assert.match(text, /^worker_processes 2;$/m);
    assert.match(text, /^worker_rlimit_nofile 19774;$/m);
    assert.match(text, /events \{ worker_connections 18750; \}/);
    assert.match(text, /listen 127\.0\.0\.1:8080 reuseport;/, 'reuseport spreads the clients evenly over the workers');
  });

  it("adds workers when one worker's share would not fit the descriptor hard limit nginx cannot raise", () => {
    const capacity = proxyCapacity(15_000, 2, 10_000);
    // 37,500 connections, at most 10,000 − 1,024 per worker
    assert.equal(capacity.workerProcesses, 5);
    assert.equal(capacity.workerConnections, 8976);
    assert.ok(capacity.workerRlimitNofile <= 10_000);
    assert.ok(capacity.workerProcesses * capacity.workerConnections >= 37_500);
  });

  it("never goes below ingress-nginx's 16,384 connections per worker where the limit allows it", () => {
    assert.equal(proxyCapacity(0, 4, 1_000_000).workerConnections, 16_384);
    assert.equal(proxyCapacity(100, 1, 1_000_000).workerConnections, 16_384);
    assert.equal(proxyCapacity(100, 0, 1_000_000).workerProcesses, 1);
  });

  it('reads the hard descriptor limit from /proc/<pid>/limits', () => {
    const limits =
      'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 20000                files\n';
    assert.equal(descriptorHardLimit(limits), 20_000);
    assert.equal(descriptorHardLimit(limits.replace('20000 ', 'unlimited')), Number.MAX_SAFE_INTEGER);
  });

  it("finds nginx's own line when the proxy is the bottleneck, and ignores refused upstreams", () => {
    const log = [
      '2026/11/30 10:00:00 [notice] 12#12: start worker processes',
      '2026/11/30 10:00:01 [error] 13#13: *5 connect() failed (111: Connection refused) while connecting to upstream',
      '2026/11/30 10:00:02 [alert] 13#13: 8192 worker_connections are not enough',
      '2026/11/30 10:00:03 [crit] 13#13: accept4() failed (24: Too many open files)',
    ].join('\n');
    assert.equal(proxyBottleneck(log), '2026/11/30 10:00:02 [alert] 13#13: 8192 worker_connections are not enough');
    assert.equal(proxyBottleneck(log.split('\n').slice(0, 2).join('\n')), undefined);
    assert.match(proxyBottleneck('[warn] 8192 worker_connections are not enough while connecting to upstream') ?? '', /not enough/);
  });
});
