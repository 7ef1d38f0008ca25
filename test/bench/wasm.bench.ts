// `bun run bench wasm`: the WebAssembly part of the plugins benchmark (test/bench/plugins/wasm.ts) alone.
import { measure } from "./plugins/wasm.ts";
import { report } from "./report.ts";

report("wasm", await measure());
process.exit(0);
