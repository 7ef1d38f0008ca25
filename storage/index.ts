// Public entry of storage: the event log.
export { EventLog, type CommitEvent, type CommitInfo, type LogOptions, type ReadOptions } from "./log.ts";
export { LogClosedError, CommitError } from "./errors.ts";
export { jsonStringify } from "./codec.ts";
export { CommandBus, DEFAULT_TTL_MS, type SubmitCommand, type CommandRecord, type ListCommands } from "./commands.ts";
