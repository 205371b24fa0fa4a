// The local nginx's configuration (testkit/cluster/nginx.ts) behaves like
// ingress-nginx where the cluster reports depend on it: no endpoint is marked
// down after a refusal, and with hash affinity no retry reaches another pod.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nginxConfig, type ProxySettings } from '../../testkit/cluster/nginx.js';

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
