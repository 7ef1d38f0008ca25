// Adversarial SQL through the real route (POST /api/query on a real gateway with JWT auth): two tenants
// with hot and archived (Parquet) rows, a planted secret inside and outside the archive folder. Every
// escape attempt must answer a 4xx JSON error (never 200 or 500), read no secret and write no file;
// allowed queries used in tricky ways must never return a row of the other tenant.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { Frame } from "../../schemas/index.ts";
import { archiveDirOf, historyOf } from "../../server/history.ts";
import { Retention } from "../../storage/retention.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { HS_SECRET, token } from "./commands-fixture.ts";

const T0 = Date.UTC(2024, 0, 1) * 1000;
/** the other tenant's tag and value: neither may appear in an answer to acme */
const FOREIGN_TAG = "zz_foreign_tag";
const FOREIGN_VALUE = 7777777.5;
const SECRET = "PLANTED-SECRET-4f1c9b";
const HOT_PER_TAG = 100;
const PAST = new Date("2020-01-01T00:00:00Z");
const ARCHIVED_PER_TAG = 200;

let g: TestGateway;
let archive: string;
let secretIn: string;
let secretOut: string;
const headers: Record<"acmeTenant" | "noTags", Record<string, string>> = { acmeTenant: {}, noTags: {} };
let filesBefore: string[];

const files = {
  "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nquery: { timeoutMs: 5000 }\n`,
  "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
  "variables.yml": `tags:
  - { tag: a, driver: sim, type: float64, tenant: acme }
  - { tag: ${FOREIGN_TAG}, driver: sim, type: float64, tenant: other }
`,
};

/** Every file under the test's directory except DuckDB's own (the writer may touch those). */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(`${relative(dir, p)} ${statSync(p).size}`);
    }
  };
  walk(dir);
  return out.filter((f) => !/log\.duckdb/.test(f)).sort();
}

async function post(sql: string, h: Record<string, string>) {
  const r = await fetch(`${g.url}/api/query`, { method: "POST", headers: { "content-type": "application/json", ...h }, body: JSON.stringify({ sql }) });
  return { status: r.status, text: await r.text() };
}

beforeAll(async () => {
  g = await startGateway(files);
  const dataDir = g.gw.ctx.config.gateway.dataDir;
  archive = archiveDirOf(dataDir);
  headers.acmeTenant = { authorization: `Bearer ${await token(null, { claims: { scope: "read", tenant: "acme" } })}` };
  headers.noTags = { authorization: `Bearer ${await token(null, { claims: { scope: "read", tenant: "acme", tags: [] } })}` };
  const frames = (n: number, t0: number): Frame[] =>
    Array.from({ length: n }, (_, i) => [
      { kind: "data" as const, tag: "a", value: i, ts: t0 + i * 1_000_000, quality: 0, source: "sim" },
      { kind: "data" as const, tag: FOREIGN_TAG, value: FOREIGN_VALUE, ts: t0 + i * 1_000_000, quality: 0, source: "sim" },
    ]).flat();
  await g.gw.ctx.log.append(frames(ARCHIVED_PER_TAG, T0));
  await new Retention(g.gw.ctx.log, archive, { maxAgeHours: 0, maxFrames: 1, archive: true, chunkFrames: 1000 }).run();
  await g.gw.ctx.log.append(frames(HOT_PER_TAG, T0 + 86_400_000_000));
  await historyOf(g.gw.ctx)!.engine.refreshArchive();
  secretIn = join(archive, "planted.csv");
  secretOut = join(g.dir, "secret.txt");
  mkdirSync(archive, { recursive: true });
  writeFileSync(secretIn, `secret\n${SECRET}\n`);
  writeFileSync(secretOut, `${SECRET}\n`);
  // an access time older than the file: with relatime (the default mount) any read moves it
  for (const f of [secretIn, secretOut]) utimesSync(f, PAST, statSync(f).mtime);
  filesBefore = listFiles(g.dir);
});
afterAll(async () => g.stop());

