// The component form: the example JS decoder built into an `edge:plugin` component (QuickJS backend),
// transpiled by jco once into a cache folder, decodes the same frames as the AssemblyScript example.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash } from "node:crypto";
import { cpSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildComponent } from "../../../../drivers/plugins/sdk/component/build.ts";
import { checkComponentImports } from "../../../../drivers/plugins/wasm/component.ts";
import { loadWasmPlugin, type WasmPluginOptions } from "../../../../drivers/plugins/wasm/runtime.ts";
import { tempDir } from "../../../helpers/index.ts";
import { meterTelegram, SAMPLE_TELEGRAM } from "./meter.ts";

const EXAMPLE = join(import.meta.dir, "../../../../drivers/plugins/sdk/component/meter-decoder.js");
const cache = tempDir("edge-wasm-cache-");
const lines: string[] = [];
let component: Uint8Array;
const opts = (): WasmPluginOptions => ({ kind: "decoder", config: {}, memoryMaxPages: 256, log: (l, m) => lines.push(`${l}: ${m}`), now: Date.now, cacheDir: cache.path });

beforeAll(async () => {
  component = await buildComponent(EXAMPLE);
}, 60_000);
afterAll(() => cache.cleanup());

describe("component plugins (jco)", () => {
  it("runs the example component through jco and decodes a telegram into the same frames as the core module", async () => {
    const plugin = await loadWasmPlugin(component, opts());
    const [frames] = plugin.decode!([SAMPLE_TELEGRAM]);
    expect(frames).toHaveLength(8);
    expect(frames![0]).toEqual({ tag: "meter/40123/tamper", value: false, ts: 1_764_633_600e6 });
    expect(frames![2]).toEqual({ tag: "meter/40123/energy_import_kwh", value: 12345.67, ts: 1_764_633_600e6 });
    expect(frames![4]).toEqual({ tag: "meter/40123/power_w", value: -1520, ts: 1_764_633_600e6 });
  }, 30_000);

  it("passes the component's log lines and its refusals of a payload to the host, and goes on", async () => {
    const plugin = await loadWasmPlugin(component, opts());
    const many = meterTelegram(5, 1, 0, Array.from({ length: 8 }, (_, i) => ({ register: i + 1, exponent: 0, raw: i })));
    const out = plugin.decode!([SAMPLE_TELEGRAM.subarray(0, 20), many]);
    expect(out[0]).toEqual([]);
    expect(out[1]![9]).toEqual({ tag: "meter/5/reg8", value: 7, ts: 1e6, quality: 0x40000000 });
    expect(lines.some((l) => l.startsWith("warn: decode refused its input") && l.includes("telegram announces 6 records but has 20 bytes"))).toBe(true);
    expect(lines).toContain("debug: 10 frames from meter meter/5/");
  }, 30_000);

  it("transpiles a component once: a load finds it in the cache folder named by its SHA-256", async () => {
    const fresh = tempDir("edge-wasm-cache-");
    try {
      await loadWasmPlugin(component, { ...opts(), cacheDir: fresh.path });
      const sha = createHash("sha256").update(component).digest("hex");
      expect(readdirSync(fresh.path)).toEqual([sha]);
      // a marked copy in a second cache: a load that used it did not transpile (no timing on a shared machine)
      const marked = tempDir("edge-wasm-cache-");
      cpSync(join(fresh.path, sha), join(marked.path, sha), { recursive: true });
      const js = join(marked.path, sha, "plugin.js");
      const counted = "export function instantiate(...a) { globalThis.edgeCachedCopy = (globalThis.edgeCachedCopy ?? 0) + 1; return instantiate0(...a); }";
      writeFileSync(js, `${readFileSync(js, "utf8").replace("export function instantiate(", "function instantiate0(")}\n${counted}\n`);
      const plugin = await loadWasmPlugin(component, { ...opts(), cacheDir: marked.path });
      expect((globalThis as { edgeCachedCopy?: number }).edgeCachedCopy).toBe(1);
      expect(plugin.decode!([SAMPLE_TELEGRAM])[0]).toHaveLength(8);
      marked.cleanup();
    } finally {
      fresh.cleanup();
    }
  }, 30_000);

  // building a second component costs ~7 s here, so the import rule is checked on the list jco reports
  it("refuses a component that imports WASI, naming the import", () => {
    expect(() => checkComponentImports(["edge:plugin/host@0.1.0", "wasi:filesystem/preopens@0.2.3"])).toThrow(/import wasi:filesystem\/preopens@0.2.3: not provided by the host/);
    expect(() => checkComponentImports(["edge:plugin/host@0.1.0"])).not.toThrow();
  });
});
