// The configuration files, as TypeBox schemas with their defaults. server/config.ts loads YAML and
// validates it against these; schemas/json/*.schema.json are emitted from them for editors.
import { Type, type Static } from "@sinclair/typebox";
import { TagAlarms } from "./alarms.ts";
import { TlsFiles } from "./tls.ts";

const Id = Type.String({ pattern: "^[A-Za-z0-9_.-]+$", minLength: 1, maxLength: 64 });
/** What a tag name may hold (also checked on tag names in request paths). */
export const TAG_NAME_PATTERN = "^[A-Za-z0-9_.:/-]{1,200}$";
const TagName = Type.String({ pattern: "^[A-Za-z0-9_.:/-]+$", minLength: 1, maxLength: 200 });

/** Default bind address of every listener (HTTP, OPC UA server, Modbus slave): this machine only. */
export const LOOPBACK = "127.0.0.1";
/** True for an address that only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}
const BIND_HELP = "interface to listen on: 127.0.0.1 (default) = this machine only; 0.0.0.0 = every interface (see the README before opening it)";

// ---- gateway.yml: ports, data directory, log tuning -------------------------------------------
export const LogTuning = Type.Object({
  batchSize: Type.Integer({ minimum: 1, maximum: 100_000, default: 5000, description: "frames per commit, at most" }),
  maxDelayMs: Type.Number({ minimum: 0, maximum: 10_000, default: 20, description: "longest a frame waits for its commit (commands and their acks do not wait)" }),
  highWater: Type.Integer({ minimum: 1, default: 100_000, description: "queued frames above which producers are paused" }),
  lowWater: Type.Integer({ minimum: 0, default: 50_000, description: "queued frames below which producers resume" }),
  tailFrames: Type.Integer({ minimum: 0, default: 200_000, description: "recent committed frames kept in memory for tails" }),
});
export type LogTuning = Static<typeof LogTuning>;

// ---- gateway.yml console: the operations console and its users ----------------------------------
export const ConsoleRole = Type.Union([Type.Literal("viewer"), Type.Literal("operator"), Type.Literal("admin")], {
  description: "viewer: read; operator: read and write setpoints; admin: also drivers and configuration",
});
export type ConsoleRole = Static<typeof ConsoleRole>;

export const ConsoleUser = Type.Object(
  {
    name: Type.String({ pattern: "^[A-Za-z0-9_.@-]+$", minLength: 1, maxLength: 64, description: "the login name (recorded as the actor of writes)" }),
    passwordHash: Type.String({ pattern: "^\\$(argon2id|argon2i|argon2d|2[aby])\\$", description: "from `npm run edgectl -- hash-password` (never the password itself)" }),
    role: ConsoleRole,
    tenant: Type.String({ minLength: 1, default: "default", description: "the tenant whose tags the user sees and writes" }),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: "tag patterns the user may see (* within a segment, ** across); absent: all of the tenant's" })),
  },
  { additionalProperties: false },
);
export type ConsoleUser = Static<typeof ConsoleUser>;

export const GatewayConfig = Type.Object(
  {
    gatewayId: Type.String({ default: "edge-1", minLength: 1 }),
    watchConfig: Type.Boolean({ default: true, description: "reload endpoints/drivers/variables.yml when they change" }),
    dataDir: Type.String({ default: "./data" }),
    // Every listener binds to loopback unless the config opens it (README: "Listening interfaces").
    http: Type.Object(
      {
        host: Type.String({ default: LOOPBACK, description: BIND_HELP }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
      },
      { default: {} },
    ),
    // Bridge sections: the port lives here; the rest is validated by the bridge's own schema
    // (bridges/<name>/config.ts), so a bridge owns its options.
    opcua: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        host: Type.String({ default: LOOPBACK, description: BIND_HELP }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 4840 }),
      },
      { default: {}, additionalProperties: true },
    ),
    modbusSlave: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        host: Type.String({ default: LOOPBACK, description: BIND_HELP }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 5020 }),
      },
      { default: {}, additionalProperties: true },
    ),
    // validated in full by bridges/mqtt-north/config.ts
    mqtt: Type.Object({ enabled: Type.Boolean({ default: false }) }, { default: {}, additionalProperties: true, description: "MQTT uplink (mqtt-north)" }),
    // validated in full by bridges/nats/config.ts
    nats: Type.Object({ enabled: Type.Boolean({ default: false }) }, { default: {}, additionalProperties: true, description: "NATS JetStream bridge (bridges/nats)" }),
    demo: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: "start the simulated plant (a Modbus TCP PLC on loopback)" }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 5021 }),
      },
      { default: {} },
    ),
    log: Type.Object(LogTuning.properties, { default: {} }),
    query: Type.Object(
      {
        timeoutMs: Type.Integer({ minimum: 10, default: 30_000, description: "a user query running longer is interrupted" }),
        maxRows: Type.Integer({ minimum: 1, default: 1_000_000, description: "rows per result, at most (the result says when it was cut)" }),
        memoryLimit: Type.String({ default: "1GB", description: "DuckDB memory_limit of the whole database instance" }),
        threads: Type.Integer({ minimum: 0, default: 1, description: "DuckDB worker threads (0: DuckDB's default); 1 leaves a core for ingest" }),
        maxConcurrent: Type.Integer({
          minimum: 0,
          default: 0,
          description: "user queries running at once (0: auto, one less than the N-API thread pool, UV_THREADPOOL_SIZE or the core count, so the log writer always has a thread)",
        }),
        maxQueued: Type.Integer({ minimum: 0, default: 32, description: "queries waiting for a slot (their deadline counting); more are refused with 429 and Retry-After" }),
        niceQueries: Type.Integer({
          minimum: 0,
          maximum: 19,
          default: 10,
          description: "CPU priority (nice) of a thread while it runs a user query, below the threads that ingest (0: unchanged; Linux)",
        }),
        maxResultBytes: Type.Integer({ minimum: 1024, default: 64 * 1024 * 1024, description: "bytes per result, at most (the result is cut and says so; a single larger value is refused with 422)" }),
      },
      { default: {} },
    ),
    retention: Type.Object(
      {
        maxAgeHours: Type.Number({ minimum: 0, default: 0, description: "frames committed longer ago leave the hot table (0: no age limit)" }),
        maxFrames: Type.Integer({ minimum: 0, default: 0, description: "frames kept in the hot table, at most (0: no count limit)" }),
        archive: Type.Boolean({ default: true, description: "write leaving frames to Parquet in <dataDir>/archive first" }),
        intervalMs: Type.Integer({ minimum: 1000, default: 600_000, description: "how often the policy runs" }),
        chunkFrames: Type.Integer({ minimum: 1000, default: 500_000, description: "frames per Parquet write and delete" }),
      },
      { default: {} },
    ),
    commands: Type.Object(
      {
        ttlMs: Type.Integer({ minimum: 1, default: 30_000, description: "a command not executed within this time is acked expired, never executed" }),
        maxTtlMs: Type.Integer({ minimum: 1, default: 300_000, description: "upper bound of a ttlMs asked for in a request" }),
        ackTimeoutMs: Type.Integer({ minimum: 0, default: 5000, description: "how long PUT /api/tags/:tag waits for the ack before answering 202" }),
        writeTimeoutMs: Type.Integer({ minimum: 1, default: 5000, description: "longest a device write may take (then acked timeout_outcome_unknown: it may or may not have been applied)" }),
        maxBodyBytes: Type.Integer({ minimum: 16, default: 4096, description: "larger write bodies are refused with 413" }),
      },
      { default: {} },
    ),
    auth: Type.Object(
      {
        hs256Secret: Type.Optional(
          Type.Union([Type.Literal(""), Type.String({ minLength: 32 })], {
            description: "shared secret for HS256 tokens (at least 32 characters); empty: none, so that `${EDGE_JWT_SECRET:-}` can leave it unset",
          }),
        ),
        hs256SecretFile: Type.Optional(Type.String({ description: "file holding the HS256 secret (relative to the config directory)" })),
        jwksFile: Type.Optional(Type.String({ description: "JWKS file of public keys (EdDSA Ed25519 or RS256), relative to the config directory" })),
        issuer: Type.Optional(Type.String({ description: "required iss claim" })),
        audience: Type.Optional(Type.String({ description: "required aud claim" })),
        clockToleranceSec: Type.Integer({ minimum: 0, maximum: 300, default: 30, description: "clock skew allowed on exp, nbf and iat (an iat further in the future is refused)" }),
        maxTokenLifetimeSec: Type.Optional(
          Type.Integer({ minimum: 1, description: "longest lifetime a token may have (exp - iat, or exp - now without iat); unset: no bound" }),
        ),
      },
      { default: {}, additionalProperties: false },
    ),
    console: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: "serve the operations console at / (the API stays under /api)" }),
        sessionTtlSec: Type.Integer({ minimum: 60, maximum: 86_400, default: 900, description: "lifetime of a console login's token; the console renews it while the user is active" }),
        users: Type.Array(ConsoleUser, { default: [], description: "who may log in to the console (none by default)" }),
      },
      { default: {}, additionalProperties: false },
    ),
    metrics: Type.Object(
      {
        tagLabels: Type.Boolean({
          default: false,
          description: "label per-tag counters of /metrics with the tag name (edge_write_total{tag}); off: /metrics names no tag",
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    health: Type.Object(
      {
        consumerLagFrames: Type.Integer({ minimum: 1, default: 100_000, description: "a log consumer further behind the head makes /readyz degraded" }),
        consumerLagSeconds: Type.Number({ minimum: 0.1, default: 60, description: "a log consumer whose oldest unhandled frame is older makes /readyz degraded" }),
        commitStallSeconds: Type.Number({ minimum: 0.1, default: 10, description: "frames queued and no commit for this long: commits stalled (/readyz degraded)" }),
      },
      { default: {} },
    ),
    drivers: Type.Object(
      {
        backoffBaseMs: Type.Integer({ minimum: 1, default: 1000 }),
        backoffMaxMs: Type.Integer({ minimum: 1, default: 60_000 }),
        faultAfterCrashes: Type.Integer({ minimum: 1, default: 5, description: "crashes within faultWindowMs that mark a driver Fault" }),
        faultWindowMs: Type.Integer({ minimum: 1, default: 300_000 }),
        watchdogMs: Type.Integer({ minimum: 0, default: 30_000, description: "a driver silent this long is treated as hung (0: off)" }),
      },
      { default: {} },
    ),
    plugins: Type.Object(
      {
        allowUnsigned: Type.Boolean({ default: false, description: "DEVELOPMENT ONLY: load plugins without plugin.sig (shown as unsigned in status)" }),
        memoryMb: Type.Integer({ minimum: 640, default: 768, description: "address-space cap of each plugin process (prlimit --as); Bun itself takes about 600 MB of it" }),
        callTimeoutMs: Type.Integer({ minimum: 1, default: 5000, description: "a plugin call (init, connect, poll, write, decode) unanswered this long kills the plugin's process" }),
        maxUploadBytes: Type.Integer({ minimum: 1024, default: 16 * 1024 * 1024, description: "largest plugin archive POST /api/plugins accepts" }),
        watch: Type.Boolean({ default: true, description: "load, swap and unload plugins when their folders under <config>/plugins change" }),
      },
      { default: {} },
    ),
  },
  { $id: "gateway.yml", additionalProperties: false },
);
export type GatewayConfig = Static<typeof GatewayConfig>;

// ---- endpoints.yml ------------------------------------------------------------------------------
export const Endpoint = Type.Object(
  {
    url: Type.String({ description: "tcp://host:port, serial:///dev/ttyUSB0?baud=9600, tls+tcp://host:port, opc.tcp://host:port/path" }),
    timeoutMs: Type.Integer({ minimum: 1, default: 1000 }),
    tls: Type.Optional(TlsFiles),
  },
  // TypeBox's Value.Default only descends into a Record's values when their schema has a default:
  // without this one, timeoutMs would never be defaulted and every endpoint without it refused.
  { additionalProperties: false, default: {} },
);
export const EndpointsFile = Type.Object(
  { endpoints: Type.Record(Id, Endpoint, { default: {} }) },
  { $id: "endpoints.yml", additionalProperties: false },
);
export type EndpointsFile = Static<typeof EndpointsFile>;

// ---- drivers.yml --------------------------------------------------------------------------------
export const DriverEntry = Type.Object(
  {
    id: Id,
    type: Type.String({ default: "plugin", description: "simulator | modbus | opcua | mqtt | plugin (the default when `plugin` names one)" }),
    plugin: Type.Optional(Type.String({ pattern: "^[a-z][a-z0-9_-]{0,63}$", description: "the plugin driver to run (a folder under <config>/plugins), with type plugin" })),
    endpoint: Type.Optional(Id),
    enabled: Type.Boolean({ default: true }),
    config: Type.Record(Type.String(), Type.Unknown(), { default: {}, description: "driver-specific, validated by the driver" }),
  },
  { additionalProperties: false },
);
export type DriverEntry = Static<typeof DriverEntry>;
export const DriversFile = Type.Object(
  { drivers: Type.Array(DriverEntry, { default: [] }) },
  { $id: "drivers.yml", additionalProperties: false },
);
export type DriversFile = Static<typeof DriversFile>;

// ---- variables.yml: the tag catalog -------------------------------------------------------------
export const DataType = Type.Union(
  ["bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"].map((t) => Type.Literal(t)),
);
export type DataType = Static<typeof DataType>;

export const Access = Type.Union([Type.Literal("R"), Type.Literal("W"), Type.Literal("RW")], { default: "R" });

export const ModbusAddress = Type.Object(
  {
    area: Type.Union([Type.Literal("coil"), Type.Literal("discrete"), Type.Literal("holding"), Type.Literal("input")]),
    address: Type.Integer({ minimum: 0, maximum: 65535, description: "zero-based register/coil address" }),
    unitId: Type.Optional(Type.Integer({ minimum: 0, maximum: 255 })),
    length: Type.Optional(Type.Integer({ minimum: 1, maximum: 125, description: "registers, for strings" })),
    bit: Type.Optional(Type.Integer({ minimum: 0, maximum: 15, description: "bool stored as one bit of a holding/input register (0: least significant)" })),
    byteOrder: Type.Union([Type.Literal("BE"), Type.Literal("LE")], { default: "BE", description: "bytes within a register" }),
    wordOrder: Type.Union([Type.Literal("BE"), Type.Literal("LE")], { default: "BE", description: "BE: high word first (ABCD); LE: low word first (CDAB)" }),
  },
  { additionalProperties: false },
);
export type ModbusAddress = Static<typeof ModbusAddress>;

/** Derived tags: an expression over other tags, computed by bridges/rules/derived.ts. */
export const DerivedSpec = Type.Object(
  {
    expr: Type.String({ minLength: 1, maxLength: 1000, description: "expression over other tags (schemas/expr.ts): `Boiler.T - Boiler.Tret`, `avg(A, B)`" }),
  },
  { additionalProperties: false },
);
export type DerivedSpec = Static<typeof DerivedSpec>;

