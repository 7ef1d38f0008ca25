// Conversions between OPC UA DataValues and frames (and tag values and Variants for writes).
// 64-bit integers travel as node-opcua [high, low] pairs and become bigint, never a lossy double.
import { UA_DATATYPE_NAME } from "../../schemas/opcua.ts";
import { DataType, Int64ToBigInt, UInt64ToBigInt, coerceInt64, Variant, VariantArrayType, type DataValue } from "node-opcua";
import type { DataType as TagType, Value, Variable } from "../../schemas/index.ts";
import { INT_RANGE } from "../../schemas/command.ts";
import { Quality } from "../../schemas/quality.ts";
import { toEngineering } from "../mapping.ts";

export const UA_TYPE = Object.fromEntries(Object.entries(UA_DATATYPE_NAME).map(([t, name]) => [t, DataType[name]])) as Record<TagType, DataType>;

/** Why a server value cannot be the tag's value: one of two constants (the read path allocates nothing per value for it). */
export interface Unfit {
  readonly quality: number;
}
const MISMATCH: Unfit = Object.freeze({ quality: Quality.Bad_TypeMismatch });
const OUT_OF_RANGE: Unfit = Object.freeze({ quality: Quality.Bad_OutOfRange });
/** tag values are never objects: an object is an Unfit */
const isUnfit = (r: Value | Unfit): r is Unfit => typeof r === "object" && r !== null;

const INT_RANGE_NUMBER = Object.fromEntries(Object.entries(INT_RANGE).map(([type, [lo, hi]]) => [type, [Number(lo), Number(hi)] as const]));

/** A 64-bit integer from the server (a node-opcua [high, low] pair) as a bigint. */
function integerOf(v: unknown, dataType: DataType | undefined): bigint | undefined {
  if (Array.isArray(v) && v.length === 2) return dataType === DataType.UInt64 ? UInt64ToBigInt(v as [number, number]) : Int64ToBigInt(v as [number, number]);
  return undefined;
}

/**
 * The server's value as the tag's type (raw, before scale/offset). A value of another kind (a number
 * for a bool tag, a fraction for an integer tag) is Bad_TypeMismatch; one outside the tag type's range
 * (4294967295 for an int16 tag, 1e39 for a float32 tag) is Bad_OutOfRange: never shown as Good.
 */
export function rawValue(tag: Variable, dv: DataValue): Value | Unfit {
  const v = dv.value?.value as unknown;
  if (v === null || v === undefined) return null;
  switch (tag.type) {
    case "bool":
      return typeof v === "boolean" ? v : MISMATCH;
    case "string":
      return typeof v === "string" ? v : MISMATCH;
    case "float32":
    case "float64": {
      const n = typeof v === "number" ? v : Array.isArray(v) ? Number(integerOf(v, dv.value.dataType)) : undefined;
      if (n === undefined) return MISMATCH;
      // beyond float32: Math.fround gives Infinity for a finite number
      if (tag.type === "float32" && Number.isFinite(n) && !Number.isFinite(Math.fround(n))) return OUT_OF_RANGE;
      return n;
    }
    default: {
      const is64 = tag.type === "int64" || tag.type === "uint64";
      if (typeof v === "number") {
        // 8- to 32-bit integers come as numbers: compared as numbers (no bigint per value on the read path)
        if (!Number.isInteger(v)) return MISMATCH;
        const range = INT_RANGE_NUMBER[tag.type]!; // every other tag type is an integer type
        if (v < range[0] || v > range[1]) return OUT_OF_RANGE;
        return is64 ? BigInt(v) : v;
      }
      const n = integerOf(v, dv.value.dataType);
      if (n === undefined) return MISMATCH;
      // outside the tag type's range (INT_RANGE of checkWrite): Bad_OutOfRange, never wrapped
      const [lo, hi] = INT_RANGE[tag.type]!;
      if (n < lo || n > hi) return OUT_OF_RANGE;
      return is64 ? n : Number(n);
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
  if (isUnfit(raw)) return { value: null, quality: raw.quality, tsMicros: ms * 1000 };
  return { value: toEngineering(tag, raw), quality: dv.statusCode.value >>> 0, tsMicros: ms * 1000 };
}

/** A raw value (after toRaw) as a Variant of the tag's DataType, for writes. */
export function toVariant(tag: Variable, raw: Value): Variant {
  const dataType = UA_TYPE[tag.type];
  if (tag.type === "int64" || tag.type === "uint64") {
    return new Variant({ dataType, arrayType: VariantArrayType.Scalar, value: coerceInt64(String(raw)) });
  }
  return new Variant({ dataType, value: raw });
}
