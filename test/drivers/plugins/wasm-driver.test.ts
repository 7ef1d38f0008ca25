// A WebAssembly driver plugin through the same package, trust and process boundary as a JS one: a
// signed folder with a .wasm entry runs under the driver manager (child.ts loads it through
// wasm/runtime.ts) and its frames land in the log, typed as the module encoded them.
import { afterAll, describe, expect, it } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Value } from "@sinclair/typebox/value";
import { builtinDrivers, DriverManager, type DriverFactory } from "../../../drivers/index.ts";
import { signPlugin } from "../../../drivers/plugins/package.ts";
import { PluginRegistry } from "../../../drivers/plugins/registry.ts";
import { Variable } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { newKey } from "./fixtures.ts";
import { FIXED_FRAMES, testDriver } from "./wasm/fixtures.ts";

const tmp = tempDir("plugins-wasm-drv-");
afterAll(() => tmp.cleanup());

describe("WebAssembly driver plugin", () => {
  it("loads a signed .wasm driver in its own process and logs its frames", async () => {
    const key = newKey("acme");
    writeFileSync(join(tmp.path, "authorized_keys"), `${key.publicLine}\n`);
    const dir = join(tmp.path, "plugins", "meter");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "meter.wasm"), testDriver());
    writeFileSync(join(dir, "plugin.toml"), `name = "meter"\nkind = "driver"\nversion = "1.0.0"\nentry = "meter.wasm"\napi = { min = 1, max = 1 }\n`);
    await signPlugin(dir, key.privatePem);
    const log = await EventLog.open({ path: join(tmp.path, "log.duckdb"), maxDelayMs: 2 });
    const factories = new Map<string, DriverFactory>(builtinDrivers);
    const mgr = new DriverManager({ log, factories, settings: { watchdogMs: 0 } });
    try {
      const registry = new PluginRegistry({ configDir: tmp.path, settings: { allowUnsigned: false, memoryMb: 768, callTimeoutMs: 2000 }, factories, appendEvent: (f) => mgr.appendEvent(f) });
      await registry.scan();
      const tags = FIXED_FRAMES.map((f) => Value.Default(Variable, { tag: f.tag, driver: "m1", type: "float64" }) as Variable);
      mgr.add({ id: "m1", type: "plugin", plugin: "meter", enabled: true, config: { intervalMs: 20 } }, undefined, tags);
      const energy = await waitFor(() => log.latest().get("meter/energy"), "the wasm driver's reading");
      expect(energy).toMatchObject({ value: 1234.5, quality: 0, source: "m1" });
      await waitFor(() => log.latest().get("meter/name"), "the string reading");
      expect(log.latest().get("meter/name")?.value).toBe("Zähler 7");
    } finally {
      await mgr.stop();
      await log.close();
    }
  }, 20_000);
});
