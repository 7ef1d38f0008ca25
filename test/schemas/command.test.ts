// checkWrite: the one check of a requested value against its tag, shared by every write origin.
import { describe, expect, it } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { checkWrite, Variable, type Variable as VariableT } from "../../schemas/index.ts";

const tag = (t: Partial<VariableT> & Pick<VariableT, "type">): VariableT => Value.Default(Variable, { tag: "x", driver: "d", access: "RW", ...t }) as VariableT;

describe("checkWrite", () => {
  it("refuses an unknown tag and a read-only tag", () => {
    expect(checkWrite(undefined, 1)).toMatchObject({ ok: false, code: "unknown_tag" });
    expect(checkWrite(tag({ type: "int16", access: "R" }), 1)).toMatchObject({ ok: false, code: "not_writable" });
    expect(checkWrite(tag({ type: "int16", access: "W" }), 1)).toEqual({ ok: true, value: 1 });
  });

  it("checks the integer range of the tag's type", () => {
    expect(checkWrite(tag({ type: "int16" }), 32767)).toEqual({ ok: true, value: 32767 });
    expect(checkWrite(tag({ type: "int16" }), 32768)).toMatchObject({ ok: false, code: "out_of_range" });
    expect(checkWrite(tag({ type: "uint16" }), -1)).toMatchObject({ ok: false, code: "out_of_range" });
    expect(checkWrite(tag({ type: "uint32" }), 4294967295)).toEqual({ ok: true, value: 4294967295 });
    expect(checkWrite(tag({ type: "int32" }), 1.5)).toMatchObject({ ok: false, code: "type_mismatch" });
  });

  it("keeps 64-bit integers exact as bigint, also from decimal strings, and refuses unsafe numbers", () => {
    expect(checkWrite(tag({ type: "uint64" }), "18446744073709551615")).toEqual({ ok: true, value: 18446744073709551615n });
    expect(checkWrite(tag({ type: "int64" }), -5)).toEqual({ ok: true, value: -5n });
    expect(checkWrite(tag({ type: "uint64" }), "18446744073709551616")).toMatchObject({ ok: false, code: "out_of_range" });
    expect(checkWrite(tag({ type: "int64" }), 2 ** 60)).toMatchObject({ ok: false, code: "type_mismatch" });
  });

  it("checks the type: bool, float, string", () => {
    expect(checkWrite(tag({ type: "bool" }), true)).toEqual({ ok: true, value: true });
    expect(checkWrite(tag({ type: "bool" }), 1)).toEqual({ ok: true, value: true });
    expect(checkWrite(tag({ type: "bool" }), "on")).toMatchObject({ ok: false, code: "type_mismatch" });
    expect(checkWrite(tag({ type: "float32" }), "12")).toMatchObject({ ok: false, code: "type_mismatch" });
    expect(checkWrite(tag({ type: "float64" }), Number.NaN)).toMatchObject({ ok: false, code: "type_mismatch" });
    expect(checkWrite(tag({ type: "float32" }), 1e39)).toMatchObject({ ok: false, code: "out_of_range" });
    expect(checkWrite(tag({ type: "string", address: { area: "holding", address: 0, length: 2 } }), "abcd")).toEqual({ ok: true, value: "abcd" });
    expect(checkWrite(tag({ type: "string", address: { area: "holding", address: 0, length: 2 } }), "abcde")).toMatchObject({ ok: false, code: "out_of_range" });
  });

  it("checks min and max in engineering units, and the raw range after scale and offset", () => {
    const t = tag({ type: "int16", min: 0, max: 100, scale: 0.1 });
    expect(checkWrite(t, 21.5)).toEqual({ ok: true, value: 21.5 });
    expect(checkWrite(t, 100.5)).toMatchObject({ ok: false, code: "out_of_range", message: expect.stringContaining("maximum 100") });
    expect(checkWrite(t, -1)).toMatchObject({ ok: false, code: "out_of_range", message: expect.stringContaining("minimum 0") });
    expect(checkWrite(tag({ type: "int16", scale: 0.01 }), 400)).toMatchObject({ ok: false, code: "out_of_range", message: expect.stringContaining("raw 40000") });
  });
});
