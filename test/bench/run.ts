// `bun run bench [name...]`: runs test/bench/<name>.bench.ts (all of them without a name), each in its
// own process so that one benchmark's memory does not skew another's.
import { readdirSync } from "node:fs";
import { join } from "node:path";

const dir = import.meta.dir;
const all = readdirSync(dir).filter((f) => f.endsWith(".bench.ts")).map((f) => f.replace(/\.bench\.ts$/, "")).sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  console.error(`unknown benchmark ${unknown.join(", ")}; available: ${all.join(", ")}`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  const p = Bun.spawnSync([process.execPath, join(dir, `${name}.bench.ts`)], { stdio: ["inherit", "inherit", "inherit"] });
  if (p.exitCode !== 0) {
    console.error(`benchmark ${name} failed (exit ${p.exitCode})`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
