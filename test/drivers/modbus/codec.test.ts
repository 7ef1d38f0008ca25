// The register codec (schemas/registers.ts): every type in every byte/word order, both directions.
import { describe, expect, it } from "bun:test";
import type { DataType } from "../../../schemas/index.ts";
import { decodeRegisters, encodeRegisters, registerCount, RegisterCodecError, type Order } from "../../../schemas/registers.ts";

const samples: [DataType, unknown[]][] = [
  ["int16", [0, 1, -1, 32767, -32768, 1234]],
  ["uint16", [0, 1, 65535, 40000]],
  ["int32", [0, -1, 2147483647, -2147483648, 123456789]],
  ["uint32", [0, 4294967295, 3000000000, 65536]],
  ["int64", [0n, -1n, 9223372036854775807n, -9223372036854775808n, 9007199254740993n]],
  ["uint64", [0n, 18446744073709551615n, 9007199254740993n]],
  ["float32", [0, 1, -1.5, 21.5, 3.4028234663852886e38, Math.fround(0.1)]],
  ["float64", [0, 0.1, -1e300, Math.PI, Number.MIN_VALUE]],
];
const orders: [Order, Order][] = [
  ["BE", "BE"],
  ["BE", "LE"],
  ["LE", "BE"],
  ["LE", "LE"],
];

describe("register codec", () => {
  for (const [type, values] of samples) {
    for (const [byteOrder, wordOrder] of orders) {
      it(`round-trips ${type} with byteOrder ${byteOrder} and wordOrder ${wordOrder}`, () => {
        for (const v of values) {
          const l = { type, byteOrder, wordOrder };
          const regs = encodeRegisters(v as never, l);
          expect(regs.length).toBe(registerCount(l));
          expect(regs.every((r) => Number.isInteger(r) && r >= 0 && r <= 0xffff)).toBe(true);
          // decode from an offset inside a longer read, as the driver does
          expect(decodeRegisters([7, ...regs, 9], 1, l)).toEqual(v as never);
        }
      });
    }
  }

  it("lays out float32 1.0 as ABCD, CDAB, BADC and DCBA", () => {
    expect(encodeRegisters(1, { type: "float32" })).toEqual([0x3f80, 0x0000]);
    expect(encodeRegisters(1, { type: "float32", wordOrder: "LE" })).toEqual([0x0000, 0x3f80]);
    expect(encodeRegisters(1, { type: "float32", byteOrder: "LE" })).toEqual([0x803f, 0x0000]);
    expect(encodeRegisters(1, { type: "float32", byteOrder: "LE", wordOrder: "LE" })).toEqual([0x0000, 0x803f]);
  });

  it("puts the low word first for a 64-bit integer in word order LE", () => {
    expect(encodeRegisters(0x0001_0002_0003_0004n, { type: "int64" })).toEqual([1, 2, 3, 4]);
    expect(encodeRegisters(0x0001_0002_0003_0004n, { type: "int64", wordOrder: "LE" })).toEqual([4, 3, 2, 1]);
    expect(decodeRegisters([4, 3, 2, 1], 0, { type: "uint64", wordOrder: "LE" })).toBe(0x0001_0002_0003_0004n);
  });

  it("decodes 64-bit integers as bigint even when they are small", () => {
    expect(decodeRegisters([0, 0, 0, 5], 0, { type: "int64" })).toBe(5n);
  });

  it("encodes a string as ASCII, first character high, and trims trailing NULs on decode", () => {
    const regs = encodeRegisters("ABC", { type: "string", length: 3 });
    expect(regs).toEqual([0x4142, 0x4300, 0x0000]);
    expect(decodeRegisters(regs, 0, { type: "string", length: 3 })).toBe("ABC");
    const swapped = encodeRegisters("ABC", { type: "string", length: 2, byteOrder: "LE" });
    expect(swapped).toEqual([0x4241, 0x0043]);
    expect(decodeRegisters(swapped, 0, { type: "string", length: 2, byteOrder: "LE" })).toBe("ABC");
  });

  it("reads and sets a single bit of a register without touching the others", () => {
    expect(decodeRegisters([0b0100], 0, { type: "bool", bit: 2 })).toBe(true);
    expect(decodeRegisters([0b0100], 0, { type: "bool", bit: 1 })).toBe(false);
    expect(encodeRegisters(true, { type: "bool", bit: 15 }, 0x0001)).toEqual([0x8001]);
    expect(encodeRegisters(false, { type: "bool", bit: 0 }, 0x8001)).toEqual([0x8000]);
  });

  it("refuses values that do not fit the type with a RegisterCodecError", () => {
    expect(() => encodeRegisters(70000, { type: "uint16" })).toThrow(RegisterCodecError);
    expect(() => encodeRegisters(-1, { type: "uint32" })).toThrow(RegisterCodecError);
    expect(() => encodeRegisters(1.5, { type: "int16" })).toThrow(RegisterCodecError);
    expect(() => encodeRegisters(1n << 64n, { type: "uint64" })).toThrow(RegisterCodecError);
    expect(() => encodeRegisters("ABCDE", { type: "string", length: 2 })).toThrow(/does not fit/);
    expect(() => encodeRegisters("on", { type: "float32" })).toThrow(RegisterCodecError);
  });

  it("refuses to decode past the end of a short read", () => {
    expect(() => decodeRegisters([1, 2, 3], 1, { type: "float64" })).toThrow(RegisterCodecError);
  });
});
