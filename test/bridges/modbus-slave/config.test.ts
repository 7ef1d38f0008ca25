// The modbusSlave section of gateway.yml: validation errors name the file and the path.
import { describe, expect, it } from "bun:test";
import { parseModbusSlaveConfig } from "../../../bridges/modbus-slave/index.ts";
import { Catalog, ConfigError, parseWithSchema, VariablesFile } from "../../../schemas/index.ts";
import { startGateway } from "../../helpers/gateway.ts";

const catalog = new Catalog(
  parseWithSchema(
    VariablesFile,
    {
      tags: [
        { tag: "a", driver: "d", type: "float32" },
        { tag: "b", driver: "d", type: "int16" },
        { tag: "s", driver: "d", type: "string" },
      ],
    },
    "variables.yml",
  ).tags,
);

function refusal(section: unknown): ConfigError {
  try {
    parseModbusSlaveConfig(section, "/cfg/gateway.yml", catalog);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("modbusSlave config", () => {
  it("refuses overlapping entries, naming gateway.yml, the later entry's path and both ranges", () => {
    const e = refusal({ map: [{ tag: "a", area: "holding", address: 10 }, { tag: "b", area: "holding", address: 11 }] });
    expect(e.file).toBe("/cfg/gateway.yml");
    expect(e.path).toBe("modbusSlave.map[1].address");
    expect(e.message).toContain("10..11 (a)");
  });

  it("accepts the same addresses on another unit id or another area", () => {
    const { entries } = parseModbusSlaveConfig(
      { map: [{ tag: "a", area: "holding", address: 10 }, { tag: "b", area: "holding", address: 11, unitId: 2 }, { tag: "b", area: "input", address: 11 }] },
      "gateway.yml",
      catalog,
    );
    expect(entries.map((e) => e.width)).toEqual([2, 1, 1]);
  });

  it("refuses an unknown tag, a number on a coil, a string without length and a bad area", () => {
    expect(refusal({ map: [{ tag: "nope", area: "holding", address: 0 }] }).path).toBe("modbusSlave.map[0].tag");
    expect(refusal({ map: [{ tag: "b", area: "coil", address: 0, type: "int16" }] }).path).toBe("modbusSlave.map[0].type");
    expect(refusal({ map: [{ tag: "s", area: "holding", address: 0 }] }).path).toBe("modbusSlave.map[0].length");
    expect(refusal({ map: [{ tag: "a", area: "holdings", address: 0 }] }).path).toStartWith("modbusSlave.map[0].area");
    expect(refusal({ map: [{ tag: "a", area: "holding", address: 65535 }] }).path).toBe("modbusSlave.map[0].address");
  });

  it("gives every entry onBad exception by default, the section's onBad otherwise, and an entry's own above both", () => {
    const map = [{ tag: "a", area: "holding", address: 0 }, { tag: "b", area: "holding", address: 2, onBad: "hold" }];
    expect(parseModbusSlaveConfig({ map }, "gateway.yml", catalog).entries.map((e) => e.onBad)).toEqual(["exception", "hold"]);
    expect(parseModbusSlaveConfig({ onBad: "zero", map }, "gateway.yml", catalog).entries.map((e) => e.onBad)).toEqual(["zero", "hold"]);
  });

  it("refuses an unknown onBad, naming the section's or the entry's path", () => {
    expect(refusal({ onBad: "last", map: [] }).path).toStartWith("modbusSlave.onBad");
    expect(refusal({ map: [{ tag: "a", area: "holding", address: 0, onBad: "ignore" }] }).path).toStartWith("modbusSlave.map[0].onBad");
  });

  it("stops the gateway from starting with an overlapping map", async () => {
    const err = await startGateway({
      "gateway.yml": "modbusSlave:\n  enabled: true\n  port: 0\n  map:\n    - { tag: a, area: coil, address: 3 }\n    - { tag: a, area: coil, address: 3 }\n",
      "drivers.yml": "drivers: [{ id: d, type: simulator, config: { signals: {} } }]\n",
      "variables.yml": "tags: [{ tag: a, driver: d, type: bool }]\n",
    }).then(
      (g) => g.stop().then(() => null),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(/gateway\.yml at modbusSlave\.map\[1\]\.address: unit 1 coil 3\.\.3 \(a\) overlaps/);
  });
});
