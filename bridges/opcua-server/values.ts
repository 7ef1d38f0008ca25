// Conversions between the log's values and OPC UA Variants: DataTypes per tag type, 64-bit
// integers as node-opcua's [high, low] pairs (never through a lossy double), qualities as StatusCodes.
import { UA_DATATYPE_NAME } from "../../schemas/opcua.ts";
import { coerceInt64, coerceStatusCode, DataType, Int64ToBigInt, UInt64ToBigInt, Variant, VariantArrayType, type StatusCode } from "node-opcua";
import type { DataType as TagType, Value, Variable } from "../../schemas/index.ts";
import { Quality } from "../../schemas/quality.ts";

export const UA_TYPE = Object.fromEntries(Object.entries(UA_DATATYPE_NAME).map(([t, name]) => [t, DataType[name]])) as Record<TagType, DataType>;

export const isNumericType = (t: TagType) => t !== "bool" && t !== "string";

const isIntegerType = (t: TagType) => isNumericType(t) && t !== "float32" && t !== "float64";

/**
 * The type a tag is served as. The log holds engineering values: an integer tag with scale or offset
 * (raw 119 x 0.1 = 11.9) is served as Double, so that the fraction reaches clients and writes can carry it.
 */
export function servedType(tag: Pick<Variable, "type" | "scale" | "offset"> & Partial<Pick<Variable, "expr" | "derived" | "window">>): TagType {
  // an expression, a derived tag or a window computes fractions from integer inputs too
  const computed = tag.expr !== undefined || tag.derived !== undefined || tag.window !== undefined;
  return isIntegerType(tag.type) && (computed || tag.scale !== 1 || tag.offset !== 0) ? "float64" : tag.type;
}

const NULL_VARIANT = new Variant({ dataType: DataType.Null });

/** The log's value as a Variant of the tag's DataType; null when it does not fit (a type mismatch). */
export function toVariant(type: TagType, value: Value): Variant | null {
  if (value === null) return NULL_VARIANT;
  const dataType = UA_TYPE[type];
  switch (type) {
    case "bool":
      return typeof value === "boolean" ? new Variant({ dataType, value }) : typeof value === "number" ? new Variant({ dataType, value: value !== 0 }) : null;
    case "string":
      return new Variant({ dataType, value: typeof value === "string" ? value : String(value) });
    case "int64":
    case "uint64":
      if (typeof value === "bigint" || (typeof value === "number" && Number.isInteger(value)) || (typeof value === "string" && /^-?\d+$/.test(value))) {
        return new Variant({ dataType, arrayType: VariantArrayType.Scalar, value: coerceInt64(String(value)) });
      }
      return null;
    default:
      if (typeof value === "number") return new Variant({ dataType, value });
      if (typeof value === "boolean") return new Variant({ dataType, value: value ? 1 : 0 });
      if (typeof value === "bigint") return new Variant({ dataType, value: Number(value) });
      return null;
  }
}

/** A written Variant's value in the form checkWrite expects (bigint for 64-bit integers). */
export function fromVariant(type: TagType, v: Variant): unknown {
  const value = v.value as unknown;
  if ((type === "int64" || type === "uint64") && Array.isArray(value)) {
    return v.dataType === DataType.UInt64 ? UInt64ToBigInt(value as [number, number]) : Int64ToBigInt(value as [number, number]);
  }
  return value;
}

export function toStatusCode(quality: number): StatusCode {
  return coerceStatusCode(quality >>> 0);
}

export const WAITING = coerceStatusCode(Quality.Bad_WaitingForInitialData);
export const TYPE_MISMATCH = coerceStatusCode(Quality.Bad_TypeMismatch);
