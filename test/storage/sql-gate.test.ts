// The SQL gate (storage/sql-gate.ts): names resolved per scope as DuckDB does, the function allow-list
// taken from the instance, and the plan check that holds on its own when the walk is wrong (simulated
// by switching the walk off): no file, system function, internal table or foreign tenant's row.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { EventLog, QueryEngine, QueryRefused } from "../../storage/index.ts";
import { Retention } from "../../storage/retention.ts";
import { SqlGate } from "../../storage/sql-gate.ts";
import type { Frame } from "../../schemas/index.ts";
import { tempDir } from "../helpers/index.ts";

const T0 = Date.UTC(2024, 0, 1) * 1000;
const TWO_TENANTS = [
  { tag: "a", driver: "sim", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "acme" },
  { tag: "foreign", driver: "sim", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "other" },
] as const;

describe("name resolution by scope", () => {
  let conn: DuckDBConnection;
  let gate: SqlGate;
  beforeAll(async () => {
    conn = await (await DuckDBInstance.create(":memory:")).connect();
    await conn.run(`CREATE TABLE log (tag VARCHAR)`);
    gate = await SqlGate.fromInstance(conn);
  });
  const walk = async (sql: string) => {
    const r = await conn.runAndReadAll(`SELECT json_serialize_sql($1::VARCHAR)`, [sql]);
    gate.checkTree(JSON.parse(String(r.getRows()[0]![0])).statements);
  };

  it.each([
    ["a CTE in its WITH's own query", `WITH x AS (SELECT 1) SELECT * FROM x`],
    ["an earlier CTE in a later one", `WITH x AS (SELECT 1), y AS (SELECT * FROM x) SELECT * FROM y`],
    ["a recursive CTE in itself", `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r`],
    ["an outer CTE in a subquery", `WITH x AS (SELECT 1 AS a) SELECT (SELECT max(a) FROM x), * FROM (SELECT * FROM x) s WHERE a IN (SELECT a FROM x)`],
    ["an outer CTE in a nested WITH", `WITH x AS (SELECT 1 AS a) SELECT * FROM (WITH y AS (SELECT * FROM x) SELECT * FROM y) s`],
    ["a set operation's CTE on both sides", `WITH x AS (SELECT 1) SELECT * FROM x UNION ALL SELECT * FROM x`],
    ["an outer CTE in a LATERAL", `WITH x AS (SELECT 1 AS a) SELECT * FROM data, LATERAL (SELECT * FROM x) l`],
    ["a CTE named like a view", `WITH data AS (SELECT * FROM frames) SELECT * FROM data`],
    ["the documented views and generators", `SELECT * FROM frames_all, data_all, tags, commands, acks, events, range(3), generate_series(1, 2), unnest([1])`],
  ])("accepts %s", async (_, sql) => {
    await walk(sql);
  });

  it.each([
    ["a derived table's CTE outside it (issue #17)", `SELECT * FROM (WITH "f.parquet" AS (SELECT 1) SELECT 1) a, "f.parquet" b`],
    ["a later CTE in an earlier one", `WITH x AS (SELECT * FROM y), y AS (SELECT 1) SELECT * FROM x`],
    ["a non-recursive CTE in itself", `WITH x AS (SELECT * FROM x) SELECT * FROM x`],
    ["one side's CTE on the other side", `(WITH x AS (SELECT 1) SELECT * FROM x) UNION ALL (SELECT * FROM x)`],
    ["a scalar subquery's CTE outside it", `SELECT (WITH x AS (SELECT 1) SELECT 1), * FROM x`],
    ["a nested CTE outside its WITH", `WITH a AS (WITH x AS (SELECT 1) SELECT 1) SELECT * FROM a, x`],
    ["a CTE named like an internal table", `WITH log AS (SELECT 1) SELECT * FROM log`],
    ["a qualified view", `SELECT * FROM main.data`],
    ["a table function outside the list", `SELECT * FROM read_parquet('x')`],
    ["a qualified table function", `SELECT * FROM main.range(3)`],
    ["a settings function", `SELECT current_setting('threads')`],
    ["a catalog macro", `SELECT pg_get_viewdef('frames')`],
    ["SQL in a string that DuckDB plans", `SELECT json_serialize_plan('SELECT 1')`],
  ])("refuses %s", async (_, sql) => {
    await expect(walk(sql)).rejects.toThrow(QueryRefused);
  });

  it("allows the instance's pure functions and no function of a denied family", async () => {
    for (const f of ["avg", "sum", "time_bucket", "date_trunc", "json_extract_string", "regexp_matches", "list_transform", "+", "~~", "row_number", "lag", "current_date"]) {
      await walk(`SELECT ${f === "+" ? "1 + 1" : f === "~~" ? "'a' LIKE 'a'" : `${f}`}`).catch((e) => {
        if (e instanceof QueryRefused) throw new Error(`${f} refused: ${e.message}`);
      });
    }
    const r = await conn.runAndReadAll(`SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_name SIMILAR TO '(duckdb_|pragma_|current_setting|getvariable|read_|glob|pg_get).*'`);
    expect(r.getRows().length).toBeGreaterThan(5);
    for (const [name] of r.getRows()) await expect(walk(`SELECT "${String(name)}"()`)).rejects.toThrow(QueryRefused);
  });
});

