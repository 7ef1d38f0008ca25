// Disk full, for real: the log's file on a small tmpfs filled up by its own frames. The log must say it
// is degraded and why, pause its producers, acknowledge nothing it did not commit, and recover by itself
// (reopening the database DuckDB invalidated) once space is freed, with every committed frame present,
// gapless, and its readers (a consumer, the SQL engine, the command bus) working again.
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { DataFrame, Logged } from "../../schemas/index.ts";
import { CommandBus, consume, EventLog, LogDegradedError, QueryEngine, type CommitInfo } from "../../storage/index.ts";
import { waitFor } from "../helpers/index.ts";
import { smallDisk, type SmallDisk } from "../helpers/tmpfs.ts";

// random text: DuckDB's compression must not shrink the readings, or the disk fills at its own pace
const pad = () => randomBytes(750).toString("hex");
const reading = (seq: number): DataFrame => ({ kind: "data", tag: `t${seq % 50}`, value: `${seq}:${pad()}`, ts: 1_700_000_000_000_000 + seq, quality: 0, source: "filler" });

/** A producer as a driver behaves: waits for capacity, then appends a batch without awaiting its commit. */
function producer(log: EventLog) {
  const state = { seq: 0, stopped: false, resolved: new Map<number, number>(), refused: 0, pending: new Set<Promise<unknown>>(), blockedAt: 0, maxQueued: 0 };
  const done = (async () => {
    while (!state.stopped && !log.isClosed) {
      if (log.isPaused) state.blockedAt = Date.now();
      await log.waitForCapacity();
      const first = state.seq;
      const batch = Array.from({ length: 100 }, () => reading(state.seq++));
      const p = log.append(batch).then(
        (c: CommitInfo) => {
          for (let i = 0; i <= c.last - c.first; i++) state.resolved.set(c.first + i, first + i);
        },
        () => void state.refused++,
      );
      state.maxQueued = Math.max(state.maxQueued, log.queueDepth);
      state.pending.add(p);
      void p.finally(() => state.pending.delete(p));
      await Bun.sleep(1);
    }
  })();
  return {
    state,
    async stop() {
      state.stopped = true;
      await done;
      await Promise.all(state.pending);
    },
  };
}

let disk: SmallDisk | null = null;
afterEach(() => {
  disk?.cleanup();
  disk = null;
});

describe("disk full", () => {
  it("degrades with the reason, pauses producers, and recovers by itself once space is freed, every committed frame present and gapless", async () => {
    // 24 MB free: the WAL reaches DuckDB's checkpoint threshold (16 MB) and the checkpoint fails, which
    // invalidates the instance (the path seen in the field); with less, only the WAL write fails
    disk = smallDisk(32, 8);
    const path = join(disk.path, "log.duckdb");
    let log = await EventLog.open({ path, maxDelayMs: 5, highWater: 2000, lowWater: 500, tailFrames: 500, commitRetry: { initialMs: 20, maxMs: 300 } });
    const events: string[] = [];
    let pausedWhenDegraded = false;
    log.on("degraded", (r: string) => {
      events.push(`degraded: ${r}`);
      pausedWhenDegraded = log.isPaused;
    });
    log.on("recovered", () => events.push("recovered"));
    const commands = new CommandBus(log);
    commands.start();
    const cmd = await commands.submit({ tag: "sp", value: 1, origin: "rest", actor: "test", tenant: "t", id: "before-full" });
    const sql = new QueryEngine(log);
    await sql.start();
    const seen: number[] = [];
    const consumer = consume(log, { name: "reader", from: 1, retry: { initialMs: 20, maxMs: 200 }, handler: (page) => void seen.push(...page.map((f) => f.offset)) });
    const prod = producer(log);

    // An append past what the log may hold while degraded is refused, clearly. Made in the same tick as
    // the check: a reopen may succeed for a moment before the next checkpoint fails again.
    const refused = await waitFor(
      () => log.isDegraded && { flood: log.append(Array.from({ length: 2001 }, (_, i) => reading(1_000_000 + i))), command: commands.submit({ tag: "sp", value: 2, origin: "rest", actor: "test", tenant: "t" }) },
      "the log to degrade on the full disk",
      60_000,
    );
    await expect(refused.flood).rejects.toBeInstanceOf(LogDegradedError);
    // a command someone waits to answer is refused at once, nothing recorded, rather than held for the outage
    await expect(refused.command).rejects.toBeInstanceOf(LogDegradedError);
    expect(events[0]).toMatch(/^degraded: .*(No space left on device|autocheckpoint failed|invalidated)/);
    expect(pausedWhenDegraded).toBe(true);
    // the producer is held at waitForCapacity instead of appending into a dead log: the queue stays
    // within the high-water mark plus the batch it was sending
    await waitFor(() => prod.state.blockedAt > 0, "the producer to be paused");
    expect(prod.state.maxQueued).toBeLessThanOrEqual(2000 + 100);
    const headWhileFull = log.head;

    disk.free();
    await waitFor(() => !log.isDegraded, "the log to recover after space was freed", 20_000);
    expect(events).toContain("recovered");
    // ingest resumes without anyone restarting anything
    await waitFor(() => log.head > headWhileFull + 1000, "ingest to resume", 10_000);
    await prod.stop();
    await waitFor(() => consumer.handledUpTo === log.head, "the consumer to catch up after the reopen", 10_000);
    await consumer.stop();
    expect(seen).toEqual(Array.from({ length: log.head }, (_, i) => i + 1));
    // DuckDB invalidated the instance on the full disk: the log closed and opened it again itself
    expect(log.health().reopens).toBeGreaterThanOrEqual(1);
    // connections made before the reopen were replaced
    expect((await sql.all("SELECT count(*) AS n FROM frames")).rows[0]![0]).toBe(BigInt(log.head));
    expect((await commands.find("before-full"))?.offset).toBe(cmd.offset);
    await sql.stop();
    await commands.stop();
    const head = log.head;
    await log.close();

    // every frame whose append resolved is in the file at its offset, offsets 1..head with no gap
    log = await EventLog.open({ path });
    expect(log.head).toBe(head);
    const values = new Map<number, string>();
    let expected = 1;
    for await (const f of log.read({ from: 1 })) {
      expect(f.offset).toBe(expected++);
      if (f.kind === "data") values.set(f.offset, String((f as Logged<DataFrame>).value));
    }
    expect(expected - 1).toBe(head);
    expect(prod.state.resolved.size).toBeGreaterThan(1000);
    for (const [offset, seq] of prod.state.resolved) expect(values.get(offset)?.split(":")[0]).toBe(String(seq));
    await log.close();
  }, 90_000);
});
