// The AssemblyScript SDK: the example meter decoder compiled here with asc 0.28 (incremental runtime,
// imported memory) decodes telegrams into the right frames through the runtime, and frees what it allocates.
import { beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { buildAssemblyScript } from "../../../../drivers/plugins/sdk/assemblyscript/build.ts";
import { loadWasmPlugin, type WasmPluginInstance } from "../../../../drivers/plugins/wasm/runtime.ts";
import { meterTelegram, SAMPLE_TELEGRAM } from "./meter.ts";

const EXAMPLE = join(import.meta.dir, "../../../../drivers/plugins/sdk/assemblyscript/examples/meter-decoder.ts");
const TS = 1_764_633_600 * 1e6;

let wasm: Uint8Array;
const lines: string[] = [];
let plugin: WasmPluginInstance;

beforeAll(async () => {
  wasm = await buildAssemblyScript(EXAMPLE);
  plugin = await loadWasmPlugin(wasm, { kind: "decoder", config: {}, memoryMaxPages: 64, log: (l, m) => lines.push(`${l}: ${m}`), now: Date.now });
}, 60_000);

describe("AssemblyScript SDK example (meter decoder)", () => {
  it("decodes a meter telegram into one frame per register plus the status bits, scaled, with the reading time", () => {
    const [frames] = plugin.decode!([SAMPLE_TELEGRAM]);
    expect(frames).toEqual([
      { tag: "meter/40123/tamper", value: false, ts: TS },
      { tag: "meter/40123/battery_low", value: true, ts: TS },
      { tag: "meter/40123/energy_import_kwh", value: 12345.67, ts: TS },
      { tag: "meter/40123/energy_export_kwh", value: 45, ts: TS },
      { tag: "meter/40123/power_w", value: -1520, ts: TS },
      { tag: "meter/40123/voltage_l1_v", value: 230.10000000000002, ts: TS },
      { tag: "meter/40123/current_l1_a", value: 6.612, ts: TS },
      { tag: "meter/40123/frequency_hz", value: 49.980000000000004, ts: TS },
    ]);
  });

  it("marks an unknown register Uncertain under a reg<n> tag", () => {
    const [frames] = plugin.decode!([meterTelegram(7, 1, 0, [{ register: 42, exponent: 0, raw: 5 }])]);
    expect(frames![2]).toEqual({ tag: "meter/7/reg42", value: 5, ts: 1e6, quality: 0x40000000 });
  });

  it("refuses a truncated telegram with an error line naming the sizes, and decodes the next one", () => {
    const out = plugin.decode!([SAMPLE_TELEGRAM.subarray(0, 20), SAMPLE_TELEGRAM]);
    expect(out[0]).toEqual([]);
    expect(out[1]).toHaveLength(8);
    expect(lines).toContain("error: telegram announces 6 records but has 20 bytes");
  });

  it("keeps its memory flat over 40,000 decodes that allocate strings (incremental runtime; the stub runtime hits the ceiling)", () => {
    const odd = meterTelegram(99, 1, 0, [{ register: 200, exponent: 0, raw: 1 }]);
    for (let i = 0; i < 1000; i++) plugin.decode!([odd, SAMPLE_TELEGRAM]);
    const before = plugin.stats().pages;
    for (let i = 0; i < 20_000; i++) plugin.decode!([odd, SAMPLE_TELEGRAM]);
    expect(plugin.stats().pages).toBeLessThanOrEqual(before + 1);
    expect(plugin.stats().traps).toBe(0);
  }, 30_000);
});
