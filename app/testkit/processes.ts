// The one owner of child processes (services, nginx, Prometheus, podman…):
// every fixture starts its processes through `spawnOwned`, so that none
// outlives the test file or the tool that started it, whatever fails.
//
// - Under the test runner, a root `after` hook kills what is still running
//   once the file's tests are done: a test that failed half-way cannot leave
//   processes behind that keep the file alive until the runner's timeout.
// - In any process, the 'exit' handler kills what is left (a crash, Ctrl-C).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';

const running = new Set<ChildProcess>();

/** `spawn`, with the child registered for cleanup. */
export function spawnOwned(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  running.add(child);
  child.once('exit', () => running.delete(child));
  // A command that cannot start (ENOENT) emits 'error' and no 'exit'.
  child.once('error', () => running.delete(child));
  return child;
}

/** Whether the child has neither exited nor been killed by a signal. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Sends `signal` to every owned child still running and waits until they are gone. */
export async function stopAll(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const children = [...running].filter(isRunning);
  const exits = children.map((child) => once(child, 'exit'));
  for (const child of children) child.kill(signal);
  await Promise.all(exits);
}

process.once('exit', () => {
  for (const child of running) if (isRunning(child)) child.kill('SIGKILL');
});
// Ctrl-C on a tool (npm run rollout): exit, and the handler above cleans up.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  if (process.listenerCount(signal) === 0) process.once(signal, () => process.exit(130));
}

// The test runner sets NODE_TEST_CONTEXT in the process of every test file.
if (process.env.NODE_TEST_CONTEXT !== undefined) {
  const { after } = await import('node:test');
  after(() => stopAll());
}
