// StatusCode names: schemas/status-codes.ts (generated from node-opcua's table, so that schemas/ does
// not depend on node-opcua) names every OPC UA code, and qualityName uses it; also the float32 rule
// of checkWrite (a value a float32 cannot keep is refused, not written as another number).
import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { StatusCodes } from "node-opcua";
import { renderStatusCodes, STATUS_CODES_FILE } from "../../drivers/opcua/gen-status-codes.ts";
import { checkWrite } from "../../schemas/command.ts";
import type { Variable } from "../../schemas/index.ts";
import { Quality, qualityCode, qualityName } from "../../schemas/quality.ts";

describe("StatusCode names", () => {
  it("keeps schemas/status-codes.ts equal to node-opcua's table (regenerate: bun drivers/opcua/gen-status-codes.ts)", () => {
    expect(readFileSync(STATUS_CODES_FILE, "utf8")).toBe(renderStatusCodes());
  });

  it("names every OPC UA StatusCode, e.g. 0x808c0000 as Bad_SensorFailure, instead of hex", () => {
    expect(qualityName(0x808c0000)).toBe("Bad_SensorFailure");
    expect(qualityName(StatusCodes.BadSecureChannelIdInvalid.value)).toBe("Bad_SecureChannelIdInvalid");
    expect(qualityName(StatusCodes.UncertainSensorCalibration.value)).toBe("Uncertain_SensorCalibration");
    for (const [key, sc] of Object.entries(StatusCodes)) {
      if (typeof sc !== "object" || (sc.value & 0xffff) !== 0) continue;
      expect(qualityName(sc.value)).toBe(key.replace(/^(Good|Uncertain|Bad)(?=[A-Z])/, "$1_"));
    }
  });

  it("gives the gateway's own Quality names the same codes as OPC UA", () => {
    for (const [name, code] of Object.entries(Quality)) expect(qualityName(code)).toBe(name);
  });

  it("shows info bits after the name and unknown codes in hex, and reads names in both spellings", () => {
    expect(qualityName(0x00000480)).toBe("Good (0x00000480)");
    expect(qualityName(0x80ff0000)).toBe("0x80ff0000");
    expect(qualityCode("Bad_SensorFailure")).toBe(0x808c0000);
    expect(qualityCode("BadSensorFailure")).toBe(0x808c0000);
    expect(qualityCode("NoSuchStatus")).toBeUndefined();
  });
});

describe("float32 writes", () => {
  const tag = { tag: "w", driver: "d", type: "float32", access: "RW", scale: 1, offset: 0, group: "default" } as unknown as Variable;

  it("refuses a float32 value that would be written as another number (1e-50 as 0, 1e-40 with lost digits, 1e39 beyond range)", () => {
    for (const v of [1e-50, -1e-45, 1e-40, 1e39]) expect(checkWrite(tag, v)).toMatchObject({ ok: false, code: "out_of_range" });
  });

  it("accepts float32 values that keep their value to float32 precision", () => {
    for (const v of [0, 0.1, -2.5e-30, 1e-37, 3.4e38, 16777217]) expect(checkWrite(tag, v)).toEqual({ ok: true, value: v });
  });
});
