// The documented SQL views over the log (the only names user SQL may read, see storage/README.md):
// typed value columns, TIMESTAMP columns, and `*_all` views that include the Parquet archive.
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { tagSource, type Variable } from "../schemas/config.ts";

/** Views user SQL may name; everything else in the database is hidden from it. */
export const QUERY_VIEWS = ["frames", "data", "commands", "acks", "events", "tags", "frames_all", "data_all", "alarms"] as const;

/** Raw columns of the hot table and of every archive file, in this order. */
const RAW = `"offset", kind, ts, tag, vtype, num, str, quality, source, body, logged_at`;

/**
 * The name of the file-name column the archive views ask read_parquet for: made up per process and
 * never shown (the views project it away). The plan check (storage/sql-gate.ts) accepts a Parquet scan
 * only when it carries this name, i.e. when the engine's own view made it: a file name that slipped
 * through the statement check is a replacement scan, which cannot set it.
 */
export const ARCHIVE_SCAN_MARKER = `__archive_${randomBytes(12).toString("hex")}`;

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

/**
 * Views over a raw row source (`log`, or `log_all` with the archive): one definition for both. Every
 * name inside is qualified with the database's own catalog (`"log".main.`): a tenant's temp views
 * shadow the unqualified names, and inside a temp view even `main.` would resolve to the temp catalog.
 */
function viewsOver(src: string, suffix: string, m: string): string[] {
  // `seq` is the offset under a name that needs no quotes (`offset` is an SQL keyword); it comes last in
  // every view, so that columns read by position (CSV, SELECT *) keep theirs
  const frames = `
CREATE OR REPLACE VIEW ${m}.frames${suffix} AS SELECT
  "offset", CASE kind WHEN 1 THEN 'data' WHEN 2 THEN 'cmd' WHEN 3 THEN 'ack' ELSE 'event' END AS kind,
  make_timestamp(ts) AS ts, ts AS ts_us, tag,
  CASE vtype WHEN 0 THEN 'null' WHEN 1 THEN 'number' WHEN 2 THEN 'bool' WHEN 3 THEN 'int64' ELSE 'string' END AS value_type,
  num AS value, CASE WHEN vtype = 2 THEN num = 1 END AS value_bool, CASE WHEN vtype = 3 THEN TRY_CAST(str AS BIGINT) END AS value_int,
  str AS value_text, quality, quality < 1073741824 AS good, source, body, make_timestamp(logged_at) AS logged_at, "offset" AS seq
FROM ${src}`;
  const data = `
CREATE OR REPLACE VIEW ${m}.data${suffix} AS SELECT "offset", ts, ts_us, tag, value_type, value, value_bool, value_int, value_text, quality, good, source, logged_at, seq
FROM ${m}.frames${suffix} WHERE kind = 'data'`;
  return [frames, data];
}

const staticViews = (m: string) => [
  ...viewsOver(`${m}.log`, "", m),
  `CREATE OR REPLACE VIEW ${m}.commands AS SELECT "offset", ts, ts_us, json_extract_string(body, '$.id') AS id, tag, value_type, value, value_bool, value_int, value_text,
    source AS origin, json_extract_string(body, '$.actor') AS actor, json_extract_string(body, '$.tenant') AS tenant,
    make_timestamp(TRY_CAST(json_extract(body, '$.expiresAt') AS BIGINT)) AS expires_at, logged_at, seq
  FROM ${m}.frames WHERE kind = 'cmd'`,
  `CREATE OR REPLACE VIEW ${m}.acks AS SELECT "offset", ts, ts_us, json_extract_string(body, '$.cmd') AS cmd, tag,
    TRY_CAST(json_extract(body, '$.ok') AS BOOLEAN) AS ok, json_extract_string(body, '$.status') AS status,
    json_extract_string(body, '$.error') AS error, source, logged_at, seq
  FROM ${m}.frames WHERE kind = 'ack'`,
  `CREATE OR REPLACE VIEW ${m}.events AS SELECT "offset", ts, ts_us, json_extract_string(body, '$.type') AS type, source, tag,
    json_extract(body, '$.data') AS data, logged_at, seq
  FROM ${m}.frames WHERE kind = 'event'`,
  // alarm history: one row per transition of the alarm engine (bridges/rules/alarms.ts), its state after it
  `CREATE OR REPLACE VIEW ${m}.alarms AS SELECT "offset", ts, ts_us, type, json_extract_string(data, '$.id') AS id, tag,
    json_extract_string(data, '$.kind') AS kind, json_extract_string(data, '$.priority') AS priority,
    TRY_CAST(json_extract(data, '$.active') AS BOOLEAN) AS active, TRY_CAST(json_extract(data, '$.acked') AS BOOLEAN) AS acked,
    json_extract_string(data, '$.actor') AS actor, json_extract_string(data, '$.message') AS message, json_extract_string(data, '$.reason') AS reason,
    json_extract(data, '$.value') AS value, make_timestamp(TRY_CAST(json_extract(data, '$.shelvedUntil') AS BIGINT)) AS shelved_until,
    make_timestamp(TRY_CAST(json_extract(data, '$.activeSince') AS BIGINT)) AS active_since, logged_at, seq
  FROM ${m}.events WHERE source = 'alarms' AND type LIKE 'alarm.%'`,
  `CREATE OR REPLACE VIEW ${m}.tags AS SELECT tag, driver, type, unit, description, access, tenant FROM ${m}.tag_catalog`,
];

/** `"<database>".main`: the fully qualified schema of the log's tables. */
export async function mainSchema(conn: DuckDBConnection): Promise<string> {
  const r = await conn.runAndReadAll(`SELECT current_database()`);
  return `"${String(r.getRows()[0]![0]).replaceAll('"', '""')}".main`;
}

