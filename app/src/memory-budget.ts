// The memory budget: how many bytes clients may make the process hold (echoes
// queued for them, messages they have not finished sending, kernel socket
// buffers charged to the container) before the overload guard (overload.ts)
// acts. Derived from the container's memory limit unless set, so that the
// process stays below the limit however the budget is spent. The chart
// repeats this arithmetic in its templates (ws-echo.memoryBudget) and a chart
// test compares the two.
import type { MemoryLimit } from './cgroup.js';
import { ConfigError, type Config } from './config.js';

/** What the runtime needs before any client connects: node, V8's heap, the code (measured: 60–75 MB). */
export const RUNTIME_RESERVE_BYTES = 64 * 1024 * 1024;
/** What one idle connection costs, reserved for each of MAX_CONNECTIONS (measured: about 6.5 KB). */
export const CONNECTION_RESERVE_BYTES = 8 * 1024;
/**
 * The part of what is left that clients may hold. The rest covers what the
 * allocator keeps around the bytes held (measured up to 1.5× for many small
 * fragments) and what arrives between two checks of the guard.
 */
export const BUDGET_FRACTION = 0.6;

export interface BudgetInputs {
  /** The container's memory limit in bytes, if known. */
  readonly limitBytes: number | undefined;
  /** MEMORY_BUDGET_BYTES: undefined derives it from the limit, 0 turns it off. */
  readonly budgetBytes: number | undefined;
  readonly maxConnections: number;
  readonly maxPayloadBytes: number;
  readonly backpressureBytes: number;
}

export type Budget =
  { readonly bytes: number; readonly source: 'set' | 'derived' } | { readonly bytes: 0; readonly source: 'off' | 'no limit' } | { readonly error: string };

/** What the runtime and MAX_CONNECTIONS idle connections need before any client holds anything. */
export function reserveBytes(maxConnections: number): number {
  return RUNTIME_RESERVE_BYTES + maxConnections * CONNECTION_RESERVE_BYTES;
}

/**
 * The most one connection may hold within its own limits: its echo queue up
 * to BACKPRESSURE_BYTES, the echo that crossed it, and a message being
 * received.
 */
export function connectionAllowanceBytes(maxPayloadBytes: number, backpressureBytes: number): number {
  return backpressureBytes + 2 * maxPayloadBytes;
}

/** The budget, or the one-line reason the settings cannot work together. */
export function memoryBudget(inputs: BudgetInputs): Budget {
  const { limitBytes, budgetBytes, maxConnections } = inputs;
  const allowance = connectionAllowanceBytes(inputs.maxPayloadBytes, inputs.backpressureBytes);
  const reserve = reserveBytes(maxConnections);
  if (budgetBytes === 0) return { bytes: 0, source: 'off' };
  if (budgetBytes !== undefined) {
    if (limitBytes !== undefined && budgetBytes > limitBytes - reserve) {
      return {
        error:
          `MEMORY_BUDGET_BYTES=${budgetBytes} is more than the memory limit (${mib(limitBytes)}) leaves after the runtime and ` +
          `MAX_CONNECTIONS=${maxConnections} idle connections (${mib(reserve)}): lower it, raise the limit or lower MAX_CONNECTIONS`,
      };
    }
    if (budgetBytes < allowance) return { error: tooSmall(`MEMORY_BUDGET_BYTES=${budgetBytes}`, budgetBytes, allowance) };
    return { bytes: budgetBytes, source: 'set' };
  }
  if (limitBytes === undefined) return { bytes: 0, source: 'no limit' };
  const derived = Math.floor((limitBytes - reserve) * BUDGET_FRACTION);
  if (derived < allowance) {
    return {
      error:
        `the memory limit (${mib(limitBytes)}) is too small for these settings: the runtime and MAX_CONNECTIONS=${maxConnections} idle ` +
        `connections need ${mib(reserve)}, which leaves a budget of ${mib(Math.max(0, derived))} for what clients hold, less than one ` +
        `connection may hold (${mib(allowance)}: BACKPRESSURE_BYTES + 2 × MAX_PAYLOAD_BYTES). Raise the limit, lower MAX_CONNECTIONS, ` +
        'MAX_PAYLOAD_BYTES or BACKPRESSURE_BYTES, or set MEMORY_BUDGET_BYTES',
    };
  }
  return { bytes: derived, source: 'derived' };
}

function tooSmall(what: string, budget: number, allowance: number): string {
  return (
    `${what} (${mib(budget)}) is less than one connection may hold (${mib(allowance)}: BACKPRESSURE_BYTES + 2 × MAX_PAYLOAD_BYTES): ` +
    'raise it or lower MAX_PAYLOAD_BYTES or BACKPRESSURE_BYTES'
  );
}

/** Bytes as MiB with one decimal, for messages. */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** The memory the process may count on, as main.ts logs it at start. */
export interface MemoryPlan {
  /** The container's limit, if known, and where it came from. */
  readonly limit: MemoryLimit | undefined;
  /** 0 when the budget is off (set to 0, or no limit to derive it from). */
  readonly budgetBytes: number;
  readonly budgetSource: 'set' | 'derived' | 'off' | 'no limit';
}

/**
 * The limit (MEMORY_LIMIT_BYTES, else the cgroup's) and the budget; throws a
 * ConfigError when the settings cannot work within the limit.
 */
export function planMemory(config: Config, container: { limit(): MemoryLimit | undefined }): MemoryPlan {
  const limit: MemoryLimit | undefined =
    config.memoryLimitBytes !== undefined ? { bytes: config.memoryLimitBytes, source: 'MEMORY_LIMIT_BYTES' } : container.limit();
  const budget = memoryBudget({
    limitBytes: limit?.bytes,
    budgetBytes: config.memoryBudgetBytes,
    maxConnections: config.maxConnections,
    maxPayloadBytes: config.maxPayloadBytes,
    backpressureBytes: config.backpressureBytes,
  });
  if ('error' in budget) throw new ConfigError([budget.error]);
  return { limit, budgetBytes: budget.bytes, budgetSource: budget.source };
}