/** The placeholders of the cases, filled once the gateway's temp paths exist. */
const fill = (sql: string) =>
  sql.replaceAll("$G", `${archive}/**/*.parquet`).replaceAll("$D", `${archive}/day=*/*.parquet`).replaceAll("$A", archive).replaceAll("$IN", secretIn).replaceAll("$OUT", secretOut);
const G = "$G";
const D = "$D";
const archivePh = "$A";
const secretInPh = "$IN";
const secretOutPh = "$OUT";

/** Escape attempts: [name, sql]; `$G`/`$D` are globs of the archive folder `$A`, `$IN`/`$OUT` the planted secrets. */
function attacks(): [string, string][] {
  const paths: [string, string][] = [["archive glob", G], ["archive day glob", D], ["secret in archive", secretInPh], ["secret outside", secretOutPh], ["/etc/passwd", "/etc/passwd"]];
  const cases: [string, string][] = [
    // the CTE-scope bypass of issue #17 and its relatives: a CTE name used where that CTE is not visible
    ["issue #17 bypass: CTE in a derived table, same name in FROM", `SELECT tag, count(*) FROM (WITH "${G}" AS (SELECT 1) SELECT 1) a, "${G}" b GROUP BY ALL`],
    ["CTE in a scalar subquery, name in FROM", `SELECT (WITH "${G}" AS (SELECT 1) SELECT 1) x, * FROM "${G}"`],
    ["CTE in an IN-subquery, name in FROM", `SELECT * FROM "${G}" WHERE 1 IN (WITH "${G}" AS (SELECT 1) SELECT 1)`],
    ["CTE in an EXISTS, name in FROM", `SELECT * FROM "${G}" WHERE EXISTS (WITH "${G}" AS (SELECT 1) SELECT 1)`],
    ["CTE on one side of a UNION, name on the other", `(WITH "${G}" AS (SELECT 1) SELECT 1) UNION ALL (SELECT count(*) FROM "${G}")`],
    ["later CTE name used by an earlier CTE", `WITH x AS (SELECT * FROM "${G}"), "${G}" AS (SELECT 1) SELECT * FROM x`],
    ["later CTE name used by an earlier CTE (RECURSIVE)", `WITH RECURSIVE x AS (SELECT * FROM "${G}"), "${G}" AS (SELECT 1) SELECT * FROM x`],
    ["CTE in a LATERAL subquery, name in FROM", `SELECT * FROM (SELECT 1) x, LATERAL (WITH "${G}" AS (SELECT 1) SELECT 1) y, "${G}" z`],
    ["CTE nested in a CTE body, name at the top", `WITH x AS (WITH "${G}" AS (SELECT 1) SELECT 1) SELECT * FROM x, "${G}"`],
    ["CTE in ORDER BY subquery, name in FROM", `SELECT * FROM "${G}" ORDER BY (WITH "${G}" AS (SELECT 1) SELECT 1)`],
    ["CTE in HAVING subquery, name in FROM", `SELECT count(*) FROM "${G}" HAVING count(*) > (WITH "${G}" AS (SELECT 1) SELECT 1)`],
    ["CTE in a table function argument, name in FROM", `SELECT * FROM range((WITH "${G}" AS (SELECT 1) SELECT 1)), "${G}"`],
    ["non-recursive CTE referring to its own name", `WITH "${G}" AS (SELECT * FROM "${G}") SELECT * FROM "${G}"`],
    ["CTE in a derived table, sqlite_master outside", `SELECT * FROM (WITH sqlite_master AS (SELECT 1) SELECT 1) a, sqlite_master`],
    ["CTE in a derived table, duckdb_views outside", `SELECT * FROM (WITH duckdb_views AS (SELECT 1) SELECT 1) a, duckdb_views`],
    ["CTE in a derived table, duckdb_databases outside", `SELECT * FROM (WITH duckdb_databases AS (SELECT 1) SELECT 1) a, duckdb_databases`],
    ["CTE in a derived table, duckdb_settings outside", `SELECT * FROM (WITH duckdb_settings AS (SELECT 1) SELECT 1) a, duckdb_settings`],
    ["CTE in a derived table, log outside", `SELECT * FROM (WITH log AS (SELECT 1) SELECT 1) a, log`],
    ["CTE in a derived table, tag_catalog outside", `SELECT * FROM (WITH data AS (SELECT 1) SELECT 1) a, tag_catalog`],
    ["CTE named like the scope table", `WITH reader_tags AS (SELECT '${FOREIGN_TAG}' AS tag) SELECT * FROM data`],
    ["CTE named like the catalog table", `WITH tag_catalog AS (SELECT '${FOREIGN_TAG}' AS tag, 'acme' AS tenant) SELECT * FROM data`],
    ["CTE named like the hot table", `WITH log AS (SELECT 1) SELECT * FROM frames`],
  ];
  // file paths as table names in every position
  for (const [label, p] of paths) {
    const q = `"${p}"`;
    cases.push(
      [`${label}: FROM quoted`, `SELECT * FROM ${q}`],
      [`${label}: FROM string literal`, `SELECT * FROM '${p}'`],
      [`${label}: FROM-first`, `FROM ${q}`],
      [`${label}: JOIN`, `SELECT * FROM data JOIN ${q} f ON true`],
      [`${label}: derived table`, `SELECT * FROM (SELECT * FROM ${q}) s`],
      [`${label}: CTE body`, `WITH x AS (SELECT * FROM ${q}) SELECT * FROM x`],
      [`${label}: UNION side`, `SELECT tag FROM data UNION ALL SELECT * FROM ${q}`],
      [`${label}: EXCEPT side`, `SELECT 1 EXCEPT SELECT 1 FROM ${q}`],
      [`${label}: LATERAL`, `SELECT * FROM data, LATERAL (SELECT * FROM ${q}) l`],
      [`${label}: scalar subquery`, `SELECT (SELECT count(*) FROM ${q})`],
      [`${label}: IN-subquery`, `SELECT * FROM data WHERE tag IN (SELECT * FROM ${q})`],
      [`${label}: VALUES`, `SELECT * FROM (VALUES ((SELECT count(*) FROM ${q}))) v(n)`],
      [`${label}: table function argument`, `SELECT * FROM range((SELECT count(*) FROM ${q}))`],
    );
  }
  cases.push(
    ["archive glob: PIVOT source", `PIVOT "${G}" ON tag USING count(*)`],
    ["archive glob: window subquery", `SELECT sum(x) OVER (ORDER BY (SELECT count(*) FROM "${G}")) FROM (SELECT 1 x)`],
    // file and catalog table functions
    ["read_parquet", `SELECT * FROM read_parquet('${D}')`],
    ["read_csv of the planted secret", `SELECT * FROM read_csv('${secretInPh}')`],
    ["read_csv_auto", `SELECT * FROM read_csv_auto('${secretOutPh}')`],
    ["read_text", `SELECT * FROM read_text('${secretOutPh}')`],
    ["read_blob", `SELECT * FROM read_blob('${secretInPh}')`],
    ["read_json", `SELECT * FROM read_json('${secretInPh}')`],
    ["glob", `SELECT * FROM glob('${archivePh}/**')`],
    ["parquet_metadata", `SELECT * FROM parquet_metadata('${D}')`],
    ["parquet_schema", `SELECT * FROM parquet_schema('${D}')`],
    ["sniff_csv", `SELECT * FROM sniff_csv('${secretInPh}')`],
    ["query() dynamic SQL", `SELECT * FROM query('SELECT * FROM log')`],
    ["query_table()", `SELECT * FROM query_table('log')`],
    ["duckdb_settings()", `SELECT * FROM duckdb_settings()`],
    ["duckdb_functions()", `SELECT * FROM duckdb_functions()`],
    ["duckdb_secrets()", `SELECT * FROM duckdb_secrets()`],
    ["duckdb_databases()", `SELECT * FROM duckdb_databases()`],
    ["pragma_database_list", `SELECT * FROM pragma_database_list`],
    ["pragma_table_info()", `SELECT * FROM pragma_table_info('log')`],
    ["which_secret()", `SELECT * FROM which_secret('${G}', 'local')`],
    ["read_parquet in a scalar subquery", `SELECT (SELECT count(*) FROM read_parquet('${D}'))`],
    ["read_csv inside range()", `SELECT * FROM range((SELECT count(*) FROM read_csv('${secretInPh}')))`],
    // settings, paths and the catalog through scalar functions
    ["current_setting allowed_directories", `SELECT current_setting('allowed_directories')`],
    ["current_setting in WHERE", `SELECT 1 WHERE current_setting('temp_directory') IS NOT NULL`],
    ["getvariable", `SELECT getvariable('x')`],
    ["current_database", `SELECT current_database()`],
    ["current_schema", `SELECT current_schema()`],
    ["current_query", `SELECT current_query()`],
    ["version", `SELECT version()`],
    ["pg_get_viewdef of an archive view", `SELECT pg_get_viewdef('frames_all')`],
    ["col_description", `SELECT col_description(1, 1)`],
    ["has_table_privilege", `SELECT has_table_privilege('log', 'select')`],
    ["json_serialize_plan binds a string", `SELECT json_serialize_plan('SELECT * FROM "${G}"')`],
    ["nextval", `SELECT nextval('s')`],
    ["txid_current", `SELECT txid_current()`],
    ["getenv", `SELECT getenv('HOME')`],
    ["function qualified with the log's catalog", `SELECT "log".main.abs(1)`],
    ["function qualified with the temp catalog", `SELECT temp.main.abs(1)`],
    ["system-qualified current_setting", `SELECT system.main.current_setting('allowed_directories')`],
    ["current_setting inside a lambda", `SELECT list_transform([1], x -> current_setting('allowed_directories'))`],
    // internal tables, system views, qualified names
    ["hot table", `SELECT * FROM log`],
    ["meta", `SELECT * FROM meta`],
    ["cursors", `SELECT * FROM cursors`],
    ["tag_catalog", `SELECT * FROM tag_catalog`],
    ["reader_tags", `SELECT * FROM reader_tags`],
    ["log_all", `SELECT * FROM log_all`],
    ["main.log", `SELECT * FROM main.log`],
    ["catalog-qualified log", `SELECT * FROM "log".main.log`],
    ["main.data (unscoped view)", `SELECT * FROM main.data`],
    ["temp.main.reader_tags", `SELECT * FROM temp.main.reader_tags`],
    ["sqlite_master", `SELECT * FROM sqlite_master`],
    ["duckdb_views view", `SELECT * FROM duckdb_views`],
    ["information_schema.tables", `SELECT * FROM information_schema.tables`],
    ["pg_catalog.pg_class", `SELECT * FROM pg_catalog.pg_class`],
    ["system.main.duckdb_settings", `SELECT * FROM system.main.duckdb_settings()`],
    ["time travel AT", `SELECT * FROM data AT (VERSION => 1)`],
    // statements other than one SELECT
    ["SET", `SET enable_external_access = true`],
    ["RESET", `RESET allowed_directories`],
    ["COPY TO", `COPY (SELECT * FROM data) TO '${archivePh}/out.csv'`],
    ["COPY FROM", `COPY data FROM '${secretInPh}'`],
    ["ATTACH", `ATTACH '${archivePh}/x.duckdb' AS x`],
    ["INSTALL", `INSTALL httpfs`],
    ["LOAD", `LOAD httpfs`],
    ["PRAGMA", `PRAGMA database_list`],
    ["CALL", `CALL duckdb_settings()`],
    ["EXPORT DATABASE", `EXPORT DATABASE '${archivePh}/dump'`],
    ["CREATE TABLE AS", `CREATE TABLE x AS SELECT * FROM data`],
    ["CREATE VIEW over a file", `CREATE TEMP VIEW x AS SELECT * FROM '${D}'`],
    ["INSERT", `INSERT INTO tag_catalog VALUES ('a', 'sim', 'float64', null, null, 'read', 'other')`],
    ["DESCRIBE", `DESCRIBE log`],
    ["SHOW TABLES", `SHOW TABLES`],
    ["SUMMARIZE", `SUMMARIZE log`],
    ["EXPLAIN", `EXPLAIN SELECT * FROM data`],
    ["two statements", `SELECT 1; SELECT * FROM log`],
    ["CHECKPOINT", `CHECKPOINT`],
    ["USE", `USE system`],
    ["PREPARE", `PREPARE p AS SELECT * FROM log`],
  );
  return cases;
}