/** Creates the catalog table and every view (idempotent; called at start by the query engine). */
export async function createViews(conn: DuckDBConnection, archiveDir: string | null): Promise<void> {
  await conn.run(`CREATE TABLE IF NOT EXISTS tag_catalog (tag VARCHAR PRIMARY KEY, driver VARCHAR, type VARCHAR, unit VARCHAR,
    description VARCHAR, access VARCHAR, tenant VARCHAR)`);
  for (const v of staticViews(await mainSchema(conn))) await conn.run(v);
  await refreshArchiveView(conn, archiveDir);
}

/** Archive files: <archiveDir>/day=YYYY-MM-DD/o<first>-<last>_<n>.parquet. */
export function archiveFiles(archiveDir: string): string[] {
  if (!existsSync(archiveDir)) return [];
  const out: string[] = [];
  for (const d of readdirSync(archiveDir)) {
    if (!d.startsWith("day=")) continue;
    for (const f of readdirSync(join(archiveDir, d))) if (f.endsWith(".parquet")) out.push(join(archiveDir, d, f));
  }
  return out;
}

/**
 * (Re)defines `log_all` = archived rows + hot rows, then `frames_all`/`data_all` over it. The archive
 * part keeps only offsets up to meta.archived and the hot part only those after it: while a run has
 * written its Parquet files but not yet deleted the hot rows, no row is seen twice. read_parquet fails
 * on a glob with no file, so without files the archive part is empty.
 */
export async function refreshArchiveView(conn: DuckDBConnection, archiveDir: string | null): Promise<void> {
  const m = await mainSchema(conn);
  const archived = `(SELECT coalesce(max(value), 0) FROM ${m}.meta WHERE key = 'archived')`;
  const hot = `SELECT ${RAW} FROM ${m}.log WHERE "offset" > ${archived}`;
  const dir = archiveDir ? resolve(archiveDir) : null;
  const cold =
    dir && archiveFiles(dir).length
      ? `SELECT ${RAW} FROM read_parquet(${sqlString(join(dir, "day=*", "*.parquet"))}, hive_partitioning = false, filename = ${sqlString(ARCHIVE_SCAN_MARKER)}) WHERE "offset" <= ${archived}`
      : null;
  await conn.run(`CREATE OR REPLACE VIEW ${m}.log_all AS ${cold ? `${cold} UNION ALL ` : ""}${hot}`);
  for (const v of viewsOver(`${m}.log_all`, "_all", m)) await conn.run(v);
}

/** Whether two tag lists give the same rows of the catalog table (the columns fillTagCatalog writes). */
export function sameCatalogRows(a: readonly Variable[], b: readonly Variable[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.tag !== y.tag || tagSource(x) !== tagSource(y) || x.type !== y.type || x.unit !== y.unit || x.description !== y.description || x.access !== y.access || x.tenant !== y.tenant) return false;
  }
  return true;
}

/** Replaces the catalog table with the tags of variables.yml (the `tags` view reads it; its columns are those sameCatalogRows compares). */
export async function fillTagCatalog(conn: DuckDBConnection, tags: readonly Variable[]): Promise<void> {
  await conn.run("BEGIN TRANSACTION");
  try {
    await conn.run("DELETE FROM tag_catalog");
    if (tags.length) {
      const app = await conn.createAppender("tag_catalog");
      for (const t of tags) {
        app.appendVarchar(t.tag);
        app.appendVarchar(tagSource(t));
        app.appendVarchar(t.type);
        if (t.unit === undefined) app.appendNull();
        else app.appendVarchar(t.unit);
        if (t.description === undefined) app.appendNull();
        else app.appendVarchar(t.description);
        app.appendVarchar(t.access);
        app.appendVarchar(t.tenant);
        app.endRow();
      }
      app.flushSync();
      app.closeSync();
    }
    await conn.run("COMMIT");
  } catch (e) {
    await conn.run("ROLLBACK").catch(() => undefined);
    throw e;
  }
}

/** What one reader may see: its tenant's tags and/or an explicit list of tags (null: no restriction of that kind). */
export interface ReadScope {
  tenant: string | null;
  /** the allowed tags, resolved by the caller (e.g. from a token's tag patterns over the catalog) */
  tags: readonly string[] | null;
}

/**
 * The connection-local table of a scope's allowed tags. It lives in the temp catalog, so no other
 * connection sees it, and the views name it fully qualified, so a user CTE cannot shadow it.
 */
export const SCOPE_TAGS = { catalog: "temp", schema: "main", table: "reader_tags" } as const;

/**
 * Temp views (connection-local, they shadow `main`) that show a reader only the tags of its scope.
 * Rows without a tag (operator events) fail `tag IN (...)` and are hidden from any restricted scope.
 * With `scope.tags` set, the caller fills SCOPE_TAGS first (createScopeTagsSql, then an appender).
 */
export function scopedViewsSql(scope: ReadScope, m: string): string[] {
  const conds: string[] = [];
  if (scope.tenant !== null) conds.push(`tag IN (SELECT tag FROM ${m}.tag_catalog WHERE tenant = ${sqlString(scope.tenant)})`);
  if (scope.tags !== null) conds.push(`tag IN (SELECT tag FROM ${SCOPE_TAGS.catalog}.${SCOPE_TAGS.schema}.${SCOPE_TAGS.table})`);
  if (conds.length === 0) return [];
  const where = conds.join(" AND ");
  return QUERY_VIEWS.map((v) => `CREATE OR REPLACE TEMP VIEW ${v} AS SELECT * FROM ${m}.${v} WHERE ${where}`);
}

export const createScopeTagsSql = `CREATE OR REPLACE TEMP TABLE ${SCOPE_TAGS.table} (tag VARCHAR PRIMARY KEY)`;
