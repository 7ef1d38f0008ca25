// Conversions between OPC UA DataValues and frames (and tag values and Variants for writes).
// 64-bit integers travel as node-opcua [high, low] pairs and become bigint, never a lossy double.
import { UA_DATATYPE_NAME } from "../../schemas/opcua.ts";
import { DataType, Int64ToBigInt, UInt64ToBigInt, coerceInt64, Variant, VariantArrayType, type DataValue } from "node-opcua";
import type { DataType as TagType, Value, Variable } from "../../schemas/index.ts";
import { Quality } from "../../schemas/quality.ts";
import { toEngineering } from "../mapping.ts";

export const UA_TYPE = Object.fromEntries(Object.entries(UA_DATATYPE_NAME).map(([t, name]) => [t, DataType[name]])) as Record<TagType, DataType>;

/** The server's value as the tag's type (raw, before scale/offset); undefined when it cannot be. */
export function rawValue(tag: Variable, dv: DataValue): Value | undefined {
  const v = dv.value?.value as unknown;
  if (v === null || v === undefined) return null;
  switch (tag.type) {
    case "bool":
      return typeof v === "boolean" ? v : typeof v === "number" ? v !== 0 : undefined;
    case "string":
      return typeof v === "string" ? v : String(v);
    case "int64":
    case "uint64":
      if (Array.isArray(v)) return dv.value.dataType === DataType.UInt64 ? UInt64ToBigInt(v as [number, number]) : Int64ToBigInt(v as [number, number]);
      return typeof v === "number" && Number.isInteger(v) ? BigInt(v) : undefined;
    default:
      if (typeof v === "number") return v;
      if (typeof v === "boolean") return v ? 1 : 0;
      if (Array.isArray(v) && v.length === 2) return Number(Int64ToBigInt(v as [number, number]));
      return undefined;
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
  if (raw === undefined) return { value: null, quality: Quality.Bad_TypeMismatch, tsMicros: ms * 1000 };
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
