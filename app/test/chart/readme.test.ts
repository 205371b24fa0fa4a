// chart/values.yaml documents every key, and chart/README.md's values table
// is the one scripts/chart-readme.ts generates from it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readValuesDocs, renderValuesTable, replaceTable } from '../../../scripts/chart-readme.js';
import { chartDir } from './helm.js';

const values = readFileSync(join(chartDir, 'values.yaml'), 'utf8');

describe('chart values documentation', () => {
  it('gives every key in values.yaml a "# --" comment', () => {
    const { undocumented, problems } = readValuesDocs(values);
    assert.deepEqual(undocumented, [], 'keys without a "# --" comment (line: key)');
    assert.deepEqual(problems, []);
  });

  it('finds undocumented keys and "##" lines after "# --"', () => {
    const { undocumented, problems, docs } = readValuesDocs('# -- documented\na:\n  b: 1\n# -- c\n## section\nc: 2\n');
    assert.deepEqual(undocumented, ['3: a.b']);
    assert.deepEqual(problems, ['5: "##" line right after a "# --" comment']);
    assert.deepEqual(docs.map((d) => d.path.join('.')), ['a', 'c']);
  });

  it('keeps the committed README values table up to date (regenerate: npm run build && node dist/scripts/chart-readme.js)', () => {
    const readme = readFileSync(join(chartDir, 'README.md'), 'utf8');
    const table = renderValuesTable(values);
    assert.equal(readme, replaceTable(readme, table), 'chart/README.md values table is stale');
    for (const row of ['`drain.windowSeconds` | int | `20`', '`ingress.affinityMode` | string | `"persistent"`', '`networkPolicy.ingressNamespaceSelector.matchLabels."kubernetes.io/metadata.name"`']) {
      assert.ok(table.includes(row), row);
    }
  });
});
