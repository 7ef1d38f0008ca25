// POST /api/query as Parquet over a real gateway: the file a fresh DuckDB instance reads back holds the
// query's rows with their column types (microseconds intact), refusals stay refusals, the tenant filter
// and the row limit apply, user-chosen names cannot reach the export instance as SQL, and no temp file
// is left behind (nor by a CSV download large enough to be spooled to a file first).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import type { Frame } from "../../schemas/index.ts";
import { SPOOL_MEMORY_BYTES } from "../../server/api/query-spool.ts";
import { historyOf } from "../../server/history.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { tempDir } from "../helpers/index.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

const T0 = Date.UTC(2024, 0, 1) * 1000;
let g: TestGateway;
let auth: Record<string, string>;
let dir: { path: string; cleanup(): void };
let seq = 0;

const files = {
  "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nquery: { timeoutMs: 20000 }\n`,
  "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
  "variables.yml": `tags:
  - { tag: a, driver: sim, type: float64, tenant: acme }
  - { tag: b, driver: sim, type: float64, tenant: other }
`,
};

async function post(body: unknown, headers: Record<string, string> = auth) {
  return fetch(`${g.url}/api/query`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
}

/** Reads a Parquet answer back with a fresh DuckDB instance: column names and types, and the rows as JSON. */
async function readBack(r: Response): Promise<{ columns: [string, string][]; rows: unknown[][] }> {
  const path = join(dir.path, `answer-${++seq}.parquet`);
  writeFileSync(path, new Uint8Array(await r.arrayBuffer()));
  const instance = await DuckDBInstance.create(":memory:");
  const conn = await instance.connect();
  try {
    const from = `read_parquet('${path}')`;
    const described = await conn.runAndReadAll(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${from})`);
    const rows = await conn.runAndReadAll(`SELECT * FROM ${from}`);
    return { columns: described.getRows() as [string, string][], rows: rows.getRowsJson() as unknown[][] };
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

beforeAll(async () => {
  dir = tempDir();
  g = await startGateway(files);
  auth = { authorization: `Bearer ${await token(null, { claims: { scope: "read", tenant: "acme" } })}` };
  const frames: Frame[] = [];
  for (let i = 0; i < 3000; i++) {
    // 7 µs past the second: Parquet must keep what JS Dates would round away
    frames.push({ kind: "data", tag: "a", value: i + 0.5, ts: T0 + i * 1_000_000 + 7, quality: 0, source: "sim" });
    frames.push({ kind: "data", tag: "b", value: 7, ts: T0 + i * 1_000_000 + 7, quality: 0, source: "sim" });
  }
  await g.gw.ctx.log.append(frames);
});
afterAll(async () => {
  await g.stop();
  dir.cleanup();
});

describe("POST /api/query format=parquet", () => {
  it("returns a Parquet file DuckDB reads back with the same rows, column types and microseconds", async () => {
    const sql = `SELECT "offset", tag, value, ts, ts_us, quality, good, value::DECIMAL(12,3) AS dec, ts::TIMESTAMPTZ AS tz,
      [quality, 1] AS l, {'v': value, 'g': good} AS s FROM data ORDER BY "offset"`;
    const r = await post({ sql, format: "parquet" });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/vnd.apache.parquet");
    expect(r.headers.get("content-disposition")).toMatch(/^attachment; filename="query-[0-9T-]+\.parquet"$/);
    expect(r.headers.get("x-row-count")).toBe("3000");
    expect(r.headers.get("x-truncated")).toBe("false");
    const json = await (await post({ sql, format: "json" })).json();
    const back = await readBack(r);
    // the same names and types as the JSON answer's columns (which DuckDB reports for the query itself;
    // DESCRIBE spells struct fields unquoted)
    expect(back.columns).toEqual(json.columns.map((c: { name: string; type: string }) => [c.name, c.type.replaceAll('"', "")]));
    expect(back.rows.length).toBe(3000);
    // only the token's tenant's tag, in order, every row as the JSON answer has it
    expect(back.rows.map((x) => [Number(x[0]), x[1], x[2], Number(x[4]), x[5], x[6], Number(x[7])])).toEqual(
      json.rows.map((x: unknown[]) => [x[0], x[1], x[2], x[4], x[5], x[6], Number(x[7])]),
    );
    // microseconds intact (a JS Date would have rounded them away)
    expect(back.rows[1]![3]).toBe("2024-01-01 00:00:01.000007");
    expect(Number(back.rows[1]![4])).toBe(T0 + 1_000_007);
    expect(back.rows[0]![9]).toEqual([0, 1]);
    expect(back.rows[0]![10]).toEqual({ v: 0.5, g: true });
  });

  it("answers Parquet to Accept: application/vnd.apache.parquet, an empty result included", async () => {
    const r = await post({ sql: `SELECT tag, value FROM data WHERE value < 0` }, { ...auth, accept: "application/vnd.apache.parquet" });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/vnd.apache.parquet");
    const back = await readBack(r);
    expect(back.columns).toEqual([["tag", "VARCHAR"], ["value", "DOUBLE"]]);
    expect(back.rows).toEqual([]);
  });

  it("keeps refusing what the sandbox refuses, and bad SQL, with the same statuses as JSON", async () => {
    for (const sql of [`SELECT * FROM read_csv('/etc/passwd')`, `COPY (SELECT 1) TO '/tmp/x.parquet' (FORMAT parquet)`, `SELECT 1; SELECT 2`, `SELECT * FROM log`]) {
      const r = await post({ sql, format: "parquet" });
      expect(r.status).toBe(403);
      expect((await r.json()).error).toBe("query_refused");
    }
    const bad = await post({ sql: `SELECT nope FROM data`, format: "parquet" });
    expect(bad.status).toBe(400);
    expect((await bad.json()).message).toContain("nope");
    expect((await post({ sql: "SELECT 1", format: "parquet" }, {})).status).toBe(401);
  });

  it("cuts at the row limit and says so in X-Truncated", async () => {
    const r = await post({ sql: `SELECT * FROM data`, format: "parquet", limit: 10 });
    expect(r.headers.get("x-row-count")).toBe("10");
    expect(r.headers.get("x-truncated")).toBe("true");
    expect((await readBack(r)).rows.length).toBe(10);
  });

  it("keeps user-chosen column names, duplicates and struct fields as data, never as SQL", async () => {
    const sql = `SELECT 1 AS "x"" INTEGER); COPY (SELECT 1) TO '/tmp/pwn.csv'; --", 2 AS a, 3 AS a, {'q'')': 'z'} AS s`;
    const r = await post({ sql, format: "parquet" });
    expect(r.status).toBe(200);
    const back = await readBack(r);
    expect(back.columns.map((c) => c[0])).toEqual([`x" INTEGER); COPY (SELECT 1) TO '/tmp/pwn.csv'; --`, "a", "a_1", "s"]);
    expect(back.rows).toEqual([[1, 2, 3, { "q')": "z" }]]);
  });

  it("writes types Parquet has not as DuckDB's writer maps them, instead of failing", async () => {
    const r = await post({ sql: `SELECT 170141183460469231731687303715884105727::HUGEINT AS h, 'b'::ENUM('a', 'b') AS e, [1, 2]::INTEGER[2] AS arr`, format: "parquet" });
    expect(r.status).toBe(200);
    const back = await readBack(r);
    expect(back.columns).toEqual([["h", "DOUBLE"], ["e", "VARCHAR"], ["arr", "INTEGER[]"]]);
    expect(back.rows).toEqual([[1.7014118346046923e38, "b", [1, 2]]]);
  });

  it("sends a CSV download larger than the memory window whole from a temp file, with its headers, and removes the file", async () => {
    const h = historyOf(g.gw.ctx)!;
    const r = await post({ sql: `SELECT range AS i, repeat('y', 100) AS s FROM range(50000)`, format: "csv" });
    expect(r.status).toBe(200);
    expect({ rows: r.headers.get("x-row-count"), truncated: r.headers.get("x-truncated") }).toEqual({ rows: "50000", truncated: "false" });
    const body = await r.text();
    expect(body.length).toBeGreaterThan(SPOOL_MEMORY_BYTES);
    expect(body.endsWith(`\n49999,${"y".repeat(100)}\n`)).toBe(true);
    for (let i = 0; i < 100 && readdirSync(h.parquet.dir).length > 0; i++) await Bun.sleep(20);
    expect(readdirSync(h.parquet.dir)).toEqual([]);
  });

  it("leaves no temp file behind and gives the query slot back, after a download, a refusal and a client that left", async () => {
    const h = historyOf(g.gw.ctx)!;
    await (await post({ sql: `SELECT * FROM data`, format: "parquet" })).arrayBuffer();
    await post({ sql: `SELECT * FROM log`, format: "parquet" });
    // a client that reads the first bytes and leaves
    const r = await post({ sql: `SELECT * FROM data`, format: "parquet" });
    const reader = r.body!.getReader();
    await reader.read();
    await reader.cancel();
    // the answer is streamed from the file: wait until the cancel reached it
    for (let i = 0; i < 100 && readdirSync(h.parquet.dir).length > 0; i++) await Bun.sleep(20);
    expect(readdirSync(h.parquet.dir)).toEqual([]);
    expect(h.engine.load.running).toBe(0);
  });
});
