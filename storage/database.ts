// Opening the log's DuckDB instance (sandbox, tables, appender), shared by the first open and by the
// reopen after DuckDB invalidated the instance, and telling apart the commit failures that can pass
// (the disk is full, the instance was invalidated) from those that cannot (a bad batch).
import { mkdirSync } from "node:fs";
import { resolve, sep } from "node:path";
import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection, type DuckDBPreparedStatement } from "@duckdb/node-api";
import { LOG_DDL, JSON_LINES_INSERT } from "./codec.ts";

export interface SandboxOptions {
  /** the only directory the database may read or write besides its own file (the Parquet archive) */
  archiveDir: string;
  /** DuckDB memory_limit, e.g. "512MB"; a query past it fails instead of starving the process */
  memoryLimit?: string;
  /** DuckDB worker threads; fewer leaves a core for ingest on a small machine */
  threads?: number;
}

/** The writer's handles on one DuckDB instance. */
export interface Database {
  instance: DuckDBInstance;
  conn: DuckDBConnection;
  appender: DuckDBAppender;
  /** codec.ts JSON_LINES_INSERT, prepared on the writer's connection */
  smallInsert: DuckDBPreparedStatement;
}

/**
 * The instance-level wall of the SQL sandbox (the others are the parse-tree gate, storage/sql-gate.ts, and the plan check, storage/sql-plan.ts; see storage/README.md). The order
 * matters: allowed_directories before external access is turned off, lock_configuration last.
 */
export async function applySandbox(conn: DuckDBConnection, sb: SandboxOptions): Promise<void> {
  const dir = resolve(sb.archiveDir);
  mkdirSync(dir, { recursive: true });
  const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
  await conn.run(`SET allowed_directories=[${quote(dir + sep)}]`);
  await conn.run(`SET enable_external_access=false`);
  if (sb.memoryLimit) await conn.run(`SET memory_limit=${quote(sb.memoryLimit)}`);
  if (sb.threads) await conn.run(`SET threads=${Math.max(1, Math.floor(sb.threads))}`);
  await conn.run(`SET lock_configuration=true`);
}

/** Opens (or creates) the log database at `path`; the instance is closed again if any step fails. */
export async function openDatabase(path: string, sandbox?: SandboxOptions): Promise<Database> {
  const instance = await DuckDBInstance.create(path);
  let conn: DuckDBConnection | null = null;
  try {
    conn = await instance.connect();
    if (sandbox) await applySandbox(conn, sandbox);
    await conn.run(LOG_DDL);
    await conn.run(`CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)`);
    await conn.run(`CREATE TABLE IF NOT EXISTS cursors (name VARCHAR PRIMARY KEY, "offset" BIGINT NOT NULL, updated_at BIGINT NOT NULL)`);
    return { instance, conn, appender: await conn.createAppender("log"), smallInsert: await conn.prepare(JSON_LINES_INSERT) };
  } catch (e) {
    conn?.closeSync();
    instance.closeSync();
    throw e;
  }
}

/**
 * The offset of the last committed frame in the database `db` ("" for the connection's own): the
 * highest offset in the log table, or, when retention moved every row out, the highest archived one.
 * Offsets are gapless and increase, and retention archives only committed rows (and records how far
 * in `meta.archived` in the transaction that deletes them), so this is exact without a head row
 * written by every commit (that UPDATE was a third of a small commit's CPU, measured). A `meta.head`
 * row, which earlier versions kept, still counts.
 */
export async function readHead(conn: DuckDBConnection, db = ""): Promise<number> {
  const p = db ? `${db}.main.` : "";
  const r = await conn.runAndReadAll(
    `SELECT greatest((SELECT coalesce(max("offset"), 0) FROM ${p}log), (SELECT coalesce(max(value), 0) FROM ${p}meta WHERE key IN ('head', 'archived')))`,
  );
  return Number(r.getRows()[0]![0]);
}

/** Closes every handle, ignoring errors (an invalidated instance may refuse to flush). */
export function closeDatabase(db: Database): void {
  for (const h of [db.appender, db.conn, db.instance]) closeQuietly(h);
}

/** Closes a handle of a possibly invalidated instance: it is dropped either way. */
export function closeQuietly(h: { closeSync(): void } | null | undefined): void {
  try {
    h?.closeSync();
  } catch {
    // nothing more can be done with a broken handle; the next open starts clean
  }
}

/**
 * A failure of the storage rather than of the batch: the same frames can commit once it passes.
 * Seen with a full disk (DuckDB 1.5): `IO Error: Could not write file ...: No space left on device`,
 * then `FATAL Error: Transaction COMMIT succeeded and is durable, but the autocheckpoint failed`, then
 * `database has been invalidated` for every later statement.
 */
export function isStorageFailure(err: unknown): boolean {
  return /No space left|IO Error|FATAL|invalidated|Could not write|Disk quota|Read-only file system/i.test(messageOf(err));
}

/** DuckDB refuses every statement until the instance is closed and opened again. */
export function needsReopen(err: unknown): boolean {
  return /FATAL|invalidated|Reopen the database/i.test(messageOf(err));
}

/** The first line of an error's message (DuckDB appends the original error on later lines). */
export function firstLine(err: unknown): string {
  return messageOf(err).split("\n")[0]!;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
