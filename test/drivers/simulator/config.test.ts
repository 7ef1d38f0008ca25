// The simulator's config: partial signals get their defaults, bad values are refused with the path.
import { describe, expect, it } from "bun:test";
import { SimulatorDriver } from "../../../drivers/simulator/index.ts";

describe("simulator config", () => {
  it("fills the defaults of a partial signal", () => {
    const d = new SimulatorDriver();
    expect(() => d.init({ id: "sim", config: { signals: { "a/b": { shape: "constant", min: 11 } } }, tags: [] })).not.toThrow();
  });

  it("refuses an unknown shape naming the signal's path", () => {
    const d = new SimulatorDriver();
    expect(() => d.init({ id: "sim", config: { signals: { "a/b": { shape: "zigzag" } } }, tags: [] })).toThrow('config.signals["a/b"].shape');
  });
});
