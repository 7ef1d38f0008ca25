// `bun run bench plugins`: plugin drivers and decoders through the isolation boundary. Each part lives in
// test/bench/plugins/<part>.ts and exports `measure(): Promise<BenchRow[]>` (js-driver: JS plugin
// drivers and instantiation; the WebAssembly parts add theirs); this file runs every part in name order
// and reports one table.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { report, type BenchRow } from "./report.ts";

const dir = join(import.meta.dir, "plugins");
const parts = readdirSync(dir).filter((f) => f.endsWith(".ts")).sort();
if (parts.length === 0) throw new Error(`no benchmark parts in ${dir}`);
const rows: BenchRow[] = [];
for (const part of parts) {
  const mod = (await import(join(dir, part))) as { measure?: () => Promise<BenchRow[]> };
  if (typeof mod.measure !== "function") throw new Error(`${part} exports no measure()`);
  rows.push(...(await mod.measure()));
}
report("plugins", rows);
process.exit(0);
