// What the OPC UA client makes of a server's value for a tag of a given type (pure, no server): a
// value the tag's type cannot hold is Bad_TypeMismatch, one outside its range Bad_OutOfRange, never
// a converted Good value; and which server DataTypes each tag type accepts at connect.
import { describe, expect, it } from "bun:test";
import { DataType, DataValue, StatusCodes, Variant, VariantArrayType, coerceUInt64 } from "node-opcua";
import { tagTypeAccepts } from "../../drivers/opcua/nodes.ts";
import { toReading } from "../../drivers/opcua/values.ts";
import type { DataType as TagType, Variable } from "../../schemas/index.ts";
import { Quality } from "../../schemas/quality.ts";

const tag = (type: TagType) => ({ tag: "x", driver: "d", type, access: "R", scale: 1, offset: 0, group: "default" }) as unknown as Variable;
const read = (type: TagType, dataType: DataType, value: unknown) =>
  toReading(tag(type), new DataValue({ value: new Variant({ dataType, value, arrayType: VariantArrayType.Scalar }), statusCode: StatusCodes.Good }));

describe("opcua client values", () => {
  it("marks a value outside the tag type's range Bad_OutOfRange with no value", () => {
    expect(read("int16", DataType.UInt32, 4294967295)).toMatchObject({ value: null, quality: Quality.Bad_OutOfRange });
    expect(read("uint16", DataType.Int32, -5)).toMatchObject({ value: null, quality: Quality.Bad_OutOfRange });
    expect(read("float32", DataType.Double, 1e39)).toMatchObject({ value: null, quality: Quality.Bad_OutOfRange });
  });

  it("marks a value of another kind Bad_TypeMismatch: a Double for a bool tag, a fraction for an integer tag", () => {
    expect(read("bool", DataType.Double, 0.5)).toMatchObject({ value: null, quality: Quality.Bad_TypeMismatch });
    expect(read("int32", DataType.Double, 3.5)).toMatchObject({ value: null, quality: Quality.Bad_TypeMismatch });
    expect(read("string", DataType.Int32, 3)).toMatchObject({ value: null, quality: Quality.Bad_TypeMismatch });
  });

  it("keeps values that fit, 64-bit integers exact", () => {
    expect(read("int16", DataType.UInt32, 5)).toMatchObject({ value: 5, quality: Quality.Good });
    expect(read("uint64", DataType.UInt64, coerceUInt64("18446744073709551615"))).toMatchObject({ value: 2n ** 64n - 1n, quality: Quality.Good });
    expect(read("float32", DataType.Double, 0.1)).toMatchObject({ value: 0.1, quality: Quality.Good });
  });

  it("accepts at connect only the server DataTypes a tag type can hold", () => {
    expect(tagTypeAccepts("bool", DataType.Boolean)).toBe(true);
    expect(tagTypeAccepts("bool", DataType.Double)).toBe(false);
    expect(tagTypeAccepts("int16", DataType.UInt32)).toBe(true); // range-checked value by value
    expect(tagTypeAccepts("int32", DataType.Double)).toBe(false);
    expect(tagTypeAccepts("float64", DataType.Int64)).toBe(true);
    expect(tagTypeAccepts("string", DataType.Int32)).toBe(false);
  });
});
