// The generated tables of the READMEs are the ones scripts/docs.ts would
// write now, and chart/values.yaml documents every key.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readValuesDocs, renderSettingsTable, renderValuesTable, replaceBlock, SETTINGS_TABLE, VALUES_TABLE } from '../../testkit/docs.js';
import { chartDir, repoRoot } from '../../testkit/paths.js';
import { SETTINGS } from '../../src/settings.js';

const values = readFileSync(join(chartDir, 'values.yaml'), 'utf8');
const committed = (file: string): string => readFileSync(join(repoRoot, file), 'utf8');

describe('chart values documentation', () => {
  it('gives every key in values.yaml a "# --" comment', () => {
    const { undocumented, problems } = readValuesDocs(values);
    assert.deepEqual(undocumented, [], 'keys without a "# --" comment (line: key)');
    assert.deepEqual(problems, []);
  });

  it('finds undocumented keys and "##" lines after "# --"', () => {
    const { undocumented, problems, docs } = readValuesDocs(
      '# -- documented\na:\n  b: 1\n# -- c\n## section\nc: 2\n# -- a list of maps\nd:\n  - e: 1\n    f:\n      g: 2\n',
    );
    assert.deepEqual(undocumented, ['3: a.b']);
    assert.deepEqual(problems, ['5: "##" line right after a "# --" comment']);
    assert.deepEqual(
      docs.map((d) => d.path.join('.')),
      ['a', 'c', 'd'],
    );
  });

  it('keeps the committed chart README values table up to date (regenerate: npm run docs)', () => {
    const readme = committed(VALUES_TABLE.file);
    const table = renderValuesTable(values);
    assert.equal(readme, replaceBlock(readme, VALUES_TABLE, table), 'chart/README.md values table is stale');
    for (const row of [
      '`drain.windowSeconds` | int | `20`',
      '`ingress.affinityMode` | string | `"persistent"`',
      '`networkPolicy.ingressNamespaceSelector.matchLabels."kubernetes.io/metadata.name"`',
    ]) {
      assert.ok(table.includes(row), row);
    }
  });
});

describe('README configuration table', () => {
  it('is the one the settings table gives (regenerate: npm run docs)', () => {
    const readme = committed(SETTINGS_TABLE.file);
    assert.equal(readme, replaceBlock(readme, SETTINGS_TABLE, renderSettingsTable()), 'README.md configuration table is stale');
  });

  it('has one row per setting, with its default, what is allowed and the chart value', () => {
    const table = renderSettingsTable();
    assert.equal(table.split('\n').length, 2 + Object.keys(SETTINGS).length);
    assert.ok(table.includes('| `MAX_CONNECTIONS` | `10000` | a whole number from 1 to 1000000 | `config.maxConnections` |'), table);
    assert.ok(table.includes('| `POD_NAME` | the host name | any name | downward API: metadata.name |'), table);
  });

  it('refuses a README without the markers, naming them', () => {
    assert.throws(() => replaceBlock('no markers here', SETTINGS_TABLE, 'x'), /README\.md needs the markers <!-- settings-table:start/);
  });
});
