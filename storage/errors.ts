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

/** User SQL interrupted past its time limit. */
export class QueryTimeout extends Error {
  override name = "QueryTimeout";
  constructor(readonly timeoutMs: number) {
    super(`the query ran past its time limit of ${timeoutMs} ms and was interrupted`);
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
