// `npm run bench`: see app/testkit/bench/bench.ts. Writes docs/reports/bench.json
// and the README's performance section; `--quick` runs a tiny configuration
// that only proves every case works and writes nothing into the README.
import { parseArgs } from 'node:util';
import { benchMarkdown, FULL, QUICK, runBench, writeIntoReadme, writeJson } from '../app/testkit/bench/bench.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    out: { type: 'string' },
  },
});
const base = values.quick ? QUICK : FULL;
const options = { ...base, ...(values.runs ? { runs: Number(values.runs) } : {}) };
// NODE_PATH reaches the servers under test (an add-on installed outside node_modules): the command says so.
const command = `${process.env.NODE_PATH ? `NODE_PATH=${process.env.NODE_PATH} ` : ''}npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
const result = await runBench(options, (line) => console.log(`bench: ${line}`));
const markdown = benchMarkdown(result, command);
writeJson(result, values.out ?? (values.quick ? 'reports/bench-quick.json' : 'docs/reports/bench.json'));
if (!values.quick) writeIntoReadme(markdown);
console.log(`\n${markdown}`);
