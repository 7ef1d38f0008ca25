// The read plan: merging tags into as few requests as the protocol allows.
import { describe, expect, it } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { Variable, type DataType } from "../../../schemas/index.ts";
import { planReads, slotOf } from "../../../drivers/modbus/plan.ts";

const tag = (name: string, type: DataType, address: Record<string, unknown>): Variable =>
  Value.Default(Variable, { tag: name, driver: "plc", type, address }) as Variable;
const limits = { maxGap: 2, maxRegisters: 125, maxBits: 2000 };
const plan = (tags: Variable[], l = limits) =>
  planReads(tags.map((t) => slotOf(t, 1)), l).map((b) => ({ unit: b.unitId, area: b.area, start: b.start, count: b.count, tags: b.slots.map((s) => s.tag.tag) }));

describe("read plan", () => {
  it("merges contiguous registers into one read sorted by address", () => {
    const p = plan([tag("c", "float32", { area: "holding", address: 4 }), tag("a", "int16", { area: "holding", address: 0 }), tag("b", "uint32", { area: "holding", address: 1 })]);
    expect(p).toEqual([{ unit: 1, area: "holding", start: 0, count: 6, tags: ["a", "b", "c"] }]);
  });

  it("reads across a gap up to maxGap and splits beyond it", () => {
    expect(plan([tag("a", "int16", { area: "holding", address: 0 }), tag("b", "int16", { area: "holding", address: 3 })])).toHaveLength(1);
    const split = plan([tag("a", "int16", { area: "holding", address: 0 }), tag("b", "int16", { area: "holding", address: 4 })]);
    expect(split.map((b) => [b.start, b.count])).toEqual([
      [0, 1],
      [4, 1],
    ]);
  });

  it("never reads more than 125 registers in one request", () => {
    const tags = Array.from({ length: 300 }, (_, i) => tag(`t${i}`, "int16", { area: "input", address: i }));
    const p = plan(tags);
    expect(p.map((b) => b.count)).toEqual([125, 125, 50]);
    expect(p.flatMap((b) => b.tags)).toHaveLength(300);
  });

  it("keeps a multi-register value whole instead of splitting it at the limit", () => {
    const tags = [tag("a", "int16", { area: "holding", address: 0 }), tag("b", "float64", { area: "holding", address: 123 })];
    const p = plan(tags);
    expect(p.map((b) => [b.start, b.count])).toEqual([
      [0, 1],
      [123, 4],
    ]);
  });

  it("reads up to 2000 coils in one request", () => {
    const tags = Array.from({ length: 2500 }, (_, i) => tag(`c${i}`, "bool", { area: "coil", address: i }));
    expect(plan(tags).map((b) => b.count)).toEqual([2000, 500]);
  });

  it("plans separate reads per unit id and per area", () => {
    const p = plan([
      tag("a", "int16", { area: "holding", address: 0 }),
      tag("b", "int16", { area: "holding", address: 1, unitId: 2 }),
      tag("c", "int16", { area: "input", address: 1 }),
      tag("d", "bool", { area: "coil", address: 0 }),
      tag("e", "int16", { area: "holding", address: 2, unitId: 1 }),
    ]);
    expect(p).toEqual([
      { unit: 1, area: "coil", start: 0, count: 1, tags: ["d"] },
      { unit: 1, area: "holding", start: 0, count: 3, tags: ["a", "e"] },
      { unit: 1, area: "input", start: 1, count: 1, tags: ["c"] },
      { unit: 2, area: "holding", start: 1, count: 1, tags: ["b"] },
    ]);
  });

  it("serves a status word and its bit tags from one register read", () => {
    const p = plan([tag("w", "uint16", { area: "input", address: 5 }), tag("b0", "bool", { area: "input", address: 5, bit: 0 }), tag("b3", "bool", { area: "input", address: 5, bit: 3 })]);
    expect(p).toHaveLength(1);
    expect(p[0]!.count).toBe(1);
  });

  it("honours a smaller maxRegisters", () => {
    const tags = Array.from({ length: 10 }, (_, i) => tag(`t${i}`, "int16", { area: "holding", address: i }));
    expect(plan(tags, { ...limits, maxRegisters: 4 }).map((b) => b.count)).toEqual([4, 4, 2]);
  });
});
