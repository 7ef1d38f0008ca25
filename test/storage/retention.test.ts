// Retention and archive: old frames go to Parquet (by day), are verified, then leave the hot table;
// queries over the *_all views return the same rows as before; offsets are never reused.
import { afterEach, describe, expect, it } from "bun:test";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { EventLog, QueryEngine } from "../../storage/index.ts";
import { Retention } from "../../storage/retention.ts";
import { archiveFiles } from "../../storage/views.ts";
import type { Frame } from "../../schemas/index.ts";
import { tempDir } from "../helpers/index.ts";

const T0 = Date.UTC(2024, 0, 1, 23, 0) * 1000; // one hour before midnight: the data spans two days

function frames(n: number, from = 0): Frame[] {
  return Array.from({ length: n }, (_, i) => ({
    kind: "data" as const,
    tag: `t${(from + i) % 3}`,
    value: from + i,
    ts: T0 + (from + i) * 2_000_000,
    quality: 0,
    source: "sim",
  }));
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function open(dir: string) {
  const log = await EventLog.open({ path: join(dir, "log.duckdb"), sandbox: { archiveDir: join(dir, "archive") }, maxDelayMs: 1 });
  const q = new QueryEngine(log, { archiveDir: join(dir, "archive") });
  await q.start();
  return { log, q };
}

describe("retention", () => {
  it("archives then queries the same rows as before archiving", async () => {
    const tmp = tempDir();
    const { log, q } = await open(tmp.path);
    cleanup.push(async () => (await q.stop(), await log.close(), tmp.cleanup()));
    await log.append(frames(3000));
    const before = await q.all(`SELECT * FROM frames_all ORDER BY "offset"`);
    const aggBefore = await q.all(`SELECT tag, count(*), sum(value), min(ts), max(ts) FROM data_all GROUP BY tag ORDER BY tag`);

    const r = new Retention(log, join(tmp.path, "archive"), { maxAgeHours: 0, maxFrames: 500, archive: true, chunkFrames: 1000 });
    const progress: number[] = [];
    r.on("progress", (p) => progress.push(p.done));
    const run = await r.run();
    await q.refreshArchive();

    expect(run).toMatchObject({ first: 1, last: 2500, frames: 2500 });
    expect(progress).toEqual([1000, 2000, 2500]);
    expect((await q.all(`SELECT count(*), min("offset") FROM frames`)).rows).toEqual([[500n, 2501n]]);
    expect(await q.all(`SELECT * FROM frames_all ORDER BY "offset"`)).toEqual(before);
    expect(await q.all(`SELECT tag, count(*), sum(value), min(ts), max(ts) FROM data_all GROUP BY tag ORDER BY tag`)).toEqual(aggBefore);
  });

  it("partitions the Parquet files by the frames' day", async () => {
    const tmp = tempDir();
    const { log, q } = await open(tmp.path);
    cleanup.push(async () => (await q.stop(), await log.close(), tmp.cleanup()));
    await log.append(frames(3600)); // two hours at one frame per 2 s: 23:00 .. 01:00
    await new Retention(log, join(tmp.path, "archive"), { maxAgeHours: 0, maxFrames: 1, archive: true, chunkFrames: 10_000 }).run();
    expect(readdirSync(join(tmp.path, "archive")).filter((d) => d.startsWith("day=")).sort()).toEqual(["day=2024-01-01", "day=2024-01-02"]);
    expect(archiveFiles(join(tmp.path, "archive")).length).toBe(2);
  });

  it("never reuses offsets after archiving, across a restart", async () => {
    const tmp = tempDir();
    let { log, q } = await open(tmp.path);
    await log.append(frames(100));
    await new Retention(log, join(tmp.path, "archive"), { maxAgeHours: 0, maxFrames: 50, archive: true, chunkFrames: 1000 }).run();
    await new Retention(log, join(tmp.path, "archive"), { maxAgeHours: 0, maxFrames: 1, archive: false, chunkFrames: 1000 }).run();
    // everything but the last frame has left the hot table; after a restart the next offset follows the head
    await q.stop();
    await log.close();
    ({ log, q } = await open(tmp.path));
    cleanup.push(async () => (await q.stop(), await log.close(), tmp.cleanup()));
    expect(log.head).toBe(100);
    const c = await log.append(frames(1, 100));
    expect(c.first).toBe(101);
  });

  it("keeps the head when retention empties the hot table, across a restart (no offset is given twice)", async () => {
    const tmp = tempDir();
    let { log, q } = await open(tmp.path);
    await log.append(frames(120));
    const later = Date.now() + 2 * 3_600_000;
    expect((await new Retention(log, join(tmp.path, "archive"), { maxAgeHours: 1, maxFrames: 0, archive: true, chunkFrames: 1000 }).run(later)).frames).toBe(120);
    expect((await q.all(`SELECT count(*) FROM frames`)).rows).toEqual([[0n]]);
    await q.stop();
    await log.close();
    ({ log, q } = await open(tmp.path));
    cleanup.push(async () => (await q.stop(), await log.close(), tmp.cleanup()));
    expect(log.head).toBe(120);
    expect((await log.append(frames(1, 120))).first).toBe(121);
  });

  it("archives by age: frames committed before the limit leave, newer ones stay", async () => {
    const tmp = tempDir();
    const { log, q } = await open(tmp.path);
    cleanup.push(async () => (await q.stop(), await log.close(), tmp.cleanup()));
    await log.append(frames(200));
    const later = Date.now() + 2 * 3_600_000; // pretend two hours have passed
    await log.append(frames(10, 200));
    const r = new Retention(log, join(tmp.path, "archive"), { maxAgeHours: 1, maxFrames: 0, archive: true, chunkFrames: 1000 });
    // the 10 recent frames were committed "now", i.e. 2 h before `later` too: all go; with now = real time none go
    expect((await r.run(Date.now())).frames).toBe(0);
    expect((await r.run(later)).frames).toBe(210);
  });

  it("keeps the writer committing while an archive run deletes old frames", async () => {
    const tmp = tempDir();
    const { log, q } = await open(tmp.path);
    cleanup.push(async () => (await q.stop(), await log.close(), tmp.cleanup()));
    await log.append(frames(20_000));
    const r = new Retention(log, join(tmp.path, "archive"), { maxAgeHours: 0, maxFrames: 1000, archive: true, chunkFrames: 2000 });
    const running = r.run();
    let appended = 0;
    while (r.isRunning) {
      await log.append(frames(100, 20_000 + appended));
      appended += 100;
    }
    const run = await running;
    // the cutoff is the head when the run reads it, after appends that may already have committed
    expect(run.frames).toBe(run.last);
    expect(run.last).toBeGreaterThanOrEqual(19_000);
    expect(run.last).toBeLessThanOrEqual(19_000 + appended);
    expect(appended).toBeGreaterThan(0);
    await q.refreshArchive();
    expect((await q.all(`SELECT count(*), count(DISTINCT "offset"), max("offset") FROM frames_all`)).rows).toEqual([
      [BigInt(20_000 + appended), BigInt(20_000 + appended), BigInt(20_000 + appended)],
    ]);
  });

  it("removes the files of a run that crashed before its delete, so no row is archived twice", async () => {
    const tmp = tempDir();
    const { log, q } = await open(tmp.path);
    cleanup.push(async () => (await q.stop(), await log.close(), tmp.cleanup()));
    await log.append(frames(1000));
    // a crashed run: Parquet written for 1..600 but meta.archived never moved
    mkdirSync(join(tmp.path, "archive", "day=2024-01-01"), { recursive: true });
    const conn = await log.connect();
    await conn.run(`COPY (SELECT * FROM log WHERE "offset" <= 600) TO '${tmp.path}/archive/day=2024-01-01/o1-600_0.parquet' (FORMAT parquet)`);
    conn.closeSync();
    await new Retention(log, join(tmp.path, "archive"), { maxAgeHours: 0, maxFrames: 200, archive: true, chunkFrames: 10_000 }).run();
    await q.refreshArchive();
    expect((await q.all(`SELECT count(*), count(DISTINCT "offset") FROM frames_all`)).rows).toEqual([[1000n, 1000n]]);
  });
});
