// `bun run bench plugins`: plugin drivers and decoders through the isolation boundary. Each part lives in
// test/bench/plugins/<part>.ts and exports `measure(): Promise<BenchRow[]>` (js-driver: JS plugin
// drivers and instantiation; wasm and decoder: the WebAssembly parts); one table.
import { join } from "node:path";
import { reportParts } from "./report.ts";

await reportParts("plugins", join(import.meta.dir, "plugins"));
process.exit(0);
