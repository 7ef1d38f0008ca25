// Which tag edits a hot reload applies live and which restart the driver (server/reload.ts sameReadSide):
// the catalog side (description, unit, write limits, tenant) and the read-side mapping (expression, clamp,
// deadbands, report by exception) apply live; anything else a driver reads with restarts it.
import { describe, expect, it } from "bun:test";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { Variable } from "../../schemas/index.ts";
import { sameReadSide } from "../../server/reload.ts";

const tag = (extra: Record<string, unknown> = {}): Variable =>
  TypeValue.Default(Variable, { tag: "t", driver: "plc", type: "int16", address: { area: "holding", address: 3 }, access: "R", ...extra }) as Variable;

describe("read side of a tag", () => {
  it("is the same when only catalog-side and mapping fields differ", () => {
    const edited = { description: "pump", unit: "bar", min: 0, max: 10, tenant: "t2", expr: "raw * 2", clamp: true, deadband: 1, deadbandPercent: 5, reportByException: false, maxIntervalMs: 1000 };
    expect(sameReadSide(tag(), tag(edited))).toBe(true);
    expect(sameReadSide(tag(edited), tag())).toBe(true);
  });

  it("differs when a field the driver reads with differs, also inside the address", () => {
    expect(sameReadSide(tag(), tag({ type: "uint16" }))).toBe(false);
    expect(sameReadSide(tag(), tag({ group: "fast" }))).toBe(false);
    expect(sameReadSide(tag(), tag({ scale: 2 }))).toBe(false);
    expect(sameReadSide(tag(), tag({ address: { area: "holding", address: 4 } }))).toBe(false);
    expect(sameReadSide(tag(), tag({ address: { area: "holding", address: 3 } }))).toBe(true);
  });

  it("differs when a field is present on one side only, even as undefined", () => {
    const withUndefined = { ...tag(), window: undefined } as Variable;
    expect(sameReadSide(tag(), withUndefined)).toBe(false);
    expect(sameReadSide(withUndefined, tag())).toBe(false);
    expect(sameReadSide(tag(), tag({ address: undefined }))).toBe(false);
  });
});
