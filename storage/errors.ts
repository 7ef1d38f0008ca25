// Named errors of the storage area.
export class LogClosedError extends Error {
  override name = "LogClosedError";
  constructor() {
    super("the event log is closed");
  }
}

export class CommitError extends Error {
  override name = "CommitError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** User SQL refused by the sandbox: not a single SELECT, or it names something it may not read. */
export class QueryRefused extends Error {
  override name = "QueryRefused";
}

/** User SQL that DuckDB could not run (syntax, unknown column, out of memory ...). */
export class QueryError extends Error {
  override name = "QueryError";
}

/** A query refused or interrupted because the query engine stops (the gateway shuts down). */
export class QueryStopping extends QueryError {
  override name = "QueryStopping";
  constructor() {
    super("the gateway is stopping: the query was refused or interrupted");
  }
}

/** User SQL interrupted past its time limit. */
export class QueryTimeout extends Error {
  override name = "QueryTimeout";
  constructor(readonly timeoutMs: number) {
    super(`the query ran past its time limit of ${timeoutMs} ms and was interrupted`);
  }
}

/** Every query slot is taken and the waiting queue is full: the query was not started. */
export class QueryBusy extends Error {
  override name = "QueryBusy";
  constructor(
    /** seconds after which a place is expected to be free (an upper bound: the oldest waiter's deadline) */
    readonly retryAfterSec: number,
    running: number,
    queued: number,
  ) {
    super(`the gateway runs ${running} queries and ${queued} more wait: try again in ${retryAfterSec} s`);
  }
}

/** A single value of the result is larger than the whole result budget: the query is refused, not cut. */
export class ResultTooLarge extends Error {
  override name = "ResultTooLarge";
  constructor(
    readonly column: string,
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(`a value of column '${column}' is ${bytes} bytes, more than the result budget of ${maxBytes} bytes (query.maxResultBytes); select a shorter part of it, e.g. left(${column}, n)`);
  }
}

/** A frame the log cannot store; the append that carried it is refused, nothing else. */
export class FrameError extends Error {
  override name = "FrameError";
}

/**
 * The log cannot commit for now (disk full, database being reopened) and already holds as many frames
 * as it may keep waiting: this append is refused, nothing of it is stored. Retry after `log.waitForCapacity()`.
 */
export class LogDegradedError extends Error {
  override name = "LogDegradedError";
  constructor(readonly reason: string) {
    super(`the event log cannot commit for now and refuses more frames: ${reason}`);
  }
}
