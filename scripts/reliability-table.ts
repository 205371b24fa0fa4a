// Prints the figures the reliability tests wrote (reports/reliability/*.json)
// as the Markdown table of docs/RELIABILITY.md, and writes it next to them:
//
//   npm test && node dist/scripts/reliability-table.js
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { figuresDir, type CaseFigures } from '../app/testkit/reliability.js';

const SUITES = ['frames', 'upgrades', 'peers', 'faults', 'nginx-faults', 'memory', 'security', 'chart-security'] as const;

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

const rows: string[] = [];
const details: string[] = [];
const seeds = new Set<number>();
for (const suite of SUITES) {
  const file = join(figuresDir, `${suite}.json`);
  if (!existsSync(file)) {
    rows.push(`| ${suite}: no figures (run its test file first) | | | | | |`);
    continue;
  }
  const { seed, rows: cases } = JSON.parse(readFileSync(file, 'utf8')) as { seed: number; rows: CaseFigures[] };
  if (suite === 'frames') seeds.add(seed);
  for (const c of cases) {
    const memory = c.memory ? `${c.memory.startMiB} → ${c.memory.peakMiB}` : '–';
    rows.push(`| ${cell(c.case)} | ${c.inputs} | ${cell(c.offender)}${c.notes ? ` (${cell(c.notes)})` : ''} | ${cell(c.others)} | ${memory} | **${c.lost}** |`);
    if (c.details?.length) {
      details.push(
        `#### Details: ${c.case}`,
        '',
        '| input | answer |',
        '|---|---|',
        ...c.details.map(([what, answer]) => `| ${cell(what)} | ${cell(answer)} |`),
        '',
      );
    }
  }
}

const table = [
  `Seed of the randomised cases: ${[...seeds].join(', ') || 'n/a'}.`,
  '',
  '| case | inputs | what the offender saw | what the others saw | server RSS start → peak (MiB) | lost |',
  '|---|---|---|---|---|---|',
  ...rows,
  '',
  ...details,
].join('\n');
writeFileSync(join(figuresDir, 'table.md'), table);
process.stdout.write(table);
