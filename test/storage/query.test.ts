// The SQL read path: documented views, correct aggregates, and every escape refused with a clear
// error while the file system stays untouched (the statement check and DuckDB's own sandbox).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EventLog, QueryEngine, QueryRefused, QueryError, QueryTimeout } from "../../storage/index.ts";
import type { Frame } from "../../schemas/index.ts";
import { tempDir } from "../helpers/index.ts";

/** 2024-01-01T00:00:00Z in µs: the known data starts here. */
export const T0 = Date.UTC(2024, 0, 1) * 1000;

/** Tag a: 0..599 once a second (10 minutes); tag b: 1 then 3 alternating; one command, ack and event. */
export function knownFrames(): Frame[] {
  const out: Frame[] = [];
  for (let i = 0; i < 600; i++) {
    out.push({ kind: "data", tag: "a", value: i, ts: T0 + i * 1_000_000, quality: 0, source: "sim" });
    out.push({ kind: "data", tag: "b", value: i % 2 ? 3 : 1, ts: T0 + i * 1_000_000, quality: 0, source: "sim" });
  }
  out.push({ kind: "data", tag: "big", value: 9007199254740993n, ts: T0, quality: 0, source: "sim" });
  out.push({ kind: "data", tag: "flag", value: true, ts: T0, quality: 0x80000000, source: "sim" });
  out.push({ kind: "cmd", id: "c1", tag: "a", value: 5, origin: "rest", actor: "alice", tenant: "t1", ts: T0, expiresAt: T0 + 60_000_000 });
  out.push({ kind: "ack", cmd: "c1", tag: "a", ok: true, status: "ok", code: "ok", ts: T0 + 1000, source: "sim" });
  out.push({ kind: "event", type: "driver.state", source: "sim", ts: T0, data: { state: "Active" } });
  return out;
}

const tags = [
  { tag: "a", driver: "sim", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "t1" },
  { tag: "b", driver: "sim", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "t2" },
] as const;

let tmp: ReturnType<typeof tempDir>;
let log: EventLog;
let q: QueryEngine;

beforeAll(async () => {
  tmp = tempDir();
  log = await EventLog.open({ path: join(tmp.path, "log.duckdb"), sandbox: { archiveDir: join(tmp.path, "archive") } });
  await log.append(knownFrames());
  q = new QueryEngine(log, { archiveDir: join(tmp.path, "archive"), timeoutMs: 5000 });
  await q.start(tags as never);
  writeFileSync(join(tmp.path, "secret.csv"), "x\n42\n");
});

afterAll(async () => {
  await q.stop();
  await log.close();
  tmp.cleanup();
});

