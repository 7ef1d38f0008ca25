// The inspector's decoding: each order name means the byte layout vendors' manuals give it, every
// type is read by the driver's own codec, and the YAML entry round-trips through the config schema.
import { describe, expect, it } from "bun:test";
import YAML from "yaml";
import { Value } from "@sinclair/typebox/value";
import { Variable } from "../../schemas/config.ts";
import { decodeRegisters, encodeRegisters } from "../../schemas/registers.ts";
import { decodeAll, decodeAt, hex16, ORDER_NAMES, ORDERS, variableYaml } from "../../schemas/register-views.ts";

// 123.456 as float32 is 0x42F6E979: bytes A=42 B=F6 C=E9 D=79
const ABCD = [0x42f6, 0xe979];

describe("register views", () => {
  it("reads a float32 written ABCD, CDAB, BADC and DCBA back only in its own order", () => {
    const layouts = { ABCD: [0x42f6, 0xe979], CDAB: [0xe979, 0x42f6], BADC: [0xf642, 0x79e9], DCBA: [0x79e9, 0xf642] };
    for (const [written, regs] of Object.entries(layouts)) {
      for (const order of ORDER_NAMES) {
        const v = decodeAt(regs, 0, "float32", order) as number;
        if (order === written) expect(v).toBeCloseTo(123.456, 3);
        else expect(Math.abs(v - 123.456)).toBeGreaterThan(1);
      }
    }
  });

  it("agrees with the driver's codec for every type and order", () => {
    const regs = [0x0102, 0x0304, 0x0506, 0x0708, 0x090a];
    for (const order of ORDER_NAMES) {
      for (const type of ["int32", "uint32", "float32", "int64", "uint64", "float64"] as const) {
        const direct = decodeRegisters(regs, 1, { type, ...ORDERS[order] });
        expect(decodeAt(regs, 1, type, order) as unknown).toEqual(typeof direct === "bigint" ? direct.toString() : direct);
      }
    }
  });

  it("keeps 64-bit integers exact as decimal strings", () => {
    const regs = encodeRegisters(9007199254740993n, { type: "uint64" });
    expect(decodeAt(regs, 0, "uint64", "ABCD")).toBe("9007199254740993");
  });

  it("offers every start register, leaving out values that run past the range", () => {
    const all = decodeAll(ABCD, 100);
    expect(all.find((r) => r.address === 100 && r.type === "float32" && r.order === "ABCD")?.value).toBeCloseTo(123.456, 3);
    expect(all.some((r) => r.address === 101 && r.type === "float32")).toBe(false);
    expect(all.filter((r) => r.address === 101).map((r) => `${r.type} ${r.order}`).sort()).toEqual(["int16 ABCD", "int16 BADC", "uint16 ABCD", "uint16 BADC"]);
    expect(decodeAt(ABCD, 0, "float64", "ABCD")).toBeNull();
  });

  it("writes a register as four hex digits", () => {
    expect(hex16(42)).toBe("0x002A");
    expect(hex16(0xe979)).toBe("0xE979");
  });

  it("gives a variables.yml entry that the config schema accepts with the chosen order", () => {
    const text = variableYaml({ tag: "line1/flow", driver: "plc1", area: "holding", address: 10, unitId: 2, type: "float32", order: "CDAB" });
    const [entry] = YAML.parse(`tags:\n${text}`).tags;
    const v = Value.Default(Variable, structuredClone(entry));
    expect(Value.Check(Variable, v)).toBe(true);
    expect(entry.address).toEqual({ area: "holding", address: 10, unitId: 2, wordOrder: "LE" });
    expect(variableYaml({ tag: "t", driver: "d", area: "input", address: 0, type: "int16", order: "ABCD" })).not.toContain("Order");
  });
});
