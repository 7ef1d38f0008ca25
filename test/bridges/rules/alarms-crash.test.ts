// A SIGKILL of the process while the alarm engine works neither loses nor repeats a transition: after a
// restart on the same log, each alarm has exactly one transition per crossing of its limit in the
// readings the log holds, in order, alternating active/cleared.
import { afterAll, expect, it } from "bun:test";
import { join } from "node:path";
import { AlarmEngine } from "../../../bridges/rules/alarms.ts";
import { Catalog, type AlarmState, type DataFrame, type EventFrame, type Variable } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { Child } from "../../helpers/process.ts";
import { crashTags } from "./alarms-crash-tags.ts";

const dir = tempDir();
afterAll(() => dir.cleanup());

it("after a SIGKILL mid-work, every limit crossing in the log has exactly one transition", async () => {
  const path = join(dir.path, "log.duckdb");
  const child = new Child("the alarm engine child", [process.execPath, join(import.meta.dir, "alarms-crash-child.ts"), path], { stderr: "inherit", keepChars: 2000 });
  try {
    // killed once the engine has read 20,000 frames (thousands of transitions), while readings keep coming
    await child.waitForOutput((out) => /engine \d{5,}/.test(out), "the engine to have read 10,000 frames or more", 60_000);
  } finally {
    await child.stop("SIGKILL");
  }

  const log = await EventLog.open({ path, maxDelayMs: 1 });
  const engine = new AlarmEngine({ log, catalog: new Catalog(crashTags() as Variable[]) });
  try {
    await engine.start();
    const head = log.head;
    await waitFor(() => engine.position >= head, "the restarted engine to catch up", 30_000);
    await engine.stop();
    // expected: one transition per change of (value > 50) per tag, in log order, starting from cleared
    const flips = new Map<string, number>();
    const above = new Map<string, boolean>();
    const got = new Map<string, string[]>();
    for await (const f of log.read({ from: 1 })) {
      if (f.kind === "data") {
        const d = f as DataFrame;
        const on = (d.value as number) > 50;
        if (on !== (above.get(d.tag) ?? false)) flips.set(d.tag, (flips.get(d.tag) ?? 0) + 1);
        above.set(d.tag, on);
      } else if (f.kind === "event" && f.source === "alarms") {
        const s = (f as EventFrame).data as AlarmState;
        got.set(s.tag!, [...(got.get(s.tag!) ?? []), (f as EventFrame).type]);
      }
    }
    let total = 0;
    for (const [tag, n] of flips) {
      const types = got.get(tag) ?? [];
      expect({ tag, transitions: types.length }).toEqual({ tag, transitions: n });
      types.forEach((t, i) => expect(t).toBe(i % 2 === 0 ? "alarm.active" : "alarm.cleared"));
      total += n;
    }
    expect(total).toBeGreaterThan(100);
  } finally {
    await engine.stop();
    await log.close();
  }
}, 90_000);