describe("POST /api/query refuses escapes", () => {
  for (const who of ["acmeTenant", "noTags"] as const) {
    describe(`with a ${who === "noTags" ? "tags: [] token" : "tenant-scoped token"}`, () => {
      for (const [name, template] of attacks()) {
        it(`refuses ${name} with a 4xx JSON error and no secret`, async () => {
          const sql = fill(template);
          const r = await post(sql, headers[who]);
          const where = `${name}: ${sql} -> ${r.status} ${r.text.slice(0, 300)}`;
          expect(r.status >= 400 && r.status < 500, where).toBe(true);
          expect(JSON.parse(r.text).error, where).toBeString();
          expect(r.text, where).not.toContain(SECRET);
          expect(r.text, where).not.toContain(FOREIGN_TAG);
        });
      }
    });
  }

  it("has at least 100 cases, and none wrote or removed a file or read a planted secret", () => {
    expect(attacks().length).toBeGreaterThanOrEqual(100);
    expect(listFiles(g.dir)).toEqual(filesBefore);
    for (const f of [secretIn, secretOut]) expect(statSync(f).atime.getTime(), f).toBe(PAST.getTime());
  });
});

describe("POST /api/query never shows a foreign row", () => {
  const tricky = [
    `SELECT * FROM frames_all`,
    `SELECT * FROM data_all`,
    `SELECT * FROM frames`,
    `SELECT * FROM tags`,
    `SELECT * FROM commands UNION ALL BY NAME SELECT * FROM acks`,
    `SELECT * FROM events`,
    `WITH data AS (SELECT * FROM data_all) SELECT * FROM data`,
    `WITH frames_all AS (SELECT * FROM frames_all WHERE true) SELECT * FROM frames_all`,
    `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r, data_all`,
    `SELECT * FROM (WITH x AS (SELECT * FROM frames_all) SELECT * FROM x) a FULL JOIN data_all b USING ("offset")`,
    `SELECT * FROM data_all a, LATERAL (SELECT * FROM frames_all f WHERE f."offset" = a."offset") l`,
    `SELECT (SELECT list(tag) FROM frames_all), (SELECT max(value) FROM data_all)`,
    `SELECT * FROM data_all WHERE tag NOT IN (SELECT 'a') OR value = ${FOREIGN_VALUE}`,
    `SELECT * FROM (PIVOT data_all ON quality IN (0) USING count(*) GROUP BY tag)`,
    `SELECT tag, count(*) FROM frames_all GROUP BY ALL`,
  ];
  for (const sql of tricky) {
    it(`answers only the tenant's rows: ${sql}`, async () => {
      const r = await post(sql, headers.acmeTenant);
      expect(r.status, r.text.slice(0, 300)).toBe(200);
      expect(r.text).not.toContain(FOREIGN_TAG);
      expect(r.text).not.toContain(String(FOREIGN_VALUE));
      const none = await post(sql, headers.noTags);
      expect(none.status).toBe(200);
      expect(none.text).not.toContain(FOREIGN_TAG);
      expect(none.text).not.toContain(String(FOREIGN_VALUE));
    });
  }

  it("counts exactly the tenant's archived and hot rows (so the archive is really read)", async () => {
    const r = await post(`SELECT tag, count(*) FROM data_all GROUP BY tag`, headers.acmeTenant);
    expect(JSON.parse(r.text).rows).toEqual([["a", ARCHIVED_PER_TAG + HOT_PER_TAG]]);
    const none = await post(`SELECT count(*) FROM data_all`, headers.noTags);
    expect(JSON.parse(none.text).rows).toEqual([[0]]);
  });
});
