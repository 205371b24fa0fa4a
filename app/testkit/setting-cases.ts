// Values to try for every setting of app/src/settings.ts: accepted ones
// (each bound included) and refused ones (just past each bound, or not of the
// kind), derived from each parser's kind and bounds. The config tests feed
// them to loadConfig, the chart tests to values.schema.json, so the service
// and the chart are held to the same cases.
import { SETTINGS, type Parser, type SettingName } from '../src/settings.js';

export interface Cases {
  readonly good: readonly string[];
  readonly bad: readonly string[];
}

/** Free-text settings check their text with a function of their own: their cases are written out here. */
const TEXT_CASES: Partial<Record<SettingName, Cases>> = {
  HOST: { good: ['127.0.0.1', '::1'], bad: [] },
  WS_PATH: { good: ['/ws/v1', "/a-b_c.d~!$&'()*+,;=:@%20"], bad: ['echo', '/healthz', '/readyz', '/metrics', '/echo?x=1', '/echo#top', '/a b'] },
  ALLOWED_ORIGINS: {
    good: ['https://a.example', 'https://a.example, http://localhost:3000', '*'],
    bad: ['example.com', 'https://a.example/path', 'https://a.example/', 'ftp://a.example', 'https://user@a.example'],
  },
  POD_NAME: { good: ['ws-echo-7d9f-abcde'], bad: [] },
  POD_NAMESPACE: { good: ['apps'], bad: [] },
  POD_UID: { good: ['3f1c2b9e-0d4a-4c1e-9b57-2a8e6f0d1c77'], bad: [] },
  KUBECONFIG: { good: ['/home/me/.kube/config'], bad: [] },
  REBALANCE_POD_SELECTOR: {
    good: ['app=ws-echo', 'app.kubernetes.io/name=ws-echo,app.kubernetes.io/instance=echo'],
    bad: ['app', 'app!=x', 'app in (a)', 'a=b,'],
  },
};

/** Good and bad texts for a setting, from its parser's kind and bounds. */
export function casesOf(name: SettingName): Cases {
  const parser = SETTINGS[name].parser as Parser<unknown>;
  switch (parser.kind) {
    case 'integer':
      return {
        good: [String(parser.min), String(parser.max), String(Math.floor((parser.min + parser.max) / 2))],
        bad: [parser.min > 0 ? String(parser.min - 1) : '-1', String(parser.max + 1), '1.5', '1e3', 'ten', '0x10'],
      };
    case 'seconds':
    case 'fraction':
      return {
        good: [String(parser.min), String(parser.max), String((parser.min + parser.max) / 2), ...(parser.zeroMeans ? ['0'] : [])],
        bad: [
          ...(parser.min > 0 ? [String(parser.min / 2)] : ['-1']),
          String(parser.max + 1),
          ...(parser.kind === 'seconds' ? ['5s'] : ['20%']),
          'soon',
          '1e1',
        ],
      };
    case 'choice':
      return { good: [...parser.values, ...parser.values.map((v) => v.toUpperCase())], bad: ['nope', `${parser.values[0]}x`] };
    case 'text': {
      const cases = TEXT_CASES[name];
      if (cases === undefined) throw new Error(`the text setting ${name} needs good and bad examples in TEXT_CASES (app/testkit/setting-cases.ts)`);
      return cases;
    }
  }
}
