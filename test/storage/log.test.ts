// The event log's contract: offsets, commits, cursors, replay and tails.
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { join } from "node:path";
import type { DataFrame, Frame } from "../../schemas/index.ts";
import { DuckDBInstance } from "@duckdb/node-api";
import { JSON_LINES_INSERT, LOG_DDL } from "../../storage/codec.ts";
import { EventLog } from "../../storage/index.ts";
import { JSON_LINES_MAX_FRAMES } from "../../storage/log.ts";
import { failSmallInserts } from "../helpers/faults.ts";
import { tempDir } from "../helpers/index.ts";

const frame = (i: number, tag = `t${i % 10}`): DataFrame => ({ kind: "data", tag, value: i, ts: 1_700_000_000_000_000 + i, quality: 0, source: "test" });
const frames = (from: number, n: number) => Array.from({ length: n }, (_, k) => frame(from + k));

let dir: ReturnType<typeof tempDir>;
let path: string;
beforeEach(() => {
  dir = tempDir();
  path = join(dir.path, "log.duckdb");
});
afterEach(() => dir.cleanup());

describe("event log", () => {
  it("assigns gapless offsets from 1 and keeps them across a restart", async () => {
    let log = await EventLog.open({ path, maxDelayMs: 1 });
    const a = await log.append(frames(0, 10));
    expect(a).toEqual({ first: 1, last: 10 });
    await log.close();
    log = await EventLog.open({ path, maxDelayMs: 1 });
    expect(log.head).toBe(10);
    const b = await log.append(frames(10, 5));
    expect(b).toEqual({ first: 11, last: 15 });
    const offsets: number[] = [];
    for await (const f of log.read({ from: 1 })) offsets.push(f.offset);
    expect(offsets).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    await log.close();
  });

  it("groups concurrent appends into one commit and gives each its own range", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 20, batchSize: 1000 });
    const commits: number[] = [];
    log.on("commit", (c) => commits.push(c.frames));
    const results = await Promise.all([log.append(frames(0, 3)), log.append(frames(3, 4)), log.append(frames(7, 2))]);
    expect(results).toEqual([
      { first: 1, last: 3 },
      { first: 4, last: 7 },
      { first: 8, last: 9 },
    ]);
    expect(commits).toEqual([9]);
    await log.close();
  });

  it("round-trips every frame kind and value type, 64-bit integers exactly", async () => {
    let log = await EventLog.open({ path, maxDelayMs: 1, tailFrames: 0 });
    const big = 9007199254740993n; // 2^53 + 1: not representable as a double
    const input: Frame[] = [
      { kind: "data", tag: "a", value: 1.5, ts: 1, quality: 0, source: "s" },
      { kind: "data", tag: "b", value: true, ts: 2, quality: 0x800a0000, source: "s" },
      { kind: "data", tag: "c", value: "text", ts: 3, quality: 0, source: "s" },
      { kind: "data", tag: "d", value: null, ts: 4, quality: 0x80050000, source: "s" },
      { kind: "data", tag: "e", value: big, ts: 5, quality: 0, source: "s" },
      { kind: "cmd", id: "c1", tag: "a", value: 2, origin: "rest", actor: "alice", tenant: "t1", ts: 6, expiresAt: 100 },
      { kind: "ack", cmd: "c1", tag: "a", ok: false, status: "error", code: "device_error", error: "exception 2", ts: 7, source: "plc" },
      { kind: "event", type: "driver.state", source: "plc", ts: 8, data: { state: "Active" } },
    ];
    await log.append(structuredClone(input));
    await log.close();
    log = await EventLog.open({ path, tailFrames: 0 });
    const out = [];
    for await (const f of log.read({ from: 1 })) {
      const { offset, loggedAt, ...rest } = f;
      expect(loggedAt).toBeGreaterThan(0);
      out.push(rest);
    }
    expect(out).toEqual(input);
    expect(log.latest().get("e")?.value).toBe(big);
    await log.close();
  });

  it("stores a batch as JSON lines exactly as a large one (appender): doubles, strings with line breaks, 64-bit integers", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 1, tailFrames: 0 });
    const values = [0.1, 5e-324, 1.7976931348623157e308, -1.5e-300, 123456789.123456789, 2 ** 53 + 2, false, true, null, -9223372036854775808n, 18446744073709551615n];
    const strings = [`it's "quoted"`, "back\\slash", "line\nbreak\ttab", "Zürich 温度 🌡", "nul\u0000inside", "lone \ud800 surrogate", ""];
    const frames = (): Frame[] => [
      ...values.map((value, i): Frame => ({ kind: "data", tag: `v${i}`, value, ts: 1_700_000_000_000_000 + i, quality: 0, source: "s" })),
      ...strings.map((value, i): Frame => ({ kind: "data", tag: `s'${i}`, value, ts: 2 + i, quality: 0x80000000 + i, source: value })),
      // no exact JSON form: this batch goes to the appender whole
      ...[Number.NaN, -0, Number.POSITIVE_INFINITY].map((value, i): Frame => ({ kind: "data", tag: `n${i}`, value, ts: 3, quality: 0, source: "s" })),
      { kind: "cmd", id: "c'1", tag: "a", value: 2.5, origin: "rest", actor: strings[3]!, tenant: "t1", ts: 6, expiresAt: 100 },
      { kind: "event", type: "x", source: "plc", ts: 8, data: { nested: [1, "two", { three: strings[0] }] } },
    ];
    const plain = (fs: Frame[]) => fs.filter((f) => !(f.kind === "data" && typeof f.value === "number" && (!Number.isFinite(f.value) || Object.is(f.value, -0))));
    const small = plain(frames());
    const withSpecial = frames();
    // small: JSON lines; then with NaN/-0/Infinity (refused by batchJsonLines, appender); then padded past JSON_LINES_MAX_FRAMES (appender)
    await log.append(structuredClone(small));
    await log.append(structuredClone(withSpecial));
    const pad: Frame[] = Array.from({ length: JSON_LINES_MAX_FRAMES + 1 }, (_, i) => ({ kind: "data", tag: "pad", value: i, ts: 9, quality: 0, source: "s" }));
    await log.append([...structuredClone(small), ...pad]);
    const conn = await log.connect();
    try {
      const rows = async (from: number, n: number) =>
        (await conn.runAndReadAll(`SELECT kind, ts, tag, vtype, num::VARCHAR, str, quality, source, body FROM log WHERE "offset" BETWEEN ${from} AND ${from + n - 1} ORDER BY "offset"`)).getRows();
      const viaJson = await rows(1, small.length);
      const viaAppender = await rows(small.length + withSpecial.length + 1, small.length);
      expect(viaJson).toEqual(viaAppender);
      expect(viaJson.length).toBe(small.length);
    } finally {
      conn.closeSync();
    }
    const back: Frame[] = [];
    for await (const f of log.read({ from: 1, to: small.length + withSpecial.length })) {
      const { offset: _o, loggedAt: _l, ...rest } = f;
      back.push(rest as Frame);
    }
    // UTF-8 has no lone surrogate: both paths store U+FFFD for it (the rows compared equal above)
    const wellFormed = (f: Frame): Frame => (f.kind === "data" && typeof f.value === "string" ? { ...f, value: f.value.toWellFormed(), source: f.source.toWellFormed() } : f);
    expect(back.slice(0, small.length)).toEqual(small.map(wellFormed));
    const special = back.slice(small.length).filter((f) => f.kind === "data" && f.tag.startsWith("n")) as DataFrame[];
    expect(special.map((f) => f.value)).toEqual([Number.NaN, -0, Number.POSITIVE_INFINITY]);
    await log.close();
  });

  it("prepares the JSON lines insert with a type for every parameter (an untyped one is planned again at every commit)", async () => {
    const instance = await DuckDBInstance.create(":memory:");
    const conn = await instance.connect();
    try {
      await conn.run(LOG_DDL);
      const ins = await conn.prepare(JSON_LINES_INSERT);
      const types = Array.from({ length: ins.parameterCount }, (_, i) => [ins.parameterName(i + 1), ins.parameterTypeId(i + 1)]);
      expect(types.map(([name]) => name).sort()).toEqual(["at", "first", "rows"]);
      // DuckDBTypeId.INVALID (0): the type is left to the bound value, and DuckDB binds and plans again
      for (const [name, type] of types) expect({ name, type }).not.toEqual({ name, type: 0 });
    } finally {
      conn.closeSync();
      instance.closeSync();
    }
  });

  it("writes a small batch the JSON insert refused through the appender, gapless, and counts it", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 1, tailFrames: 0 });
    const injected = failSmallInserts(log, 1);
    const frames = (n: number, from: number): Frame[] => Array.from({ length: n }, (_, i) => ({ kind: "data", tag: "t", value: from + i, ts: from + i, quality: 0, source: "s" }));
    expect(await log.append(frames(5, 1))).toEqual({ first: 1, last: 5 });
    expect(await log.append(frames(5, 6))).toEqual({ first: 6, last: 10 });
    expect(injected.thrown).toBe(1);
    expect(log.health().smallInsertFallbacks).toBe(1);
    const values: unknown[] = [];
    for await (const f of log.read({ from: 1 })) values.push((f as DataFrame).value);
    expect(values).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    await log.close();
  });

  it("resumes a cursor exactly after its last handled offset, across a restart", async () => {
    let log = await EventLog.open({ path, maxDelayMs: 1 });
    await log.append(frames(0, 100));
    let handled = 0;
    for await (const f of log.read({ from: log.cursor("uplink") + 1 })) {
      if (f.offset > 40) break;
      handled = f.offset;
    }
    await log.commitCursor("uplink", handled);
    await log.close();
    log = await EventLog.open({ path, maxDelayMs: 1 });
    expect(log.cursor("uplink")).toBe(40);
    const next = await log.read({ from: log.cursor("uplink") + 1 }).next();
    expect(next.value?.offset).toBe(41);
    expect(log.cursor("never-seen")).toBe(0);
    await log.close();
  });

  it("commits a cursor atomically with the frames appended with it", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 1 });
    await log.append(frames(0, 5));
    const r = await log.append([frame(99, "ack")], { cursor: { name: "executor", offset: 5 } });
    expect(r).toEqual({ first: 6, last: 6 });
    expect(log.cursor("executor")).toBe(5);
    await log.close();
  });

  it("replays old frames from the database in bounded pages, then the recent ones from memory", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 1, tailFrames: 100 });
    await log.append(frames(0, 1000));
    const pages: number[] = [];
    let expected = 1;
    for await (const page of log.pages({ from: 1, pageSize: 64 })) {
      expect(page.length).toBeLessThanOrEqual(64);
      for (const f of page) expect(f.offset).toBe(expected++);
      pages.push(page.length);
    }
    expect(expected).toBe(1001);
    expect(pages.length).toBeGreaterThanOrEqual(Math.ceil(1000 / 64));
    await log.close();
  });

  it("reads an empty range of the database as no frames (a kind filter that matches nothing)", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 1, tailFrames: 0 });
    await log.append(frames(0, 5));
    expect(await Array.fromAsync(log.read({ from: 1, kinds: ["ack"] }))).toEqual([]);
    await log.close();
  });

  it("gives a tail and a replay the same whole-microsecond timestamp", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 1, tailFrames: 10 });
    await log.append([{ ...frame(1), ts: 1_700_000_000_000_000.7 }]);
    const [fromMemory] = await Array.fromAsync(log.read({ from: 1 }));
    await log.close();
    const again = await EventLog.open({ path, tailFrames: 0 });
    const [fromDb] = await Array.fromAsync(again.read({ from: 1 }));
    expect(fromMemory!.ts).toBe(1_700_000_000_000_000);
    expect(fromDb!.ts).toBe(fromMemory!.ts);
    await again.close();
  });

  it("filters by frame kind when reading", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 1, tailFrames: 0 });
    await log.append([...frames(0, 5), { kind: "cmd", id: "x", tag: "a", value: 1, origin: "rest", actor: "a", tenant: "t", ts: 1, expiresAt: 2 }, ...frames(5, 5)]);
    const kinds = [];
    for await (const f of log.read({ from: 1, kinds: ["cmd"] })) kinds.push([f.kind, f.offset]);
    expect(kinds).toEqual([["cmd", 6]]);
    await log.close();
  });

  it("follows the live tail after the replay, seeing only committed frames, without gap or duplicate", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 5, tailFrames: 50 });
    await log.append(frames(0, 200));
    const ac = new AbortController();
    const seen: number[] = [];
    const reader = (async () => {
      for await (const page of log.follow({ from: 1, signal: ac.signal, pageSize: 30 })) {
        for (const f of page) {
          expect(f.offset).toBeLessThanOrEqual(log.head); // never ahead of what is committed
          seen.push(f.offset);
        }
        if (seen.length >= 700) ac.abort();
      }
    })();
    for (let i = 0; i < 10; i++) await log.append(frames(200 + i * 50, 50));
    await reader;
    expect(seen).toEqual(Array.from({ length: 700 }, (_, i) => i + 1));
    await log.close();
  });

  it("pauses producers above the high-water mark and resumes them below the low-water mark", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 50, batchSize: 100_000, highWater: 100, lowWater: 10 });
    const events: string[] = [];
    log.on("pause", () => events.push("pause"));
    log.on("resume", () => events.push("resume"));
    const p = log.append(frames(0, 150));
    expect(log.isPaused).toBe(true);
    let resumed = false;
    const w = log.waitForCapacity().then(() => (resumed = true));
    expect(resumed).toBe(false);
    await p;
    await w;
    expect(resumed).toBe(true);
    expect(log.isPaused).toBe(false);
    expect(events).toEqual(["pause", "resume"]);
    await log.close();
  });

  it("flushes pending frames on close and refuses appends afterwards", async () => {
    const log = await EventLog.open({ path, maxDelayMs: 10_000, batchSize: 100_000 });
    const p = log.append(frames(0, 7));
    await log.close();
    expect(await p).toEqual({ first: 1, last: 7 });
    expect(log.append(frames(7, 1))).rejects.toThrow("closed");
    const again = await EventLog.open({ path });
    expect(again.head).toBe(7);
    await again.close();
  });
});
