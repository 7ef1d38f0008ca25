// Online backup of the log while the gateway runs, and its restore into a new data directory.
// Consistency comes from DuckDB, not from pausing anything: `COPY FROM DATABASE` is one statement, so one
// transaction reading one snapshot; commits of the writer and of retention go on beside it. The archive's
// Parquet files are immutable once moved into place (storage/retention.ts), so copying those the
// snapshot counts as archived (`meta.archived`) gives the rest of the same state.
import { copyFileSync, constants, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { readHead } from "./database.ts";
import type { EventLog } from "./log.ts";

export interface BackupResult {
  /** the backup directory: log.duckdb, archive/, backup.json */
  path: string;
  /** last offset in the backup: every frame 1..head is in it (hot table or archive) */
  head: number;
  /** last offset in the archive part */
  archived: number;
  archiveFiles: number;
  bytes: number;
  durationMs: number;
}

export class BackupError extends Error {
  override name = "BackupError";
}

/** The file name restore and the gateway expect inside a data directory. */
const LOG_FILE = "log.duckdb";
/** Archive file names carry their offset range: o<first>-<last>_<i>.parquet (storage/retention.ts). */
const ARCHIVE_NAME = /^o(\d+)-(\d+)_.*\.parquet$/;

/**
 * Writes a consistent copy of the running log to `to` (created; must not exist). `archiveDir` is the
 * log's Parquet archive: the only folder a sandboxed database may write, so the copy is staged there
 * (in `.backup/`) and moved out when complete.
 */
export async function backupLog(log: EventLog, archiveDir: string, to: string): Promise<BackupResult> {
  const started = performance.now();
  const dest = resolve(to);
  if (existsSync(dest)) throw new BackupError(`backup destination ${dest} already exists`);
  const staging = join(resolve(archiveDir), ".backup");
  mkdirSync(staging, { recursive: true });
  const alias = `backup_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const staged = join(staging, `${alias}.duckdb`);
  let head: number;
  let archived: number;
  const conn = await log.connect();
  try {
    const db = String((await conn.runAndReadAll(`SELECT current_database()`)).getRows()[0]![0]);
    await conn.run(`ATTACH '${staged.replaceAll("'", "''")}' AS ${alias}`);
    try {
      await conn.run(`COPY FROM DATABASE "${db.replaceAll('"', '""')}" TO ${alias}`);
      head = await readHead(conn, alias);
      archived = await metaOf(conn, alias, "archived");
    } finally {
      // detaching checkpoints the copy: one self-contained file, no WAL beside it
      await conn.run(`DETACH ${alias}`).catch(() => undefined);
    }
  } catch (e) {
    rmSync(staged, { force: true });
    rmSync(`${staged}.wal`, { force: true });
    throw new BackupError(`backup of ${log.path} failed: ${(e as Error).message.split("\n")[0]}`);
  } finally {
    conn.closeSync();
  }
  mkdirSync(dest, { recursive: true });
  moveFile(staged, join(dest, LOG_FILE));
  const files = archiveFilesUpTo(archiveDir, archived);
  let bytes = statSync(join(dest, LOG_FILE)).size;
  for (const rel of files) {
    mkdirSync(join(dest, "archive", rel.day), { recursive: true });
    const out = join(dest, "archive", rel.day, rel.name);
    // reflink where the filesystem can (instant, no space), a plain copy elsewhere
    copyFileSync(join(archiveDir, rel.day, rel.name), out, constants.COPYFILE_FICLONE);
    bytes += statSync(out).size;
  }
  const result: BackupResult = { path: dest, head, archived, archiveFiles: files.length, bytes, durationMs: Math.round(performance.now() - started) };
  writeFileSync(join(dest, "backup.json"), JSON.stringify({ ...result, createdAt: new Date().toISOString(), source: log.path }, null, 2) + "\n");
  return result;
}

/**
 * Restores a backup into `dataDir` (the gateway stopped, or a new directory): log.duckdb and archive/.
 * Refuses a data directory that already holds a log, so that a restore never overwrites one by mistake.
 */
export function restoreBackup(backupDir: string, dataDir: string): void {
  const from = resolve(backupDir);
  if (!existsSync(join(from, LOG_FILE))) throw new BackupError(`${from} is not a backup: it has no ${LOG_FILE}`);
  const target = resolve(dataDir);
  for (const f of [LOG_FILE, `${LOG_FILE}.wal`]) {
    if (existsSync(join(target, f))) throw new BackupError(`${join(target, f)} exists: restore into an empty data directory (move the old one aside)`);
  }
  mkdirSync(join(target, "archive"), { recursive: true });
  copyFileSync(join(from, LOG_FILE), join(target, LOG_FILE));
  const archive = join(from, "archive");
  if (!existsSync(archive)) return;
  for (const day of readdirSync(archive)) {
    mkdirSync(join(target, "archive", day), { recursive: true });
    for (const name of readdirSync(join(archive, day))) copyFileSync(join(archive, day, name), join(target, "archive", day, name));
  }
}

/** A name for a backup folder from the time: sortable, and valid on every filesystem. */
export function backupName(now = new Date()): string {
  return `backup-${now.toISOString().replace(/[:.]/g, "-")}`;
}

async function metaOf(conn: Awaited<ReturnType<EventLog["connect"]>>, alias: string, key: string): Promise<number> {
  const r = await conn.runAndReadAll(`SELECT value FROM ${alias}.main.meta WHERE key = '${key}'`);
  return r.getRows().length ? Number(r.getRows()[0]![0]) : 0;
}

/** Archive files whose whole range is archived in the snapshot: later ones are not part of it. */
function archiveFilesUpTo(archiveDir: string, archived: number): { day: string; name: string }[] {
  const out: { day: string; name: string }[] = [];
  if (!existsSync(archiveDir)) return out;
  for (const day of readdirSync(archiveDir, { withFileTypes: true })) {
    if (!day.isDirectory() || day.name.startsWith(".")) continue;
    for (const name of readdirSync(join(archiveDir, day.name))) {
      const m = ARCHIVE_NAME.exec(name);
      if (m && Number(m[2]) <= archived) out.push({ day: day.name, name });
    }
  }
  return out;
}

function moveFile(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
    copyFileSync(from, to);
    rmSync(from);
  }
}
