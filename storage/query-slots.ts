// Admission of user queries: at most `limit` run inside DuckDB at a time, at most `maxQueued` more wait
// (their deadline counting while they wait), any further one is refused at once (QueryBusy, HTTP 429).
//
// Why a limit at all: every DuckDB call of @duckdb/node-api (a query, a fetch, and the log writer's
// BEGIN/COMMIT) runs as N-API async work on one process-wide thread pool, and a heavy query holds its
// pool thread from start to end. Measured under Bun 1.4.5 on 2 cores (pool of 2): two running
// `sum(range(1e12))` stopped every commit for their whole duration, twenty stopped ingest until they
// were killed; with UV_THREADPOOL_SIZE=3, two queries left commits flowing and three stopped them again.
// So user queries must always leave at least one pool thread free for the writer.
import { availableParallelism } from "node:os";
import { QueryBusy } from "./errors.ts";

/**
 * Threads of the pool N-API async work runs on: UV_THREADPOOL_SIZE when set in the environment at
 * launch (setting it from inside the process is too late), else one per core (measured: 2 on 2 cores).
 */
export function asyncPoolThreads(env: Record<string, string | undefined> = process.env): number {
  const n = Number(env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? n : Math.max(1, availableParallelism());
}

/** The most queries that may run at once and still leave a pool thread to the log writer (at least 1). */
export const defaultQuerySlots = (env?: Record<string, string | undefined>) => Math.max(1, asyncPoolThreads(env) - 1);

/** A granted slot; `release()` once the query has really stopped inside DuckDB (idempotent). */
export interface QuerySlot {
  release(): void;
}

interface Waiter {
  deadlineAt: number;
  grant(slot: QuerySlot): void;
  fail(err: Error): void;
}

export class QuerySlots {
  private running = 0;
  private readonly waiting: Waiter[] = [];
  private closedWith: Error | null = null;

  constructor(
    readonly limit: number,
    readonly maxQueued: number,
  ) {}

  get stats(): { running: number; queued: number; limit: number; maxQueued: number } {
    return { running: this.running, queued: this.waiting.length, limit: this.limit, maxQueued: this.maxQueued };
  }

  /**
   * A slot, at once or after waiting in the queue. Rejects with QueryBusy when the queue is full, with
   * `expired()` when `deadlineAt` (ms, performance.now() clock) passes while waiting, with the closing
   * error when the slots are closed, and with `aborted()` when `signal` aborts.
   */
  acquire(deadlineAt: number, expired: () => Error, signal?: AbortSignal, aborted?: () => Error): Promise<QuerySlot> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (this.running < this.limit && this.waiting.length === 0) return Promise.resolve(this.grant());
    if (this.waiting.length >= this.maxQueued) {
      // a place frees at the latest when the oldest waiter's deadline passes
      const soonest = Math.min(...this.waiting.map((w) => w.deadlineAt));
      const retryAfterSec = Math.max(1, Math.ceil((soonest - performance.now()) / 1000));
      return Promise.reject(new QueryBusy(Number.isFinite(retryAfterSec) ? retryAfterSec : 1, this.running, this.waiting.length));
    }
    return new Promise<QuerySlot>((resolve, reject) => {
      const leave = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
      };
      const waiter: Waiter = {
        deadlineAt,
        grant: (slot) => (leave(), resolve(slot)),
        fail: (err) => (leave(), reject(err)),
      };
      const onAbort = () => waiter.fail(aborted?.() ?? new Error("aborted"));
      const timer = setTimeout(() => waiter.fail(expired()), Math.max(0, deadlineAt - performance.now()));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
      if (signal?.aborted) onAbort();
    });
  }

  /** Refuses every waiter and every later acquire with `err` (the engine stops); running slots stay. */
  close(err: Error): void {
    this.closedWith = err;
    for (const w of [...this.waiting]) w.fail(err);
  }

  private grant(): QuerySlot {
    this.running++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.running--;
        const next = this.waiting[0];
        if (next && !this.closedWith) next.grant(this.grant());
      },
    };
  }
}
