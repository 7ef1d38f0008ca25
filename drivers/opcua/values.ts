// Conversions between OPC UA DataValues and frames (and tag values and Variants for writes).
// 64-bit integers travel as node-opcua [high, low] pairs and become bigint, never a lossy double.
import { UA_DATATYPE_NAME } from "../../schemas/opcua.ts";
import { DataType, Int64ToBigInt, UInt64ToBigInt, coerceInt64, Variant, VariantArrayType, type DataValue } from "node-opcua";
import type { DataType as TagType, Value, Variable } from "../../schemas/index.ts";
import { INT_RANGE } from "../../schemas/command.ts";
import { Quality } from "../../schemas/quality.ts";
import { toEngineering } from "../mapping.ts";

export const UA_TYPE = Object.fromEntries(Object.entries(UA_DATATYPE_NAME).map(([t, name]) => [t, DataType[name]])) as Record<TagType, DataType>;

/** A server value as the tag's raw value, or the quality that says why it cannot be one. */
export type Raw = { ok: true; value: Value } | { ok: false; quality: number };
const MISMATCH: Raw = { ok: false, quality: Quality.Bad_TypeMismatch };
const OUT_OF_RANGE: Raw = { ok: false, quality: Quality.Bad_OutOfRange };

/** An integer from the server as a bigint: 64-bit integers travel as node-opcua [high, low] pairs. */
function integerOf(v: unknown, dataType: DataType | undefined): bigint | undefined {
  if (Array.isArray(v) && v.length === 2) return dataType === DataType.UInt64 ? UInt64ToBigInt(v as [number, number]) : Int64ToBigInt(v as [number, number]);
  if (typeof v === "number" && Number.isInteger(v)) return BigInt(v);
  return undefined;
}

/**
 * The server's value as the tag's type (raw, before scale/offset). A value of another kind (a number
 * for a bool tag, a fraction for an integer tag) is Bad_TypeMismatch; one outside the tag type's range
 * (4294967295 for an int16 tag, 1e39 for a float32 tag) is Bad_OutOfRange: never shown as Good.
 */
export function rawValue(tag: Variable, dv: DataValue): Raw {
  const v = dv.value?.value as unknown;
  if (v === null || v === undefined) return { ok: true, value: null };
  switch (tag.type) {
    case "bool":
      return typeof v === "boolean" ? { ok: true, value: v } : MISMATCH;
    case "string":
      return typeof v === "string" ? { ok: true, value: v } : MISMATCH;
    case "float32":
    case "float64": {
      const n = typeof v === "number" ? v : Array.isArray(v) ? Number(integerOf(v, dv.value.dataType)) : undefined;
      if (n === undefined) return MISMATCH;
      // beyond float32: Math.fround gives Infinity for a finite number
      if (tag.type === "float32" && Number.isFinite(n) && !Number.isFinite(Math.fround(n))) return OUT_OF_RANGE;
      return { ok: true, value: n };
    }
    default: {
      const n = integerOf(v, dv.value.dataType);
      if (n === undefined) return MISMATCH;
      // outside the tag type's range (INT_RANGE of checkWrite): Bad_OutOfRange, never wrapped
      const [lo, hi] = INT_RANGE[tag.type]!; // every other tag type is an integer type
      if (n < lo || n > hi) return OUT_OF_RANGE;
      return { ok: true, value: tag.type === "int64" || tag.type === "uint64" ? n : Number(n) };
    }
  }
}

export interface Reading {
  value: Value;
  quality: number;
  tsMicros: number;
}

/** A DataValue as a frame's value, quality and source timestamp (server time, else now, when absent). */
export function toReading(tag: Variable, dv: DataValue): Reading {
  const ms = dv.sourceTimestamp?.getTime() ?? dv.serverTimestamp?.getTime() ?? Date.now();
  const raw = rawValue(tag, dv);
  if (!raw.ok) return { value: null, quality: raw.quality, tsMicros: ms * 1000 };
  return { value: toEngineering(tag, raw.value), quality: dv.statusCode.value >>> 0, tsMicros: ms * 1000 };
}

/** A raw value (after toRaw) as a Variant of the tag's DataType, for writes. */
export function toVariant(tag: Variable, raw: Value): Variant {
  const dataType = UA_TYPE[tag.type];
  if (tag.type === "int64" || tag.type === "uint64") {
    return new Variant({ dataType, arrayType: VariantArrayType.Scalar, value: coerceInt64(String(raw)) });
  }
  return new Variant({ dataType, value: raw });
}
