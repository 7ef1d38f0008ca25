// The QuickJS WebAssembly module of a rule: compiled once per process, instantiated per rule with a
// WebAssembly memory of its own whose maximum is the rule's memory ceiling.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { newQuickJSWASMModuleFromVariant, newVariant, type QuickJSWASMModule } from "quickjs-emscripten-core";
import variant from "@jitl/quickjs-wasmfile-release-sync";

// emscripten's initial memory of the variant (INITIAL_MEMORY: code data, C stack, the allocator's start)
const BASE_PAGES = 256;
export const PAGE = 65536;
let compiled: Promise<WebAssembly.Module> | null = null;

/** The QuickJS WebAssembly code, compiled once per process (each rule instantiates it with its own memory). */
function quickjsWasm(): Promise<WebAssembly.Module> {
  compiled ??= (async () => {
    const pkg = createRequire(import.meta.url).resolve("@jitl/quickjs-wasmfile-release-sync/package.json");
    return WebAssembly.compile(await Bun.file(join(dirname(pkg), "dist", "emscripten-module.wasm")).arrayBuffer());
  })();
  return compiled;
}

/**
 * A QuickJS module instance whose WebAssembly memory cannot grow past base + `memoryBytes`. QuickJS's own
 * limit (setMemoryLimit) does not count everything in this build (an ArrayBuffer's bytes are not), and
 * without a bound the wasm memory grew to gigabytes in seconds before an allocation failed; with it,
 * `for(;;) keep.push(new Float64Array(1 << 17))` stops at the ceiling in under 100 ms.
 */
export async function boundedModule(memoryBytes: number): Promise<{ module: QuickJSWASMModule; memory: WebAssembly.Memory; maxBytes: number }> {
  const pages = BASE_PAGES + Math.ceil(memoryBytes / PAGE);
  const memory = new WebAssembly.Memory({ initial: BASE_PAGES, maximum: pages });
  const module = await newQuickJSWASMModuleFromVariant(newVariant(variant, { wasmModule: await quickjsWasm(), wasmMemory: memory }));
  return { module, memory, maxBytes: pages * PAGE };
}

