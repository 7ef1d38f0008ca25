// The write dialog's check of what an operator typed: types, hex for integers, exact 64-bit integers, limits.
import { describe, expect, it } from "bun:test";
import { parseWrite } from "../../console/src/lib/write-value.ts";

describe("parseWrite", () => {
  it("takes decimal and hex for integer tags, sending the decimal value", () => {
    expect(parseWrite({ tag: "t", type: "uint16" }, "0x1F")).toEqual({ ok: true, value: 31, shown: "31 (0x1F)" });
    expect(parseWrite({ tag: "t", type: "int16" }, "-12")).toEqual({ ok: true, value: -12, shown: "-12" });
  });

  it("refuses hex that does not fit the type", () => {
    expect(parseWrite({ tag: "t", type: "uint16" }, "0x10000")).toMatchObject({ ok: false, message: expect.stringContaining("does not fit a uint16") });
  });

  it("keeps 64-bit integers exact as decimal text", () => {
    expect(parseWrite({ tag: "t", type: "uint64" }, "18446744073709551615")).toMatchObject({ ok: true, value: "18446744073709551615" });
    expect(parseWrite({ tag: "t", type: "int64" }, "0xFFFFFFFFFFFFFFFF")).toMatchObject({ ok: false });
  });

  it("checks the tag's limits before anything is sent", () => {
    const sp = { tag: "sp", type: "float32", min: 20, max: 120 };
    expect(parseWrite(sp, "121")).toEqual({ ok: false, message: "121 is above the tag's maximum 120" });
    expect(parseWrite(sp, "19.5")).toEqual({ ok: false, message: "19.5 is below the tag's minimum 20" });
    expect(parseWrite(sp, "55.5")).toEqual({ ok: true, value: 55.5, shown: "55.5" });
  });

  it("says what a number looks like when the text is not one, and reads bools in words", () => {
    expect(parseWrite({ tag: "t", type: "float64" }, "12,5")).toMatchObject({ ok: false, message: expect.stringContaining("is not a number") });
    expect(parseWrite({ tag: "t", type: "bool" }, "on")).toMatchObject({ ok: true, value: true });
    expect(parseWrite({ tag: "t", type: "bool" }, "maybe")).toMatchObject({ ok: false });
  });
});
