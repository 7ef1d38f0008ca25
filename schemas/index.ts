// Public entry of the schemas: frames, quality codes, configuration, the catalog, validation.
export * from "./frames.ts";
export * from "./acks.ts";
export * from "./quality.ts";
export * from "./config.ts";
export * from "./catalog.ts";
export * from "./errors.ts";
export * from "./validate.ts";
export * from "./redact.ts";
export * from "./command.ts";
export * from "./health.ts";
export * from "./alarms.ts";
export * from "./expr.ts";
export * from "./tag-checks.ts";
export * from "./mapping.ts";
