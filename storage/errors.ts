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
