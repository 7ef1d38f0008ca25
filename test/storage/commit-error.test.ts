// A failed commit rejects its appends with CommitError, consumes no offset, and the writer carries on,
// whether or not anyone listens to the log's 'error' event.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { DataFrame } from "../../schemas/index.ts";
import { CommitError, EventLog } from "../../storage/index.ts";
import { tempDir } from "../helpers/index.ts";

const frame = (i: number): DataFrame => ({ kind: "data", tag: `t${i}`, value: i, ts: 1_700_000_000_000_000 + i, quality: 0, source: "test" });
// a timestamp that cannot become a BIGINT makes the whole transaction fail
const poisoned = (): DataFrame => ({ ...frame(0), ts: Number.NaN });

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
});
