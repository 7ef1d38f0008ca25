// One user query inside DuckDB: its deadline, its cancellation, and the moment it has really stopped.
//
// Why interrupts repeat: `connection.interrupt()` acts only on a query DuckDB is executing. A call still
// waiting for a thread of the N-API pool (storage/query-slots.ts) is not executing yet, so one interrupt
// at the deadline was lost and the query then ran to its end (11 minutes in the issue). Here the caller
// gets its error at the deadline at once, and the connection is interrupted every INTERRUPT_EVERY_MS
// until the DuckDB call in flight has returned; only then are the connection and the slot given back.
import type { DuckDBConnection } from "@duckdb/node-api";
import { deferred } from "./time.ts";

/** How often a cancelled query is interrupted again until DuckDB has let it go. */
export const INTERRUPT_EVERY_MS = 100;

export class QueryExecution {
  private inflight = 0;
  private reason: Error | null = null;
  private readonly stopped = deferred<never>();
  private readonly quiet = deferred<void>();
  private finished = false;
  private givenBack = false;
  private nag: ReturnType<typeof setInterval> | null = null;
  private readonly timer: ReturnType<typeof setTimeout>;
  private readonly onAbort: () => void;

  constructor(
    readonly conn: DuckDBConnection,
    remainingMs: number,
    expired: () => Error,
    private readonly signal: AbortSignal | undefined,
    aborted: () => Error,
    /** called once, when the consumer is done and no DuckDB call is in flight: give back conn and slot */
    private readonly onSettled: () => void,
  ) {
    // the caller races every call against this; nobody else awaits it
    this.stopped.promise.catch(() => undefined);
    this.timer = setTimeout(() => this.cancel(expired()), Math.max(0, remainingMs));
    this.onAbort = () => this.cancel(aborted());
    signal?.addEventListener("abort", this.onAbort, { once: true });
    if (signal?.aborted) this.onAbort();
  }

  /** Why the query was stopped (deadline, client gone, engine stopping), or null while it may run. */
  get stopReason(): Error | null {
    return this.reason;
  }

  /** Resolves once the query was cancelled or finished and no DuckDB call is in flight. */
  get settled(): Promise<void> {
    return this.quiet.promise;
  }

  /**
   * Runs one DuckDB call of this query. Rejects with the stop reason as soon as the query is cancelled,
   * even while DuckDB is still busy with the call (it is being interrupted meanwhile).
   */
  async call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.reason) throw this.reason;
    this.inflight++;
    const p = fn();
    void p.then(this.callDone, this.callDone);
    return Promise.race([p, this.stopped.promise]);
  }

  private readonly callDone = () => {
    this.inflight--;
    this.settleIfQuiet();
  };

  /** Stops the query: its calls reject with `reason`, and DuckDB is interrupted until it lets go. */
  cancel(reason: Error): void {
    if (this.reason || this.finished) return;
    this.reason = reason;
    this.stopped.reject(reason);
    this.interruptWhileBusy();
    if (this.inflight > 0) this.nag = setInterval(this.interruptWhileBusy, INTERRUPT_EVERY_MS);
    this.settleIfQuiet();
  }

  private readonly interruptWhileBusy = () => {
    if (this.inflight > 0) this.conn.interrupt();
  };

  /** The consumer is done with the result (read to the end, failed or abandoned). */
  finish(): void {
    this.finished = true;
    this.settleIfQuiet();
  }

  private settleIfQuiet(): void {
    if (this.inflight > 0 || !(this.finished || this.reason)) return;
    if (this.nag) clearInterval(this.nag);
    this.nag = null;
    this.quiet.resolve();
    if (!this.finished || this.givenBack) return;
    this.givenBack = true;
    clearTimeout(this.timer);
    this.signal?.removeEventListener("abort", this.onAbort);
    this.onSettled();
  }
}

