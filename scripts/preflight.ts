// Runs before the test suite (npm test, npm run test:e2e): names the programs
// the end-to-end tests need that this machine lacks, and the one command
// that installs them. Elsewhere those tests are skipped with that line; in
// CI (CI=true) nothing may be skipped, so a missing program stops the run
// here, in seconds, instead of failing tests one by one.
import { findTool, missingMessage, SETUP_COMMAND, SYSTEM_TOOLS, type SystemTool } from '../app/testkit/tools.js';

const missing = (Object.keys(SYSTEM_TOOLS) as SystemTool[]).filter((tool) => findTool(tool) === undefined);
if (missing.length === 0) {
  process.stdout.write(`preflight: nginx, prometheus, chromium and podman are installed; every test runs\n`);
} else if (process.env.CI === 'true') {
  process.stderr.write(`preflight: CI=true and the end-to-end tests ${missingMessage(missing)}; .ci/run runs \`${SETUP_COMMAND}\` first\n`);
  process.exit(1);
} else {
  process.stdout.write(
    `preflight: the end-to-end tests that ${missingMessage(missing)}; they are skipped, each with that reason.\n` +
      'preflight: the unit and integration tiers run in full.\n',
  );
}
