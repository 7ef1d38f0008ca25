// Shared mapping from raw device values to engineering values and back (scale/offset, types). The rest of
// the read-side mapping (expression, clamp, report by exception) is schemas/mapping.ts, applied by the
// manager to every driver's frames.
import type { DataType, Value, Variable } from "../schemas/index.ts";
export { LIMIT_HIGH, LIMIT_LOW, MappingTable, type MappingHooks } from "../schemas/mapping.ts";

/** raw -> engineering: value * scale + offset (numbers only; bool/string/bigint pass through unscaled). */
export function toEngineering(v: Variable, raw: Value): Value {
  if (typeof raw !== "number" || (v.scale === 1 && v.offset === 0)) return raw;
  return raw * v.scale + v.offset;
}

/** engineering -> raw: the inverse, for writes; integers are rounded to the nearest step. */
export function toRaw(v: Variable, value: Value): Value {
  if (typeof value !== "number") return value;
  const raw = v.scale === 1 && v.offset === 0 ? value : (value - v.offset) / v.scale;
  return isIntegerType(v.type) ? Math.round(raw) : raw;
}

export function isIntegerType(t: DataType): boolean {
  return t === "int16" || t === "uint16" || t === "int32" || t === "uint32" || t === "int64" || t === "uint64";
}
