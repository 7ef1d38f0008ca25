// A bare child process around the WebAssembly runtime for the isolation tests and the benchmark: the
// same shape as drivers/plugins/child.ts (one plugin per process, calls over IPC with advanced
// serialization) without the package and trust layer, so that the runtime is proven on its own.
import { loadWasmPlugin, type WasmPluginInstance } from "../../../../drivers/plugins/wasm/runtime.ts";

let plugin: WasmPluginInstance | undefined;

type Msg = { op: "load"; id: number; bytes: Uint8Array; memoryMaxPages: number; callTimeoutMs: number } | { op: "decode" | "decodePacked"; id: number; batch: Uint8Array[] };

async function handle(msg: Msg): Promise<unknown> {
  if (msg.op === "load") {
    plugin = await loadWasmPlugin(msg.bytes, {
      kind: "decoder",
      config: {},
      memoryMaxPages: msg.memoryMaxPages,
      callTimeoutMs: msg.callTimeoutMs,
      log: (level, text) => process.send!({ op: "log", level, msg: text }),
      now: Date.now,
    });
    return { pid: process.pid };
  }
  if (!plugin?.decode || !plugin.decodePacked) throw new Error("no decoder loaded");
  return msg.op === "decode" ? plugin.decode(msg.batch) : plugin.decodePacked(msg.batch);
}

process.on("message", (msg: Msg) => {
  handle(msg).then(
    (value) => process.send!({ id: msg.id, ok: true, value }),
    (e: Error) => process.send!({ id: msg.id, ok: false, error: { name: e.name, message: e.message } }),
  );
});
process.on("disconnect", () => process.exit(0));
