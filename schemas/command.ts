// Commands (setpoint writes): the check of a requested value against its tag, shared by every origin
// (REST, MQTT, OPC UA, Modbus slave), and the schemas of the command API's bodies and answers.
// Pure: no I/O. The bus that turns a checked value into a CmdFrame is storage/commands.ts.
import { Type, type Static } from "@sinclair/typebox";
import { AckCode } from "./acks.ts";
import type { Variable } from "./config.ts";
import type { Value } from "./frames.ts";

export type WriteRefusal = "unknown_tag" | "not_writable" | "type_mismatch" | "out_of_range";

export type CheckedWrite = { ok: true; value: Value } | { ok: false; code: WriteRefusal; message: string };

/** Raw integer range of each integer type (inclusive); also what the OPC UA client accepts from a server. */
export const INT_RANGE: Record<string, readonly [bigint, bigint]> = {
  int16: [-(2n ** 15n), 2n ** 15n - 1n],
  uint16: [0n, 2n ** 16n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
};

const FLOAT32_MAX = 3.4028234663852886e38;

export const isWritable = (tag: Variable): boolean => tag.access === "W" || tag.access === "RW";

const describe = (v: unknown): string => {
  if (typeof v === "bigint") return `integer ${v}`;
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (v === null) return "null";
  if (typeof v === "object") return Array.isArray(v) ? "array" : "object";
  return `${typeof v} ${String(v)}`;
};

const refuse = (code: WriteRefusal, message: string): CheckedWrite => ({ ok: false, code, message });

function checkLimits(tag: Variable, n: number): CheckedWrite | null {
  if (tag.min !== undefined && n < tag.min) return refuse("out_of_range", `value ${n} is below the minimum ${tag.min} of tag '${tag.tag}'`);
  if (tag.max !== undefined && n > tag.max) return refuse("out_of_range", `value ${n} is above the maximum ${tag.max} of tag '${tag.tag}'`);
  return null;
}

/** Integers: engineering value -> raw value, checked against the raw type's range. */
function checkInteger(tag: Variable, value: unknown): CheckedWrite {
  const [lo, hi] = INT_RANGE[tag.type]!;
  const is64 = tag.type === "int64" || tag.type === "uint64";
  const scaled = tag.scale !== 1 || tag.offset !== 0;
  let exact: bigint;
  if (typeof value === "bigint") exact = value;
  else if (typeof value === "string" && /^-?\d{1,20}$/.test(value.trim())) exact = BigInt(value.trim());
  else if (typeof value === "number" && Number.isFinite(value)) {
    if (scaled) {
      // with scale/offset the engineering value may be fractional; the raw register value is an integer step
      const limit = checkLimits(tag, value);
      if (limit) return limit;
      const raw = Math.round((value - tag.offset) / tag.scale);
      if (BigInt(raw) < lo || BigInt(raw) > hi) return refuse("out_of_range", `value ${value} gives raw ${raw}, outside ${tag.type} [${lo}, ${hi}] for tag '${tag.tag}'`);
      return { ok: true, value };
    }
    if (!Number.isInteger(value)) return refuse("type_mismatch", `tag '${tag.tag}' is ${tag.type}: expected an integer, got ${describe(value)}`);
    if (!Number.isSafeInteger(value)) return refuse("type_mismatch", `tag '${tag.tag}' is ${tag.type}: ${value} is beyond 2^53 and has lost precision; send it as a decimal string`);
    exact = BigInt(value);
  } else return refuse("type_mismatch", `tag '${tag.tag}' is ${tag.type}: expected an integer, got ${describe(value)}`);
  if (exact < lo || exact > hi) return refuse("out_of_range", `value ${exact} is outside ${tag.type} [${lo}, ${hi}] for tag '${tag.tag}'`);
  const limit = checkLimits(tag, Number(exact));
  if (limit) return limit;
  return { ok: true, value: is64 ? exact : Number(exact) };
}

/**
 * Checks a requested value against the tag: access (W or RW), type (bool/int/float/string, integer
 * range of the type), min/max (engineering units). Returns the value coerced to the tag's type
 * (bigint for int64/uint64, also when given as a decimal string; boolean for 0/1 on a bool tag) or a refusal.
 */
export function checkWrite(tag: Variable | undefined, value: unknown): CheckedWrite {
  if (!tag) return refuse("unknown_tag", "no such tag");
  if (!isWritable(tag)) return refuse("not_writable", `tag '${tag.tag}' is read-only (access ${tag.access})`);
  switch (tag.type) {
    case "bool":
      if (typeof value === "boolean") return { ok: true, value };
      if (value === 0 || value === 1) return { ok: true, value: value === 1 };
      return refuse("type_mismatch", `tag '${tag.tag}' is bool: expected true or false, got ${describe(value)}`);
    case "float32":
    case "float64": {
      if (typeof value !== "number" || !Number.isFinite(value)) return refuse("type_mismatch", `tag '${tag.tag}' is ${tag.type}: expected a finite number, got ${describe(value)}`);
      const limit = checkLimits(tag, value);
      if (limit) return limit;
      if (tag.type === "float32") {
        const raw = (value - tag.offset) / tag.scale;
        if (Math.abs(raw) > FLOAT32_MAX) return refuse("out_of_range", `value ${value} does not fit a float32 (tag '${tag.tag}')`);
        // a float32 keeps 24 significant bits (rounding error at most raw x 2^-24); below 1.18e-38 it keeps
        // fewer, and 1e-50 becomes 0: refused rather than written as another value
        if (Math.abs(Math.fround(raw) - raw) > Math.abs(raw) * 2 ** -24) {
          return refuse("out_of_range", `value ${value} is too small for a float32 (it would be written as ${Math.fround(raw)}) (tag '${tag.tag}')`);
        }
      }
      return { ok: true, value };
    }
    case "string": {
      if (typeof value !== "string") return refuse("type_mismatch", `tag '${tag.tag}' is string: expected a string, got ${describe(value)}`);
      const regs = (tag.address as { length?: unknown } | undefined)?.length;
      if (typeof regs === "number" && Buffer.byteLength(value, "utf8") > regs * 2) {
        return refuse("out_of_range", `string of ${Buffer.byteLength(value, "utf8")} bytes does not fit ${regs} registers (${regs * 2} bytes) of tag '${tag.tag}'`);
      }
      return { ok: true, value };
    }
    default:
      return checkInteger(tag, value);
  }
}

// ---- REST bodies and answers (server/api/commands.ts) -------------------------------------------
export const WriteBody = Type.Object(
  {
    value: Type.Union([Type.Number(), Type.Boolean(), Type.String()], {
      description: "the setpoint in engineering units; 64-bit integers as decimal strings",
    }),
    ttlMs: Type.Optional(Type.Integer({ minimum: 1, description: "expiry of this command (default and upper bound from gateway.yml commands:)" })),
  },
  { $id: "WriteBody", additionalProperties: false },
);
export type WriteBody = Static<typeof WriteBody>;

const JsonValue = Type.Union([Type.Number(), Type.Boolean(), Type.String(), Type.Null()]);

// Unsafe keeps the static type: Elysia's response typing loses the members of a union built by map
const Code = Type.Unsafe<AckCode>(AckCode);

export const CommandView = Type.Object(
  {
    id: Type.String(),
    tag: Type.String(),
    value: JsonValue,
    origin: Type.String(),
    actor: Type.String(),
    tenant: Type.String(),
    ts: Type.String({ description: "ISO time the command was accepted" }),
    expiresAt: Type.String(),
    offset: Type.Number(),
    status: Type.Union([Type.Literal("pending"), Type.Literal("ok"), Type.Literal("error"), Type.Literal("expired")]),
    code: Type.Unsafe<AckCode | "pending">(Type.Union([...AckCode.anyOf, Type.Literal("pending")], { description: "the ack's code (schemas/acks.ts), or pending while the command has no ack" })),
    ack: Type.Union([
      Type.Object({
        ok: Type.Boolean(),
        status: Type.String(),
        code: Code,
        error: Type.Optional(Type.String({ description: "for people; programs use code" })),
        ts: Type.String(),
        source: Type.String(),
        offset: Type.Number(),
        latencyMs: Type.Number(),
      }),
      Type.Null(),
    ]),
  },
  { $id: "CommandView" },
);
export type CommandView = Static<typeof CommandView>;

export const ApiError = Type.Object(
  {
    error: Type.String({ description: "machine-readable code" }),
    message: Type.String({ description: "one line for people" }),
    field: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: "the query or path parameter or body property at fault; null when no input is" })),
  },
  { $id: "ApiError" },
);
export type ApiError = Static<typeof ApiError>;

/** The answer of a write whose ack says it was not done (or may not have been): ApiError plus the ack's code. */
export const WriteNotDone = Type.Object(
  {
    error: Type.String({ description: "class: command_expired | not_written | write_refused | write_failed | outcome_unknown" }),
    message: Type.String(),
    code: Code,
    applied: Type.Union([Type.Boolean(), Type.Literal("unknown")], { description: "could the device have taken the value: false never, unknown read it back" }),
    command: CommandView,
  },
  { $id: "WriteNotDone" },
);
export type WriteNotDone = Static<typeof WriteNotDone>;
