// Decoder part of `bun run bench plugins`: the path the gateway uses for a decoder plugin: a signed
// folder loaded by the PluginRegistry, its process started by PluginRegistry.decoder (child.ts, the
// packed crossing decodePacked + readPackedBatch), the AssemblyScript meter example (8 frames a
// telegram) in batches as the MQTT source's DecodeBatcher sends them (up to 256).
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { DriverFactory } from "../../../drivers/contract.ts";
import { signPlugin } from "../../../drivers/plugins/package.ts";
import { PluginRegistry } from "../../../drivers/plugins/registry.ts";
import { newKey } from "../../drivers/plugins/fixtures.ts";
import { SAMPLE_FRAMES_PER_TELEGRAM, SAMPLE_TELEGRAM } from "../../drivers/plugins/wasm/meter.ts";
import { tempDir } from "../../helpers/index.ts";
import { percentile, type BenchRow } from "../report.ts";
import { buildInChild } from "./wasm.ts";

const SDK = join(import.meta.dir, "../../../drivers/plugins/sdk");

export async function measure(): Promise<BenchRow[]> {
  const tmp = tempDir("edge-bench-decoder-");
  const key = newKey("bench");
  writeFileSync(join(tmp.path, "authorized_keys"), `${key.publicLine}\n`);
  const dir = join(tmp.path, "plugins", "meter");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "meter.wasm"), buildInChild(join(SDK, "assemblyscript/examples/meter-decoder.ts")));
  writeFileSync(join(dir, "plugin.toml"), `name = "meter"\nkind = "decoder"\nversion = "1.0.0"\nentry = "meter.wasm"\napi = { min = 1, max = 1 }\n`);
  await signPlugin(dir, key.privatePem);
  const registry = new PluginRegistry({ configDir: tmp.path, settings: { allowUnsigned: false, memoryMb: 768, callTimeoutMs: 10_000 }, factories: new Map<string, DriverFactory>(), appendEvent: () => undefined });
  const rows: BenchRow[] = [];
  try {
    await registry.scan();
    const decoder = registry.decoder("meter")!;
    const t0 = performance.now();
    await decoder.decode([SAMPLE_TELEGRAM]);
    rows.push({ metric: "registry decoder: first batch (process start + load + decode)", value: performance.now() - t0, unit: "ms" });
    for (const size of [1, 100, 256]) {
      const batch = Array.from({ length: size }, () => SAMPLE_TELEGRAM);
      const warm = performance.now();
      while (performance.now() - warm < 1000) await decoder.decode(batch);
      const us: number[] = [];
      const t = performance.now();
      while (performance.now() - t < 1500) {
        const c = performance.now();
        await decoder.decode(batch);
        us.push((performance.now() - c) * 1000);
      }
      const perCall = percentile(us, 50);
      rows.push({ metric: `registry decoder, batch ${size} (per call)`, value: perCall, unit: "µs" });
      rows.push({ metric: `registry decoder, batch ${size} (per frame, target < 2)`, value: perCall / size / SAMPLE_FRAMES_PER_TELEGRAM, unit: "µs" });
    }
  } finally {
    registry.stop();
    tmp.cleanup();
  }
  return rows;
}
