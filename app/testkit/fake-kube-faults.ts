// The LOCAL FAKE API SERVER misbehaving on demand (the kube tests check the
// request shapes against the well-behaved one), and a kubeconfig with a bearer token that must never
// show up in the service's logs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FakeApiServer, type RecordedRequest } from './fake-apiserver.js';

export const API_FAULTS = ['unreachable', 'slow', 'hang', 'forbidden', 'unauthorized', 'server_error', 'unprocessable', 'reset'] as const;
export type ApiFault = (typeof API_FAULTS)[number];

/** What each fault does, for the figures. */
export const FAULT_DESCRIPTIONS: Record<ApiFault, string> = {
  unreachable: 'nothing listens (connection refused)',
  slow: 'answers 201 after 1.5 s (under the 2 s API timeout)',
  hang: 'accepts and never answers',
  forbidden: '403 Forbidden (RBAC rule missing)',
  unauthorized: '401 Unauthorized (bad token)',
  server_error: '500 (etcd timeout)',
  unprocessable: '422 (an answer the service does not expect)',
  reset: 'resets the connection mid-request',
};

/**
 * The local fake API server (fake-apiserver.ts) set to one
 * fault, with a kubeconfig carrying a fresh bearer token.
 */
export class FakeKubeApi {
  private constructor(
    readonly api: FakeApiServer,
    readonly port: number,
    readonly fault: ApiFault,
  ) {}

  get requests(): readonly RecordedRequest[] {
    return this.api.requests;
  }

  /** `pod` is registered, so its pod-deletion-cost patches succeed when the fault lets them through. */
  static async start(fault: ApiFault, pod = 'ws-echo-7d9f-abcde'): Promise<FakeKubeApi> {
    const api = new FakeApiServer();
    const port = await api.listen();
    api.addPod('apps', pod, { 'app.kubernetes.io/name': 'ws-echo' });
    if (fault === 'unreachable') {
      // A port that was served a moment ago and has nothing listening on it now.
      await api.close();
    } else {
      api.behaviour = fault;
    }
    return new FakeKubeApi(api, port, fault);
  }

  /** A kubeconfig pointing at this server, with a fresh random bearer token. */
  kubeconfig(): { path: string; token: string } {
    const token = `kube-token-${randomBytes(24).toString('hex')}`;
    const path = this.api.writeKubeconfig(join(mkdtempSync(join(tmpdir(), 'ws-echo-reliability-kube-')), 'kubeconfig.yaml'), 'apps', token);
    return { path, token };
  }

  close(): void {
    void this.api.close();
  }
}
