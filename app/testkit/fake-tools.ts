// Stand-ins for command-line tools (docker, kind, kubectl, helm, npm) that a
// shell script under test finds first on PATH. Each stand-in is a few lines
// of bash that hands its argv (and its stdin, when the command reads `-`) to
// this process over a loopback socket and prints the answer: the test decides
// what every call answers, may take its time (a `kubectl rollout status`
// that waits for a real rollout), and sees every call in order.
//
// Protocol, one connection per call. The stand-in sends NUL-terminated
// fields: the tool, argc, each argument, the stdin length, then the stdin
// bytes. It gets back a line "<exit code> <stdout bytes> <stderr bytes>" and
// then the two outputs.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';

export interface ToolCall {
  readonly tool: string;
  readonly args: readonly string[];
  /** What the command read from stdin (`kubectl apply -f -`, `kind create cluster --config=-`); '' otherwise. */
  readonly stdin: string;
  /** Order of arrival, from 0. */
  readonly index: number;
}

export interface ToolAnswer {
  readonly stdout?: string;
  readonly stderr?: string;
  readonly code?: number;
}

export type ToolHandler = (call: ToolCall) => ToolAnswer | Promise<ToolAnswer>;

export class FakeTools {
  readonly calls: ToolCall[] = [];
  #server: Server | undefined;

  private constructor(
    readonly binDir: string,
    readonly handler: ToolHandler,
  ) {}

  /** Writes a stand-in for each of `tools` into `binDir` and listens for their calls. */
  static async start(binDir: string, tools: readonly string[], handler: ToolHandler): Promise<FakeTools> {
    const fake = new FakeTools(binDir, handler);
    const server = createServer((socket) => fake.#serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    fake.#server = server;
    const { port } = server.address() as { port: number };
    mkdirSync(binDir, { recursive: true });
    for (const tool of tools) {
      const path = join(binDir, tool);
      writeFileSync(path, standIn(tool, port));
      chmodSync(path, 0o755);
    }
    return fake;
  }

  /** Calls of `tool` whose arguments include every one of `words`, in order of arrival. */
  find(tool: string, ...words: string[]): ToolCall[] {
    return this.calls.filter((c) => c.tool === tool && words.every((w) => c.args.includes(w)));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  #serve(socket: Socket): void {
    let buffer = Buffer.alloc(0);
    let answered = false;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const request = parseRequest(buffer);
      if (request === undefined || answered) return;
      answered = true;
      const call: ToolCall = { ...request, index: this.calls.length };
      this.calls.push(call);
      void Promise.resolve()
        .then(() => this.handler(call))
        .catch((err: unknown): ToolAnswer => ({ code: 70, stderr: `fake ${call.tool}: the test's handler threw: ${String(err)}\n` }))
        .then((answer) => {
          const stdout = Buffer.from(answer.stdout ?? '');
          const stderr = Buffer.from(answer.stderr ?? '');
          socket.end(Buffer.concat([Buffer.from(`${answer.code ?? 0} ${stdout.length} ${stderr.length}\n`), stdout, stderr]));
        });
    });
  }
}

/** A complete request in `buffer`, or undefined while bytes are still to come. */
function parseRequest(buffer: Buffer): Omit<ToolCall, 'index'> | undefined {
  let offset = 0;
  const field = (): string | undefined => {
    const end = buffer.indexOf(0, offset);
    if (end < 0) return undefined;
    const value = buffer.subarray(offset, end).toString();
    offset = end + 1;
    return value;
  };
  const tool = field();
  const argc = field();
  if (tool === undefined || argc === undefined) return undefined;
  const args: string[] = [];
  for (let i = 0; i < Number(argc); i++) {
    const arg = field();
    if (arg === undefined) return undefined;
    args.push(arg);
  }
  const stdinLength = field();
  if (stdinLength === undefined || buffer.length < offset + Number(stdinLength)) return undefined;
  return { tool, args, stdin: buffer.subarray(offset, offset + Number(stdinLength)).toString() };
}

/** The bash stand-in for `tool`. LC_ALL=C: lengths are bytes. */
function standIn(tool: string, port: number): string {
  return `#!/usr/bin/env bash
# Stand-in for ${tool}, written by app/testkit/fake-tools.ts: the test answers.
export LC_ALL=C
exec 3<>/dev/tcp/127.0.0.1/${port} || { echo "fake ${tool}: the test's tool server is gone" >&2; exit 127; }
input=""
for arg in "$@"; do
  case "$arg" in -|--config=-) input="$(cat)"; break ;; esac
done
{ printf '%s\\0' ${tool} "$#" "$@"; printf '%s\\0%s' "\${#input}" "$input"; } >&3
read -r code outlen errlen <&3
IFS= read -r -d '' -N "$outlen" out <&3 || true
IFS= read -r -d '' -N "$errlen" err <&3 || true
printf '%s' "$out"
printf '%s' "$err" >&2
exit "$code"
`;
}
