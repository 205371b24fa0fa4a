// File descriptors: how many connections the public port may hold before the
// process runs out of them (RLIMIT_NOFILE), keeping a reserve for everything
// else the process must still be able to open.
//
// Why the public port needs a budget at all: when accept() fails with EMFILE,
// libuv does not report it. It closes a spare descriptor, accepts and closes
// the waiting connections itself, and reopens the spare (uv__emfile_trick in
// libuv's src/unix/stream.c), so the server's 'error' event never fires: a
// starved process would refuse connections without a log line or a count,
// and a Prometheus scrape on the metrics port would be refused the same way.
// Below the budget none of that happens; past it, Node closes each new
// connection itself and emits 'drop', which the server counts.
import { readdirSync, readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import type { Logger } from './logger.js';

/** Descriptors kept free for the metrics port, the Kubernetes API, DNS and the accept() that precedes a drop. */
export const DESCRIPTOR_RESERVE = 32;

export interface DescriptorBudget {
  /** RLIMIT_NOFILE (soft; Node raises it to the hard limit at start). */
  readonly limit: number;
  /** Descriptors open when the budget was computed (stdio, the event loop, …). */
  readonly open: number;
  /** Connections the public port may hold: limit − open − reserve, at least 1. */
  readonly connections: number;
}

/**
 * The budget from /proc/self (Linux). Undefined where /proc is missing or the
 * limit is unlimited: then the public port has no budget.
 */
export function descriptorBudget(reserve = DESCRIPTOR_RESERVE, proc = '/proc/self'): DescriptorBudget | undefined {
  let limits: string;
  let open: number;
  try {
    limits = readFileSync(`${proc}/limits`, 'utf8');
    open = readdirSync(`${proc}/fd`).length;
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits);
  if (!match || match[1] === 'unlimited') return undefined;
  const limit = Number(match[1]);
  return { limit, open, connections: Math.max(1, limit - open - reserve) };
}

/**
 * Keeps `server` within the descriptor budget: past it Node drops each new
 * connection and emits 'drop'. After listen() the only 'error' a server emits
 * is an accept failure libuv does report. Either way the failure is counted
 * (`onFailure`) and logged once, and the connections already open keep being
 * served.
 */
export function guardAccepts(server: Server, maxConnections: number, onFailure: () => void, log: Logger): void {
  const budget = descriptorBudget();
  if (budget !== undefined) server.maxConnections = budget.connections;
  let logged = false;
  const failed = (err?: Error): void => {
    onFailure();
    if (logged) return;
    logged = true;
    log.error(
      { ...(err ? { err } : {}), openFilesLimit: budget?.limit, connectionBudget: budget?.connections },
      'cannot accept connections: out of file descriptors (raise RLIMIT_NOFILE or lower MAX_CONNECTIONS); counting further failures in websocket_accept_errors_total',
    );
  };
  server.on('drop', () => failed());
  server.on('listening', () => server.on('error', failed));
  if (budget !== undefined && budget.connections < maxConnections) {
    log.warn(
      { openFilesLimit: budget.limit, connectionBudget: budget.connections, maxConnections },
      'RLIMIT_NOFILE allows fewer connections than MAX_CONNECTIONS; past the budget new connections are dropped',
    );
  }
}
