// `npm run docs`: rewrites the generated tables of the READMEs, the chart's
// values table from chart/values.yaml and the service's configuration table
// from app/src/settings.ts. `npm run docs -- --check` changes nothing and
// exits 1 when a table is stale or a values.yaml key has no `# --` comment.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  readValuesDocs,
  renderSettingsTable,
  renderValuesTable,
  replaceBlock,
  SETTINGS_TABLE,
  VALUES_TABLE,
  type GeneratedBlock,
} from '../app/testkit/docs.js';
import { chartDir, repoRoot } from '../app/testkit/paths.js';

const check = process.argv.includes('--check');
const values = readFileSync(join(chartDir, 'values.yaml'), 'utf8');
const { undocumented, problems } = readValuesDocs(values);
for (const key of undocumented) process.stderr.write(`chart/values.yaml:${key} has no "# --" comment\n`);
for (const problem of problems) process.stderr.write(`chart/values.yaml:${problem}\n`);
if (undocumented.length > 0 || problems.length > 0) process.exitCode = 1;

const generated: [GeneratedBlock, string][] = [
  [VALUES_TABLE, renderValuesTable(values)],
  [SETTINGS_TABLE, renderSettingsTable()],
];
for (const [block, content] of generated) {
  const path = join(repoRoot, block.file);
  const text = readFileSync(path, 'utf8');
  const updated = replaceBlock(text, block, content);
  if (updated === text) continue;
  if (check) {
    process.stderr.write(`${block.file}: the generated table is stale; run npm run docs\n`);
    process.exitCode = 1;
  } else {
    writeFileSync(path, updated);
    process.stdout.write(`${block.file}: table updated\n`);
  }
}
