// A failed commit rejects its appends with CommitError, consumes no offset, and the writer carries on,
// whether or not anyone listens to the log's 'error' event.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { DataFrame } from "../../schemas/index.ts";
import { CommitError, EventLog, FrameError } from "../../storage/index.ts";
import { tempDir } from "../helpers/index.ts";

const frame = (i: number): DataFrame => ({ kind: "data", tag: `t${i}`, value: i, ts: 1_700_000_000_000_000 + i, quality: 0, source: "test" });
// a frame of a kind the table has no code for makes the whole transaction fail (a programming error:
// frames from outside are checked by append() and refused alone, see the last test)
const poisoned = (): DataFrame => ({ ...frame(0), kind: "bogus" }) as unknown as DataFrame;

let dir: ReturnType<typeof tempDir>;
beforeEach(() => (dir = tempDir()));
afterEach(() => dir.cleanup());

describe("commit failure", () => {
  it("rejects the batch with CommitError and keeps writing, gapless, without an 'error' listener", async () => {
    const log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 1 });
    expect(await log.append([frame(1), frame(2)])).toEqual({ first: 1, last: 2 });
    await expect(log.append([frame(3), poisoned()])).rejects.toBeInstanceOf(CommitError);
    expect(log.head).toBe(2);
    expect(log.queueDepth).toBe(0);
    expect(await log.append([frame(4)])).toEqual({ first: 3, last: 3 });
    const offsets: number[] = [];
    for await (const f of log.read({ from: 1 })) offsets.push(f.offset);
    expect(offsets).toEqual([1, 2, 3]);
    await log.close();
  });

  it("tells 'error' listeners when there are some", async () => {
    const log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 1 });
    const seen: unknown[] = [];
    log.on("error", (e) => seen.push(e));
    await expect(log.append([poisoned()])).rejects.toThrow("commit of 1 frames failed");
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeInstanceOf(CommitError);
    await log.close();
  });

  it("refuses an append with a frame it cannot store alone, and commits the others of the same batch", async () => {
    const log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 20 });
    const good = log.append([frame(1)]);
    const bad = log.append([frame(2), { ...frame(3), ts: 1e20 * 1e6 }]);
    const alsoGood = log.append([frame(4)]);
    await expect(bad).rejects.toBeInstanceOf(FrameError);
    await expect(bad).rejects.toThrow("frame 1 of the append: ts");
    expect(await good).toEqual({ first: 1, last: 1 });
    expect(await alsoGood).toEqual({ first: 2, last: 2 });
    await expect(log.append([{ ...frame(5), quality: -1 }])).rejects.toThrow("quality -1 is not a uint32");
    await log.close();
  });

  it("keeps committing when a 'commit' listener throws", async () => {
    const log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 1 });
    log.on("commit", () => {
      throw new Error("a buggy listener");
    });
    expect(await log.append([frame(1)])).toEqual({ first: 1, last: 1 });
    expect(await log.append([frame(2)])).toEqual({ first: 2, last: 2 });
    await log.close();
  });
});