describe("plan check without the walk (a walk mistake cannot read another tenant's rows)", () => {
  let tmp: ReturnType<typeof tempDir>;
  let log: EventLog;
  let q: QueryEngine;
  let archive: string;
  const checkTree = SqlGate.prototype.checkTree;
  const acme = { tenant: "acme" } as const;

  beforeAll(async () => {
    tmp = tempDir();
    archive = join(tmp.path, "archive");
    log = await EventLog.open({ path: join(tmp.path, "log.duckdb"), sandbox: { archiveDir: archive }, maxDelayMs: 1 });
    q = new QueryEngine(log, { archiveDir: archive });
    await q.start(TWO_TENANTS);
    const frames = (t0: number): Frame[] =>
      Array.from({ length: 50 }, (_, i) => [
        { kind: "data" as const, tag: "a", value: i, ts: t0 + i, quality: 0, source: "sim" },
        { kind: "data" as const, tag: "foreign", value: -1, ts: t0 + i, quality: 0, source: "sim" },
      ]).flat();
    await log.append(frames(T0));
    await new Retention(log, archive, { maxAgeHours: 0, maxFrames: 1, archive: true, chunkFrames: 1000 }).run();
    await log.append(frames(T0 + 86_400_000_000));
    await q.refreshArchive();
    // the walk accepts everything from here on: only the plan check stands
    SqlGate.prototype.checkTree = () => undefined;
  });
  afterAll(async () => {
    SqlGate.prototype.checkTree = checkTree;
    await q.stop();
    await log.close();
    tmp.cleanup();
  });

  it.each([
    ["the issue #17 bypass", () => `SELECT tag, count(*) FROM (WITH "${archive}/**/*.parquet" AS (SELECT 1) SELECT 1) a, "${archive}/**/*.parquet" b GROUP BY ALL`],
    ["the archive's own glob as a table name", () => `SELECT * FROM "${archive}/day=*/*.parquet"`],
    ["read_parquet of the archive", () => `SELECT * FROM read_parquet('${archive}/day=*/*.parquet', hive_partitioning = false)`],
    ["the hot table", () => `SELECT * FROM log`],
    ["the unscoped view", () => `SELECT * FROM "log".main.data`],
    ["the unscoped archive view", () => `SELECT * FROM "log".main.frames_all`],
    ["the catalog", () => `SELECT * FROM tag_catalog`],
    ["the cursors", () => `SELECT * FROM cursors`],
    ["a system view", () => `SELECT * FROM duckdb_views`],
    ["sqlite_master", () => `SELECT * FROM sqlite_master`],
    ["a settings table function", () => `SELECT * FROM duckdb_settings()`],
    ["a text file", () => `SELECT * FROM read_text('${archive}/../log.duckdb')`],
    ["a glob", () => `SELECT * FROM glob('${archive}/**')`],
    ["a scoped view next to the hot table", () => `SELECT * FROM data UNION ALL SELECT "offset", NULL, ts, tag, NULL, num, NULL, NULL, NULL, quality, NULL, source, NULL, "offset" FROM log`],
    ["a forged scope filter that lets every row through", () => `SELECT * FROM log WHERE tag IN (SELECT tag FROM tag_catalog WHERE tenant = 'acme') OR true`],
  ])("refuses %s for a tenant-scoped reader", async (_, sql) => {
    await expect(q.all(sql(), acme)).rejects.toThrow(QueryRefused);
    await expect(q.all(sql(), { ...acme, tags: ["a"] })).rejects.toThrow(QueryRefused);
  });

  it("accepts analysts' queries with both layers on (no false refusal)", async () => {
    const queries = [
      `SELECT time_bucket(INTERVAL '1 minute', ts) AS t, avg(value), min(value), max(value) FROM data GROUP BY t ORDER BY t`,
      `SELECT tag, value, lag(value) OVER (PARTITION BY tag ORDER BY ts) AS prev, row_number() OVER w FROM data WINDOW w AS (ORDER BY ts) QUALIFY prev IS NOT NULL`,
      `SELECT tag, approx_quantile(value, 0.5), quantile_cont(value, [0.1, 0.9]), histogram(quality), string_agg(tag, ',' ORDER BY ts), list(value ORDER BY ts)[1:3] FROM data_all GROUP BY ALL`,
      `SELECT unnest([1, 2, 3]) AS x, unnest(generate_series(1, 3))`,
      `SELECT [x * 2 FOR x IN [1, 2, 3] IF x > 1], struct_extract({'a': 1}, 'a'), MAP {'k': 1}['k'], list_transform([1], lambda x: x + 1)`,
      `SELECT COLUMNS('value.*') FROM data LIMIT 1`,
      `SELECT tag, count(*) FROM data GROUP BY GROUPING SETS ((tag), ())`,
      `SELECT * FROM data a ASOF JOIN data_all b ON a.tag = b.tag AND a.ts >= b.ts LIMIT 5`,
      `PIVOT data ON quality IN (0) USING avg(value) GROUP BY tag`,
      `UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b INTO NAME k VALUE v`,
      `SELECT * FROM range(TIMESTAMP '2024-01-01', TIMESTAMP '2024-01-02', INTERVAL 1 HOUR) r(t) LEFT JOIN data ON date_trunc('hour', data.ts) = r.t`,
      `WITH x AS MATERIALIZED (SELECT * FROM data) SELECT count(*) FROM x a, x b WHERE a."offset" = b."offset"`,
      `SELECT strftime(ts, '%Y'), epoch_ms(ts), ts::DATE, extract('hour' FROM ts), try_cast(value AS INT), hash(tag), json_extract_string(body, '$.x') FROM frames_all LIMIT 3`,
      `SELECT * FROM commands c JOIN acks a ON a.cmd = c.id`,
      `SELECT count(*) FILTER (WHERE good), arg_max(value, ts), mode(tag), bool_and(good) FROM data`,
      `SELECT DISTINCT ON (tag) tag, value FROM data ORDER BY tag, ts DESC`,
      `SELECT * FROM (VALUES (1, 'a'), (2, 'b')) v(n, t) NATURAL JOIN (SELECT 'a' AS t) w`,
      `SELECT * FROM data EXCEPT SELECT * FROM data WHERE value > 10 INTERSECT SELECT * FROM data`,
      `SELECT uuid(), random(), current_date, today(), now()`,
      // correlated subqueries: decorrelated plans keep the scope filters where the views put them
      `SELECT (SELECT count(*) FROM data x WHERE x.tag = d.tag) FROM data d`,
      `SELECT * FROM data d WHERE EXISTS (SELECT 1 FROM frames_all f WHERE f."offset" = d."offset" + 2)`,
      `SELECT * FROM tags t, LATERAL (SELECT max(value) FROM data d WHERE d.tag = t.tag) m`,
    ];
    SqlGate.prototype.checkTree = checkTree;
    try {
      for (const sql of queries) for (const ro of [acme, { ...acme, tags: ["a"] }, {}]) await q.all(sql, ro).catch((e) => Promise.reject(new Error(`${sql}: ${e}`)));
    } finally {
      SqlGate.prototype.checkTree = () => undefined;
    }
  });

  it("still answers the tenant's own rows through the views, hot and archived", async () => {
    expect((await q.all(`SELECT tag, count(*) FROM data_all GROUP BY tag`, acme)).rows).toEqual([["a", 100n]]);
    expect((await q.all(`WITH x AS (SELECT * FROM frames_all) SELECT count(*) FROM x, (SELECT 1) y WHERE x.tag IN (SELECT tag FROM tags)`, acme)).rows).toEqual([[100n]]);
    expect((await q.all(`SELECT count(*) FROM data_all`, { ...acme, tags: [] })).rows).toEqual([[0n]]);
    // an unscoped reader (no tenants configured) may read every row through the views
    expect((await q.all(`SELECT count(*) FROM data_all`)).rows).toEqual([[200n]]);
  });
});