export const WindowFn = Type.Union([Type.Literal("avg"), Type.Literal("min"), Type.Literal("max"), Type.Literal("rate"), Type.Literal("total")]);
/** Windowed aggregates of one input tag, computed by bridges/rules/derived.ts. */
export const WindowSpec = Type.Object(
  {
    fn: WindowFn,
    tag: TagName,
    seconds: Type.Number({ exclusiveMinimum: 0, maximum: 86_400 * 7, description: "avg/min/max: the moving window; rate: the span the rate is taken over; total: ignored" }),
    counterMax: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, description: "rate: the input is a counter that wraps to 0 after this value (e.g. 65535, 4294967295); a fall is a wrap, not a negative rate" }),
    ),
    perSeconds: Type.Number({ exclusiveMinimum: 0, default: 1, description: "rate: units per this many seconds (60: per minute); total: the input's rate unit (3600: the input is per hour)" }),
  },
  { additionalProperties: false },
);
export type WindowSpec = Static<typeof WindowSpec>;

export const Variable = Type.Object(
  {
    tag: TagName,
    driver: Type.Optional(Id),
    type: DataType,
    address: Type.Optional(Type.Union([ModbusAddress, Type.Record(Type.String(), Type.Unknown())], { description: "driver-specific address" })),
    group: Type.String({ default: "default", description: "poll group name (the driver sets each group's rate)" }),
    scale: Type.Number({ default: 1 }),
    offset: Type.Number({ default: 0 }),
    expr: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1000,
        description: "engineering value from the raw one, instead of scale/offset: `raw * 0.1 - 40` (read-only tags: a write has no inverse)",
      }),
    ),
    unit: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    deadband: Type.Number({ minimum: 0, default: 0, description: "absolute change below which a reading is not logged" }),
    deadbandPercent: Type.Optional(
      Type.Number({ minimum: 0, maximum: 100, description: "change below this percent of max - min (both set) or else of the last logged value is not logged" }),
    ),
    reportByException: Type.Optional(
      Type.Boolean({ default: true, description: "log a reading only when its value (beyond the deadband) or quality changed, or maxIntervalMs passed" }),
    ),
    maxIntervalMs: Type.Optional(
      Type.Integer({ minimum: 0, default: 60_000, description: "heartbeat: an unchanged reading is logged again after this long (0: never)" }),
    ),
    clamp: Type.Optional(
      Type.Boolean({ default: false, description: "hold values to [min, max]; a held value is Uncertain_EngineeringUnitsExceeded (limit bits high/low)" }),
    ),
    derived: Type.Optional(DerivedSpec),
    window: Type.Optional(WindowSpec),
    access: Access,
    min: Type.Optional(Type.Number()),
    max: Type.Optional(Type.Number()),
    tenant: Type.String({ default: "default" }),
    alarms: Type.Optional(TagAlarms),
  },
  {
    additionalProperties: false,
    // for editors: a tag has a source (the gateway checks exactly one: schemas/tag-checks.ts)
    anyOf: ["driver", "derived", "window"].map((p) => ({ required: [p], properties: { [p]: {} } })),
  },
);
export type Variable = Static<typeof Variable>;

/** The source name of tags no driver reads (derived tags and windows, computed by bridges/rules/derived.ts). */
export const DERIVED_SOURCE = "derived";
/** Who produces a tag's frames: its driver, or the derived-tag consumer. */
export const tagSource = (t: Pick<Variable, "driver">): string => t.driver ?? DERIVED_SOURCE;
/** True for a tag computed by the gateway from other tags (derived expression or window). */
export const isDerived = (t: Pick<Variable, "derived" | "window">): boolean => t.derived !== undefined || t.window !== undefined;

export const VariablesFile = Type.Object(
  { tags: Type.Array(Variable, { default: [] }) },
  { $id: "variables.yml", additionalProperties: false },
);
export type VariablesFile = Static<typeof VariablesFile>;
