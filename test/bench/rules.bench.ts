// `bun run bench rules`: mapping, alarms and rules. Each part lives in test/bench/rules/<part>.ts and
// exports `measure(): Promise<BenchRow[]>`; one table.
import { join } from "node:path";
import { reportParts } from "./report.ts";

await reportParts("rules", join(import.meta.dir, "rules"));
process.exit(0);
