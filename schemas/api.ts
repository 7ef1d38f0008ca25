// The HTTP API's bodies and answers (besides the command API's, in command.ts): one TypeBox schema per
// shape, used on the routes (Elysia validates with them) and written into the OpenAPI document.
// Pure: no I/O.
import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { ApiError } from "./command.ts";

const JsonValue = Type.Union([Type.Number(), Type.Boolean(), Type.String(), Type.Null()], {
  description: "64-bit integers beyond 2^53 are exact decimal strings; NaN and infinities are \"NaN\", \"Infinity\", \"-Infinity\"",
});

/** One entry of GET /api/tags. */
export const TagView = Type.Object(
  {
    tag: Type.String(),
    driver: Type.String(),
    type: Type.String({ description: "bool, int16 ... uint64, float32, float64, string" }),
    unit: Type.Union([Type.String(), Type.Null()]),
    description: Type.Union([Type.String(), Type.Null()]),
    access: Type.String({ description: "R, W or RW" }),
    min: Type.Optional(Type.Number({ description: "lowest value a write may set (engineering units)" })),
    max: Type.Optional(Type.Number({ description: "highest value a write may set (engineering units)" })),
    tenant: Type.String(),
    value: JsonValue,
    quality: Type.String({ description: "OPC UA StatusCode name, e.g. Good, Bad_CommunicationError" }),
    ts: Type.Union([Type.String({ description: "ISO source time" }), Type.Null()]),
    offset: Type.Union([Type.Number({ description: "log offset of the latest value" }), Type.Null()]),
  },
  { $id: "TagView" },
);
export type TagView = Static<typeof TagView>;

/** GET /healthz: liveness and a summary. */
export const Liveness = Type.Object(
  {
    status: Type.Literal("ok"),
    gatewayId: Type.String(),
    uptimeSeconds: Type.Number(),
    log: Type.Object({ head: Type.Number(), queueDepth: Type.Number(), paused: Type.Boolean(), degraded: Type.Boolean() }),
    drivers: Type.Array(
      Type.Object({
        id: Type.String(),
        type: Type.String(),
        state: Type.String(),
        restarts: Type.Number(),
        errors: Type.Number(),
        lastError: Type.Union([Type.String(), Type.Null()]),
      }),
    ),
  },
  { $id: "Liveness" },
);

export const QueryBody = Type.Object(
  {
    sql: Type.String({
      minLength: 1,
      maxLength: 100_000,
      description: "one SELECT over the views frames, data, commands, acks, events, tags, frames_all, data_all, alarms",
    }),
    format: Type.Optional(
      Type.Union([Type.Literal("json"), Type.Literal("csv"), Type.Literal("arrow"), Type.Literal("parquet")], {
        description: "json (default), csv, arrow (IPC stream) or parquet (a file; X-Row-Count and X-Truncated headers say what it holds)",
      }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, description: "row limit (at most query.maxRows)" })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: "time limit (at most query.timeoutMs)" })),
  },
  { $id: "QueryBody" },
);

/** POST /api/query as JSON (streamed: a failure after the first rows ends the body with `error`). */
export const QueryAnswer = Type.Object(
  {
    columns: Type.Array(Type.Object({ name: Type.String(), type: Type.String() })),
    rows: Type.Array(Type.Array(Type.Unknown())),
    rowCount: Type.Number(),
    truncated: Type.Boolean({ description: "true when the row limit cut the result" }),
    error: Type.Optional(ApiError),
  },
  { $id: "QueryAnswer" },
);

export const HistoryAnswer = Type.Object(
  {
    tag: Type.String(),
    agg: Type.String(),
    stepMs: Type.Number(),
    from: Type.String(),
    to: Type.String(),
    t: Type.Array(Type.Number(), { description: "bucket starts, epoch milliseconds" }),
    v: Type.Array(Type.Union([Type.Number(), Type.Null()]), { description: "the aggregate of each bucket (null: no value, or a NaN or infinite one)" }),
  },
  { $id: "HistoryAnswer" },
);

/** A frame as the log holds it (fields by kind: data, cmd, ack, event; see schemas/frames.ts). */
const LoggedFrame = Type.Object(
  { kind: Type.String(), offset: Type.Number() },
  { additionalProperties: true, description: "fields by kind: DataFrame, CmdFrame, AckFrame, EventFrame (schemas/frames.ts)" },
);

export const FramesAnswer = Type.Object(
  {
    frames: Type.Array(LoggedFrame),
    next: Type.Number({ description: "the offset to pass as `after` for the next page" }),
    head: Type.Number({ description: "the last committed offset" }),
  },
  { $id: "FramesAnswer" },
);

/**
 * The error answers of a route: every listed status has the body { error, message, field? }. Spread
 * into a route's `response` next to its success schema.
 */
export function errorAnswers<S extends number>(...statuses: S[]): Record<S, typeof ApiError> {
  return Object.fromEntries(statuses.map((s) => [s, ApiError])) as Record<S, typeof ApiError>;
}

/** An OpenAPI response with a schema, for answers Elysia does not validate (streams, Response objects). */
export function documented(description: string, content: Record<string, TSchema | null>) {
  return {
    description,
    content: Object.fromEntries(Object.entries(content).map(([type, schema]) => [type, schema ? { schema } : {}])),
  };
}

/** Documented refusals (status -> when), each with the body { error, message, field? }. */
export function documentedErrors(when: Record<number, string>) {
  return Object.fromEntries(Object.entries(when).map(([status, d]) => [status, documented(d, { "application/json": ApiError })]));
}