describe("views", () => {
  it("returns per-minute averages, minima, maxima and counts that match the known data", async () => {
    const r = await q.all(`SELECT time_bucket(INTERVAL 1 minute, ts) AS t, avg(value), min(value), max(value), count(*)
      FROM data WHERE tag = 'a' GROUP BY t ORDER BY t`);
    expect(r.rows.length).toBe(10);
    r.rows.forEach((row, k) => {
      expect((row[0] as Date).getTime()).toBe(T0 / 1000 + k * 60_000);
      expect(row.slice(1)).toEqual([60 * k + 29.5, 60 * k, 60 * k + 59, 60n]);
    });
  });

  it("keeps 64-bit integers exact and booleans and qualities typed", async () => {
    const r = await q.all(`SELECT tag, value_type, value_int, value_text, value_bool, good FROM data WHERE tag IN ('big', 'flag') ORDER BY tag`);
    expect(r.rows).toEqual([
      ["big", "int64", 9007199254740993n, "9007199254740993", null, true],
      ["flag", "bool", null, null, true, false],
    ]);
  });

  it("shows commands, acks, events and the tag catalog with their fields", async () => {
    expect((await q.all(`SELECT id, tag, value, origin, actor, tenant FROM commands`)).rows).toEqual([["c1", "a", 5, "rest", "alice", "t1"]]);
    expect((await q.all(`SELECT cmd, ok, status FROM acks`)).rows).toEqual([["c1", true, "ok"]]);
    expect((await q.all(`SELECT type, source, data->>'state' FROM events`)).rows).toEqual([["driver.state", "sim", "Active"]]);
    expect((await q.all(`SELECT tag, tenant FROM tags ORDER BY tag`)).rows).toEqual([["a", "t1"], ["b", "t2"]]);
  });

  it("shows a tenant only the frames of its own tags", async () => {
    const r = await q.all(`SELECT DISTINCT tag FROM frames ORDER BY tag`, { tenant: "t2" });
    expect(r.rows).toEqual([["b"]]);
    expect((await q.all(`SELECT tag FROM tags`, { tenant: "t1" })).rows).toEqual([["a"]]);
  });

  it("shows a tag list only those tags in every view, hides tagless rows, and shows nothing for an empty list", async () => {
    for (const v of ["frames", "data", "commands", "acks", "events", "tags", "frames_all", "data_all"]) {
      const r = await q.all(`SELECT DISTINCT tag FROM ${v} ORDER BY tag NULLS FIRST`, { tags: ["b", "big"] });
      expect(r.rows).toEqual(v === "tags" ? [["b"]] : v === "commands" || v === "acks" || v === "events" ? [] : [["b"], ["big"]]);
    }
    // with a tenant too, both apply: t1 owns only `a`
    expect((await q.all(`SELECT DISTINCT tag FROM frames`, { tenant: "t1", tags: ["a", "b"] })).rows).toEqual([["a"]]);
    expect((await q.all(`SELECT count(*) FROM frames`, { tags: [] })).rows).toEqual([[0n]]);
    // the connection-local list is out of the query's reach
    await expect(q.all(`SELECT * FROM reader_tags`, { tags: ["a"] })).rejects.toThrow(QueryRefused);
    await expect(q.all(`WITH reader_tags AS (SELECT 'b' AS tag) SELECT count(*) FROM data`, { tags: ["a"] })).rejects.toThrow(QueryRefused);
  });

  it("cuts a result at the row limit and says so", async () => {
    const r = await q.all(`SELECT * FROM data`, { maxRows: 100 });
    expect(r.rows.length).toBe(100);
    expect(r.truncated).toBe(true);
    const exact = await q.all(`SELECT * FROM data WHERE tag = 'a' LIMIT 50`, { maxRows: 50 });
    expect(exact.truncated).toBe(false);
  });
});

