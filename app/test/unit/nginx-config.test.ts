// The local nginx's configuration (testkit/cluster/nginx.ts) behaves like
// ingress-nginx where the cluster reports depend on it: no endpoint is marked
// down after a refusal, and with hash affinity no retry reaches another pod.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nginxConfig, proxyBottleneck, proxyCapacity, type ProxySettings } from '../../testkit/cluster/nginx.js';

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
    const capacity = proxyCapacity(15_000, 2);
    assert.equal(capacity.workerProcesses, 2);
    // 15,000 clients × 2 connections × 2 (uneven accepts, reconnects while old tunnels close) / 2 workers
    assert.equal(capacity.workerConnections, 30_000);
    assert.ok(capacity.workerRlimitNofile > capacity.workerConnections, 'every connection needs a descriptor, plus listeners and logs');
    const text = nginxConfig(SETTINGS, UPSTREAMS, 8080, '/tmp/nginx', 1, capacity);
    assert.match(text, /^worker_processes 2;$/m);
    assert.match(text, /^worker_rlimit_nofile 31024;$/m);
    assert.match(text, /events \{ worker_connections 30000; \}/);
  });

  it("never goes below ingress-nginx's 16,384 connections per worker", () => {
    assert.equal(proxyCapacity(0, 4).workerConnections, 16_384);
    assert.equal(proxyCapacity(100, 1).workerConnections, 16_384);
    assert.equal(proxyCapacity(100, 0).workerProcesses, 1);
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
