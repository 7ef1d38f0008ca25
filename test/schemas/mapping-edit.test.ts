// Live edits of the read-side mapping table (schemas/mapping.ts `update`, run by a hot reload): kept tags
// keep what they last logged and their error state, removed tags are forgotten, and a tag whose failing
// expression was removed can fail (and be reported) again after a later edit.
import { describe, expect, it } from "bun:test";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { MappingTable, Quality, Variable, type DataFrame } from "../../schemas/index.ts";

const tag = (name: string, extra: Record<string, unknown> = {}): Variable => TypeValue.Default(Variable, { tag: name, driver: "d", type: "float64", access: "R", ...extra }) as Variable;
const frame = (name: string, value: number): DataFrame => ({ kind: "data", tag: name, value, ts: 1, quality: 0, source: "d" });

function recorder() {
  const calls: string[] = [];
  return { calls, hooks: { failed: (t: string) => calls.push(`failed ${t}`), recovered: (t: string) => calls.push(`recovered ${t}`) } };
}

describe("mapping table live edit", () => {
  it("does not log an unchanged reading again after an edit of its tag's expression", () => {
    const table = new MappingTable([tag("x", { expr: "raw * 2" })], recorder().hooks);
    expect(table.apply([frame("x", 5)], 0)).toEqual([{ ...frame("x", 5), value: 10 }]);
    table.update([tag("x", { expr: "raw + 5" })]); // 5 + 5 = 10 still
    expect(table.apply([frame("x", 5)], 1)).toEqual([]);
    expect(table.apply([frame("x", 6)], 2)).toEqual([{ ...frame("x", 6), value: 11 }]);
  });

  it("forgets a tag an edit removes: when it comes back its first reading is logged", () => {
    const table = new MappingTable([tag("x", { expr: "raw" }), tag("y", { expr: "raw" })], recorder().hooks);
    table.apply([frame("x", 1), frame("y", 1)], 0);
    table.update([tag("y", { expr: "raw" })]);
    expect(table.apply([frame("x", 1), frame("y", 1)], 1)).toEqual([frame("x", 1)]); // x unmapped now: every reading passes
    table.update([tag("x", { expr: "raw" }), tag("y", { expr: "raw" })]);
    expect(table.apply([frame("x", 1), frame("y", 1)], 2)).toEqual([frame("x", 1)]);
  });

  it("reports a failing tag recovered when an edit removes its expression, and failed again when a later expression fails", () => {
    const { calls, hooks } = recorder();
    const table = new MappingTable([tag("x", { expr: "raw / 0" })], hooks);
    expect(table.apply([frame("x", 1)], 0)[0]!.quality).toBe(Quality.Bad_ConfigurationError);
    table.update([tag("x", { deadband: 1 })]);
    table.update([tag("x", { expr: "raw / 0" })]);
    table.apply([frame("x", 2)], 1); // Bad again: a repeat of the logged Bad frame, dropped by report by exception
    expect(calls).toEqual(["failed x", "recovered x", "failed x"]);
  });

  it("reports a failing tag recovered when an edit removes the tag", () => {
    const { calls, hooks } = recorder();
    const table = new MappingTable([tag("x", { expr: "raw / 0" }), tag("y", { expr: "raw" })], hooks);
    table.apply([frame("x", 1), frame("y", 1)], 0);
    table.update([tag("y", { expr: "raw" })]);
    expect(calls).toEqual(["failed x", "recovered x"]);
  });
});
