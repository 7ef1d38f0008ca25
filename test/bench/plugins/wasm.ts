// WebAssembly part of `bun run bench plugins`: the example meter decoder (AssemblyScript, 8 frames per
// telegram) per call and per frame in-process and through the child-process boundary (IPC, advanced
// serialization) in batches; instantiation; component (jco, QuickJS) call cost vs core module.
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildComponent } from "../../../drivers/plugins/sdk/component/build.ts";
import { loadWasmPlugin, type WasmPluginOptions } from "../../../drivers/plugins/wasm/runtime.ts";
import { WasmChild } from "../../drivers/plugins/wasm/child.ts";
import { SAMPLE_FRAMES_PER_TELEGRAM, SAMPLE_TELEGRAM } from "../../drivers/plugins/wasm/meter.ts";
import { tempDir } from "../../helpers/index.ts";
import { percentile, type BenchRow } from "../report.ts";

const SDK = join(import.meta.dir, "../../../drivers/plugins/sdk");
const F = SAMPLE_FRAMES_PER_TELEGRAM;

const opts = (cacheDir?: string): WasmPluginOptions => ({ kind: "decoder", config: {}, memoryMaxPages: 64, log: () => undefined, now: Date.now, cacheDir });

/**
 * µs per telegram of decode(batch): the median batch over `budgetMs` (the machine is shared: the median
 * is robust to another process taking the core), after a warm-up by time: JSC runs a fresh module in its
 * interpreter for the first few thousand calls (about 1 ms a telegram) before it tiers up.
 */
async function perTelegramUs(decode: (batch: Uint8Array[]) => unknown, batchSize: number, budgetMs = 1500): Promise<number> {
  const batch = Array.from({ length: batchSize }, () => SAMPLE_TELEGRAM);
  const warm = performance.now();
  while (performance.now() - warm < 1000) await decode(batch);
  const us: number[] = [];
  const t0 = performance.now();
  while (performance.now() - t0 < budgetMs) {
    const t = performance.now();
    await decode(batch);
    us.push((performance.now() - t) * 1000);
  }
  return percentile(us, 50) / batchSize;
}

/** ms of the first `calls` decodes of a fresh instance (one telegram each): the cold start. */
async function coldMs(decode: (batch: Uint8Array[]) => unknown, calls: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await decode([SAMPLE_TELEGRAM]);
  return performance.now() - t0;
}

async function medianMs(times: number, fn: () => Promise<unknown>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return percentile(ms, 50);
}

/**
 * The AssemblyScript build runs in its own process: compiling binaryen's large module in this one keeps
 * JSC's background compiler busy, and the decoder then stays in the interpreter tier for seconds.
 */
let builds = 0;
export function buildInChild(entry: string): Uint8Array {
  const out = join(tmpdir(), `edge-bench-${process.pid}-${++builds}.wasm`);
  const p = Bun.spawnSync([process.execPath, join(SDK, "assemblyscript/build.ts"), entry, out], { stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`asc build of ${entry} failed`);
  const bytes = readFileSync(out);
  rmSync(out);
  return bytes;
}

export async function measure(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const core = buildInChild(join(SDK, "assemblyscript/examples/meter-decoder.ts"));
  const plugin = await loadWasmPlugin(core, opts());
  rows.push({ metric: "wasm cold start: first 1,000 decodes of a fresh module (JSC interpreter tier)", value: await coldMs((b) => plugin.decode!(b), 1000), unit: "ms" });

  const inProcess = await perTelegramUs((b) => plugin.decode!(b), 100);
  rows.push({ metric: "wasm decode in-process, batch 100 (per telegram)", value: inProcess, unit: "µs" });
  rows.push({ metric: "wasm decode in-process, batch 100 (per frame)", value: inProcess / F, unit: "µs" });

  const child = await WasmChild.start(core, { memoryMaxPages: 64 });
  try {
    for (const size of [1, 100, 1000]) {
      const objects = await perTelegramUs((b) => child.decode(b, 10_000), size);
      rows.push({ metric: `via child, frames as objects, batch ${size} (per call)`, value: objects * size, unit: "µs" });
      rows.push({ metric: `via child, frames as objects, batch ${size} (per frame)`, value: objects / F, unit: "µs", baseline: inProcess / F, ratio: objects / inProcess });
      const packed = await perTelegramUs((b) => child.decodePacked(b, 10_000), size);
      rows.push({ metric: `via child, frames packed, batch ${size} (per call)`, value: packed * size, unit: "µs" });
      rows.push({ metric: `via child, frames packed, batch ${size} (per frame, target < 2)`, value: packed / F, unit: "µs", baseline: inProcess / F, ratio: packed / inProcess });
    }
  } finally {
    child.kill();
  }

  rows.push({ metric: "wasm instantiation: compile + checks + instance (target < 100)", value: await medianMs(20, () => loadWasmPlugin(core, opts())), unit: "ms" });
  rows.push({ metric: "wasm plugin child: spawn + load, ready to decode", value: await medianMs(5, async () => (await WasmChild.start(core)).kill()), unit: "ms" });

  const cache = tempDir("edge-wasm-bench-");
  try {
    const component = await buildComponent(join(SDK, "component/meter-decoder.js"));
    const t0 = performance.now();
    const comp = await loadWasmPlugin(component, opts(cache.path));
    rows.push({ metric: "component first load (jco transpile + cache + instantiate)", value: performance.now() - t0, unit: "ms" });
    rows.push({ metric: "component load from the cache", value: await medianMs(10, () => loadWasmPlugin(component, opts(cache.path))), unit: "ms" });
    const compUs = await perTelegramUs((b) => comp.decode!(b), 100);
    rows.push({ metric: "component decode in-process (per call)", value: compUs, unit: "µs", baseline: inProcess, ratio: compUs / inProcess });
  } finally {
    cache.cleanup();
  }
  return rows;
}
