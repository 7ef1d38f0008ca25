// Checking a Modbus register map: overlaps and impossible layouts are refused at config load with the
// file and the tag's path, before anything polls a device.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { validateModbusTags } from "../../../drivers/modbus/index.ts";
import { ConfigError, Variable, type DataType } from "../../../schemas/index.ts";
import { loadConfig } from "../../../server/config.ts";
import { tagValidators } from "../../../server/validators.ts";
import { tempDir, writeConfig } from "../../helpers/index.ts";

const tag = (name: string, type: DataType, address: unknown, extra: Record<string, unknown> = {}): Variable =>
  Value.Default(Variable, { tag: name, driver: "plc", type, ...(address === undefined ? {} : { address }), ...extra }) as Variable;
const problems = (tags: Variable[]) => validateModbusTags("plc", tags);

describe("Modbus register map validation", () => {
  it("accepts a map without overlaps, including bits of a status word", () => {
    expect(
      problems([
        tag("a", "float32", { area: "holding", address: 10 }),
        tag("b", "int16", { area: "holding", address: 12 }),
        tag("w", "uint16", { area: "input", address: 0 }),
        tag("w0", "bool", { area: "input", address: 0, bit: 0 }),
        tag("w1", "bool", { area: "input", address: 0, bit: 1 }),
        tag("c", "bool", { area: "coil", address: 10 }),
        tag("other-unit", "int16", { area: "holding", address: 11, unitId: 7 }),
      ]),
    ).toEqual([]);
  });

  it("finds a float32 at 10 overlapping an int16 at 11", () => {
    const p = problems([tag("line/a", "float32", { area: "holding", address: 10 }), tag("line/b", "int16", { area: "holding", address: 11 })]);
    expect(p).toEqual([{ tag: "line/b", field: "address", message: "holding 11 of 'line/b' (int16) overlaps holding 10..11 of 'line/a' (float32)" }]);
  });

  it("finds an overlap hidden behind a long value", () => {
    const p = problems([tag("s", "string", { area: "holding", address: 0, length: 10 }), tag("x", "int16", { area: "holding", address: 5 }), tag("y", "int16", { area: "holding", address: 8 })]);
    expect(p.map((x) => x.tag)).toEqual(["x", "y"]);
  });

  it("finds the same bit mapped twice", () => {
    expect(problems([tag("a", "bool", { area: "holding", address: 1, bit: 3 }), tag("b", "bool", { area: "holding", address: 1, bit: 3 })])).toHaveLength(1);
  });

  it("reports missing, malformed and impossible addresses by field", () => {
    const cases: [Variable, string, RegExp][] = [
      [tag("t", "int16", undefined), "address", /needs an address/],
      [tag("t", "int16", { area: "memory", address: 1 }), "address.area", /coil, discrete, holding, input/],
      [tag("t", "int16", { area: "holding" }), "address.address", /integer 0\.\.65535/],
      [tag("t", "int16", { area: "holding", address: 1, wordorder: "LE" }), "address.wordorder", /unknown field/],
      [tag("t", "string", { area: "holding", address: 1 }), "address.length", /needs length/],
      [tag("t", "bool", { area: "holding", address: 1 }), "address.bit", /needs bit/],
      [tag("t", "int16", { area: "coil", address: 1 }), "type", /must be bool/],
      [tag("t", "int16", { area: "input", address: 1 }, { access: "RW" }), "access", /read-only/],
      [tag("t", "float64", { area: "holding", address: 65533 }), "address.address", /past the last address/],
    ];
    for (const [t, field, message] of cases) {
      const [p] = problems([t]);
      expect(p?.field).toBe(field);
      expect(p?.message).toMatch(message);
    }
  });
});

describe("Modbus map at config load", () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => (dir = tempDir()));
  afterEach(() => dir.cleanup());

  it("refuses an overlapping register map naming variables.yml and the tag's path", () => {
    const cfg = writeConfig(join(dir.path, "config"), {
      "endpoints.yml": `endpoints:\n  plc: { url: "tcp://127.0.0.1:5021" }\n`,
      "drivers.yml": `drivers:\n  - { id: plc, type: modbus, endpoint: plc }\n`,
      "variables.yml": [
        "tags:",
        "  - { tag: boiler/temperature, driver: plc, type: float32, address: { area: holding, address: 10 } }",
        "  - { tag: boiler/status, driver: plc, type: int16, address: { area: holding, address: 11 } }",
      ].join("\n"),
    });
    let err: unknown;
    try {
      loadConfig(cfg, tagValidators);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const c = err as ConfigError;
    expect(c.file).toBe(join(cfg, "variables.yml"));
    expect(c.path).toBe("tags[1].address");
    expect(c.message).toContain("variables.yml at tags[1].address: holding 11 of 'boiler/status' (int16) overlaps holding 10..11 of 'boiler/temperature' (float32)");
  });
});
