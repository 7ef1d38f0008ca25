// Child process of the durability test: opens the event log at argv[2], prints `ready <head>`, then
// ingests at full speed, printing `first last` for every append whose commit has resolved, until it is
// killed. Frame k (offset k) carries value 2k, ts k and tag t<k mod 100>, so its content can be checked.
import { EventLog } from "../../storage/index.ts";
import type { DataFrame } from "../../schemas/index.ts";

const path = process.argv[2];
if (!path) throw new Error("usage: ingest-child.ts <log path>");
const log = await EventLog.open({ path, batchSize: 5000, maxDelayMs: 2, highWater: 40_000, lowWater: 10_000, tailFrames: 0 });
process.stdout.write(`ready ${log.head}\n`);

const PER_APPEND = 500;
let seq = log.head + 1; // offsets continue from the head because only this writer assigns them
for (;;) {
  const frames: DataFrame[] = new Array(PER_APPEND);
  for (let i = 0; i < PER_APPEND; i++) {
    const k = seq + i;
    frames[i] = { kind: "data", tag: `t${k % 100}`, value: k * 2, ts: k, quality: 0, source: "child" };
  }
  seq += PER_APPEND;
  log.append(frames).then(
    (c) => process.stdout.write(`${c.first} ${c.last}\n`),
    (e) => process.stdout.write(`error ${(e as Error).message}\n`),
  );
  // backpressure: above the high-water mark, wait for the writer; otherwise let it run now and then
  if (log.isPaused) await log.waitForCapacity();
  else if ((seq / PER_APPEND) % 8 === 0) await new Promise((r) => setImmediate(r));
}