describe("sandbox", () => {
  const outside = (p: string) => p.replace("TMP", tmp.path);
  const escapes: [string, string, RegExp][] = [
    ["read_csv of /etc/passwd", `SELECT * FROM read_csv('/etc/passwd')`, /read_csv/],
    ["read_csv_auto of a file beside the database", `SELECT * FROM read_csv_auto('TMP/secret.csv')`, /read_csv_auto/],
    ["read_parquet outside the archive", `SELECT * FROM read_parquet('/etc/passwd')`, /read_parquet/],
    ["a file path as a table", `SELECT * FROM 'TMP/secret.csv'`, /secret\.csv/],
    ["glob", `SELECT * FROM glob('/etc/*')`, /glob/],
    ["the raw log table", `SELECT * FROM log`, /unknown table 'log'/],
    ["a qualified name", `SELECT * FROM main.meta`, /qualified/],
    ["a CTE shadowing an internal table", `SELECT * FROM (WITH log AS (SELECT 1) SELECT * FROM log), log`, /CTE/],
    ["query() with inner SQL", `SELECT * FROM query('SELECT * FROM log')`, /query\(\)/],
    ["COPY to a file", `COPY (SELECT 1) TO 'TMP/out.csv'`, /SELECT/],
    ["ATTACH", `ATTACH 'TMP/other.duckdb' AS o`, /SELECT/],
    ["INSTALL", `INSTALL httpfs`, /SELECT/],
    ["LOAD", `LOAD httpfs`, /SELECT/],
    ["SET", `SET enable_external_access = true`, /SELECT/],
    ["PRAGMA", `PRAGMA database_list`, /SELECT/],
    ["EXPORT DATABASE", `EXPORT DATABASE 'TMP/export'`, /SELECT/],
    ["CALL", `CALL pragma_version()`, /SELECT/],
    ["two statements", `SELECT 1; SELECT 2`, /exactly one statement is accepted, got 2/],
    ["a SELECT then a SET", `SELECT 1; SET threads = 8`, /exactly one statement/],
    ["DELETE", `DELETE FROM data`, /SELECT/],
    ["UPDATE", `UPDATE log SET num = 0`, /SELECT/],
    ["CREATE", `CREATE TABLE x AS SELECT 1`, /SELECT/],
    ["DROP", `DROP VIEW data`, /SELECT/],
    ["DESCRIBE of a hidden table", `DESCRIBE log`, /SELECT|not accepted/],
  ];
  for (const [what, sql, reason] of escapes) {
    it(`refuses ${what} with a clear error and touches no file`, async () => {
      const before = readdirSync(tmp.path).sort();
      const err = await q.all(outside(sql)).then(
        () => null,
        (e) => e as Error,
      );
      expect(err).toBeInstanceOf(QueryRefused);
      expect(err!.message).toMatch(reason);
      expect(readdirSync(tmp.path).sort()).toEqual(before);
    });
  }

  it("refuses in DuckDB itself even without the statement check (the second wall)", async () => {
    const conn = await log.connect();
    try {
      await expect(conn.run(`SELECT * FROM read_csv('/etc/passwd')`)).rejects.toThrow(/disabled by configuration/);
      await expect(conn.run(`COPY (SELECT 1) TO '${tmp.path}/out.csv'`)).rejects.toThrow(/disabled by configuration/);
      await expect(conn.run(`SET enable_external_access = true`)).rejects.toThrow(/lock/i);
      expect(existsSync(join(tmp.path, "out.csv"))).toBe(false);
    } finally {
      conn.closeSync();
    }
  });

  it("lets the writer keep committing and COPY to Parquet inside the archive folder", async () => {
    const c = await log.append([{ kind: "data", tag: "a", value: 1, ts: T0, quality: 0, source: "sim" }]);
    expect(c.last).toBe(log.head);
    const conn = await log.connect();
    try {
      await conn.run(`COPY (SELECT 1 AS x) TO '${tmp.path}/archive/probe.parquet' (FORMAT parquet)`);
      expect(existsSync(join(tmp.path, "archive", "probe.parquet"))).toBe(true);
    } finally {
      conn.closeSync();
    }
  });

  it("reports a syntax error as a bad query, not a crash", async () => {
    await expect(q.all(`SELEC 1`)).rejects.toBeInstanceOf(QueryError);
    await expect(q.all(`SELECT nope FROM data`)).rejects.toThrow(/nope/);
  });

  it("interrupts a query past its time limit, then answers the next one", async () => {
    const started = performance.now();
    const err = await q.all(`SELECT count(*) FROM range(100000000000) a`, { timeoutMs: 300 }).catch((e) => e);
    expect(err).toBeInstanceOf(QueryTimeout);
    expect(performance.now() - started).toBeLessThan(5000);
    expect((await q.all(`SELECT count(*) FROM data WHERE tag = 'a'`)).rows).toEqual([[601n]]);
  });

  it("interrupts a streaming query past its time limit instead of ending it as if complete", async () => {
    const r = await q.run(`SELECT a.range FROM range(1000000000) a`, { timeoutMs: 300, maxRows: 1_000_000_000 });
    const err = await (async () => {
      for await (const _ of r.batches) await Bun.sleep(1);
    })().catch((e) => e);
    expect(err).toBeInstanceOf(QueryTimeout);
  });
});
