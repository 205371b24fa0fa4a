// Where things are, computed once: this file runs from dist/app/testkit/.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const chartDir = join(repoRoot, 'chart');
export const k8sDir = join(repoRoot, 'k8s');
/** The service's entry point, built: what `npm start` and the image run. */
export const serviceMain = fileURLToPath(new URL('../src/main.js', import.meta.url));
/** The example app built on the graceful library (examples/chat), built. */
export const exampleMain = fileURLToPath(new URL('../../examples/chat/server.js', import.meta.url));
/** Scratch output of tests and tools (reports, figures); ignored by git. */
export const reportsDir = join(repoRoot, 'reports');
