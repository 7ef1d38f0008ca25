// Pure mapping of a device message to a data frame: topic filter matching with wildcard captures, a dot
// path into the payload, the value checked against the tag's type, timestamp and quality fields.
// Every refusal says why, for the log line and the event.
import { INT_RANGE, Quality, qualityCode, type Value, type Variable } from "../../schemas/index.ts";
import { isIntegerType } from "../mapping.ts";
import type { MqttMapping } from "./config.ts";

/** Levels captured by + and # when `topic` matches `filter`, or null. */
export function matchTopic(filter: string, topic: string): string[] | null {
  const f = filter.split("/");
  const t = topic.split("/");
  const caps: string[] = [];
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") {
      caps.push(t.slice(i).join("/"));
      return caps;
    }
    if (i >= t.length) return null;
    if (f[i] === "+") caps.push(t[i]!);
    else if (f[i] !== t[i]) return null;
  }
  return f.length === t.length ? caps : null;
}

export function fillTag(template: string, caps: readonly string[]): string {
  return template.replace(/\{(\d+)\}/g, (_m, n: string) => caps[Number(n) - 1] ?? "");
}

export function pick(obj: unknown, path: string): unknown {
  if (!path) return obj;
  let cur: unknown = obj;
  for (const k of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

export type BadPayloadReason = "not_decodable" | "missing_path" | "wrong_type" | "out_of_range" | "bad_timestamp" | "unhandled";

export class BadPayload extends Error {
  override name = "BadPayload";
  constructor(readonly reason: BadPayloadReason, message: string) {
    super(message);
  }
}

/**
 * A short description of a device value for a refusal message. Never serialises a structure: a deeply
 * nested payload (200 KB of brackets) made JSON.stringify throw RangeError while the message was built.
 */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === "object") return Array.isArray(v) ? `an array` : "an object";
  return `${typeof v} ${String(v).slice(0, 40)}`;
}

/** An integer value checked against the range of the tag's raw type (1000000 is not an int16). */
function inRange(tag: Variable, v: bigint | number): bigint | number {
  const [lo, hi] = INT_RANGE[tag.type]!;
  const n = typeof v === "bigint" ? v : BigInt(v);
  if (n < lo || n > hi) throw new BadPayload("out_of_range", `tag '${tag.tag}' is ${tag.type}: ${n} is outside [${lo}, ${hi}]`);
  return v;
}

const FLOAT32_MAX = 3.4028234663852886e38;

function toValue(tag: Variable, v: unknown): Value {
  if (tag.type === "bool") {
    if (typeof v === "boolean") return v;
    if (v === 0 || v === 1) return v === 1;
  } else if (tag.type === "string") {
    if (typeof v === "string") return v;
  } else if (tag.type === "int64" || tag.type === "uint64") {
    if (typeof v === "bigint") return inRange(tag, v);
    // beyond 2^53 a JSON number has already lost precision: refused rather than stored inexact
    if (typeof v === "number" && Number.isSafeInteger(v)) return inRange(tag, BigInt(v));
    if (typeof v === "string" && /^-?\d{1,20}$/.test(v)) return inRange(tag, BigInt(v));
    if (typeof v === "number" && Number.isInteger(v)) throw new BadPayload("wrong_type", `tag '${tag.tag}' is ${tag.type}: ${v} is beyond 2^53 and has lost precision; send it as a decimal string or MessagePack int64`);
  } else if (typeof v === "number" && Number.isFinite(v)) {
    if (!isIntegerType(tag.type)) {
      if (tag.type === "float32" && Math.abs(v) > FLOAT32_MAX) throw new BadPayload("out_of_range", `tag '${tag.tag}' is float32: ${v} is beyond its range`);
      return v;
    }
    if (!Number.isInteger(v)) throw new BadPayload("wrong_type", `tag '${tag.tag}' is ${tag.type}: ${v} is not an integer`);
    return inRange(tag, v);
  } else if (typeof v === "bigint") {
    return isIntegerType(tag.type) ? Number(inRange(tag, v)) : Number(v);
  }
  throw new BadPayload("wrong_type", `tag '${tag.tag}' is ${tag.type}: got ${describeValue(typeof v === "bigint" ? String(v) : v)}`);
}

function toMicros(m: MqttMapping, v: unknown): number {
  if (m.timestampUnit === "iso") {
    const t = typeof v === "string" ? Date.parse(v) : Number.NaN;
    if (Number.isNaN(t)) throw new BadPayload("bad_timestamp", `timestamp at '${m.timestamp}' is not an ISO date: ${describeValue(v)}`);
    return t * 1000;
  }
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n)) throw new BadPayload("bad_timestamp", `timestamp at '${m.timestamp}' is not a number: ${describeValue(v)}`);
  return m.timestampUnit === "us" ? n : m.timestampUnit === "s" ? n * 1e6 : n * 1000;
}

function toQuality(v: unknown): number {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return v >>> 0;
  if (typeof v === "boolean") return v ? Quality.Good : Quality.Bad;
  if (typeof v === "string") return qualityCode(v) ?? Quality.Bad;
  return Quality.Uncertain;
}

/** The value, timestamp (µs) and quality of one decoded payload, or a BadPayload. */
export function extract(m: MqttMapping, tag: Variable, body: unknown, nowMicros: number): { value: Value; ts: number; quality: number } {
  const raw = pick(body, m.path);
  if (raw === undefined) throw new BadPayload("missing_path", `no value at '${m.path || "(payload)"}'`);
  const value = toValue(tag, raw);
  let ts = nowMicros;
  if (m.timestamp) {
    const t = pick(body, m.timestamp);
    if (t === undefined) throw new BadPayload("bad_timestamp", `no timestamp at '${m.timestamp}'`);
    ts = toMicros(m, t);
  }
  const quality = m.quality ? toQuality(pick(body, m.quality)) : Quality.Good;
  return { value, ts, quality };
}
