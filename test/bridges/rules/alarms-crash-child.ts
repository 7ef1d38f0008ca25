// Child of alarms-crash.test.ts: an alarm engine on a log while readings cross the limits without end,
// until the parent kills the process (SIGKILL). Prints "head <offset>" after each append.
import { AlarmEngine } from "../../../bridges/rules/alarms.ts";
import { Catalog, Quality, type DataFrame, type Variable } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { crashTags } from "./alarms-crash-tags.ts";

const path = process.argv[2]!;
const log = await EventLog.open({ path, maxDelayMs: 2 });
const engine = new AlarmEngine({ log, catalog: new Catalog(crashTags() as Variable[]), storeEveryMs: 10 });
await engine.start();
let seed = 7;
const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
for (;;) {
  const batch: DataFrame[] = [];
  for (let k = 0; k < 200; k++) batch.push({ kind: "data", tag: `c/t${Math.floor(rnd() * 50)}`, value: rnd() < 0.5 ? 40 : 60, ts: Date.now() * 1000, quality: Quality.Good, source: "crash" });
  await log.append(batch);
  console.log(`head ${log.head} engine ${engine.position}`);
  await Bun.sleep(5);
}
