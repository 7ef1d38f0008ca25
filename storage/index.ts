// Public entry of storage: the event log.
export { EventLog, type CommitEvent, type CommitInfo, type LogOptions, type ReadOptions, type LogHealth, type RecoveredEvent } from "./log.ts";
export type { SandboxOptions } from "./database.ts";
export { LogClosedError, CommitError, FrameError, LogDegradedError, QueryRefused, QueryError, QueryTimeout, QueryBusy, QueryStopping, ResultTooLarge } from "./errors.ts";
export { ParquetExporter, ParquetExportError, UnsupportedColumnType, type ParquetFile } from "./parquet-export.ts";
export { QueryEngine, type QueryEngineOptions, type QueryResult, type ChunkResult, type RunOptions, type Column } from "./query.ts";
export { QuerySlots, defaultQuerySlots } from "./query-slots.ts";
export { QUERY_VIEWS } from "./views.ts";
export { jsonStringify } from "./codec.ts";
export { lastEventsByTag } from "./last-events.ts";
export { CommandBus, DEFAULT_TTL_MS, type SubmitCommand, type CommandRecord, type ListCommands } from "./commands.ts";
export { LogConsumer, consume, Rewind, type ConsumerOptions, type ConsumerStatus, type ConsumerState, type ConsumerContext, type PageHandler, type ConsumerLogger } from "./consumer.ts";
export { delay, deadline, settlesWithin, backoffDelay, deferred, TIMED_OUT, ABORTED, type BackoffSettings, type Deferred } from "./time.ts";
