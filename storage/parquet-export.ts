// Query results as Parquet files. The user's SQL runs where it always runs (the sandboxed query engine,
// storage/query.ts, with its gate, slots, time limit and result budget); its DuckDB chunks are then
// appended, types and microseconds intact, to a table of a SEPARATE in-memory DuckDB instance that this
// file owns, which writes it with `COPY ... TO '<file>' (FORMAT parquet)` into a temp folder of its own.
// No user text ever runs on that instance: the table's column names and types (user-chosen through
// aliases, struct fields, enum values) are quoted here, never taken as SQL from anywhere else, and the
// file name is chosen here. The instance is sandboxed too (only its temp folder, locked configuration),
// as a second wall.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { stat, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DuckDBArrayType,
  DuckDBEnumType,
  DuckDBInstance,
  DuckDBListType,
  DuckDBMapType,
  DuckDBStructType,
  DuckDBUnionType,
  type DuckDBConnection,
  type DuckDBType,
} from "@duckdb/node-api";
import { applySandbox, closeQuietly } from "./database.ts";
import { QueryError } from "./errors.ts";
import type { ChunkResult } from "./query.ts";
import { settlesWithin } from "./time.ts";

/** The export instance failed on a result the query engine gave (a type the Parquet writer refuses, memory). */
export class ParquetExportError extends QueryError {
  constructor(cause: unknown) {
    super(`the Parquet file could not be written: ${(cause instanceof Error ? cause.message : String(cause)).split("\n")[0]}`);
    this.name = "ParquetExportError";
  }
}

/** Runs one step on the export instance; its failures are the export's, told apart from the query's. */
async function onExport<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    throw e instanceof QueryError ? e : new ParquetExportError(e);
  }
}

/** A column type Parquet export cannot spell (none known today: a guard against new DuckDB types). */
export class UnsupportedColumnType extends QueryError {
  constructor(column: string, type: string) {
    super(`column '${column}' has type ${type}, which the Parquet download does not support; cast it (e.g. ${column}::VARCHAR)`);
    this.name = "UnsupportedColumnType";
  }
}

/** Parquet's own bytes (footer, page headers, statistics) allowed on top of the result budget. */
const PARQUET_OVERHEAD_BYTES = 1024 * 1024;
/** How long close() waits for exports in progress (closing DuckDB under a running statement crashes it). */
const CLOSE_WAIT_MS = 5000;

const ident = (s: string) => `"${s.replaceAll('"', '""')}"`;
const literal = (s: string) => `'${s.replaceAll("'", "''")}'`;
/** A leaf type's own name (BIGINT, TIMESTAMP WITH TIME ZONE, DECIMAL(18,3), JSON): no user text in it. */
const LEAF = /^[A-Z][A-Z0-9_ ]*(\(\d+,\d+\))?$/;

/** The SQL spelling of a DuckDB type, every user-chosen part (field names, enum values) quoted here. */
export function typeSql(t: DuckDBType, column: string): string {
  if (t instanceof DuckDBListType) return `${typeSql(t.valueType, column)}[]`;
  if (t instanceof DuckDBArrayType) return `${typeSql(t.valueType, column)}[${Math.floor(t.length)}]`;
  if (t instanceof DuckDBStructType) return `STRUCT(${t.entryNames.map((n, i) => `${ident(n)} ${typeSql(t.entryTypes[i]!, column)}`).join(", ")})`;
  if (t instanceof DuckDBMapType) return `MAP(${typeSql(t.keyType, column)}, ${typeSql(t.valueType, column)})`;
  if (t instanceof DuckDBUnionType) return `UNION(${t.memberTags.map((n, i) => `${ident(n)} ${typeSql(t.memberTypes[i]!, column)}`).join(", ")})`;
  if (t instanceof DuckDBEnumType) return `ENUM(${t.values.map(literal).join(", ")})`;
  const name = t.toString();
  if (!LEAF.test(name)) throw new UnsupportedColumnType(column, name);
  return name;
}

/** Column names made unique (`SELECT 1 AS a, 2 AS a` is a valid query but not a valid table). */
function uniqueNames(names: readonly string[]): string[] {
  const seen = new Set<string>();
  return names.map((n) => {
    let name = n || "column";
    for (let k = 1; seen.has(name.toLowerCase()); k++) name = `${n}_${k}`;
    seen.add(name.toLowerCase());
    return name;
  });
}

/** A written Parquet file: where it is (delete it when sent), its size and what it holds. */
export interface ParquetFile {
  path: string;
  bytes: number;
  rows: number;
  truncated: boolean;
}

export interface ParquetExportOptions {
  /**
   * The largest result an export holds (query.maxResultBytes): the export instance's memory_limit is
   * twice that (one table per export in progress, bounded by the query slots), at least 256 MB.
   */
  maxResultBytes?: number;
}

export class ParquetExporter {
  private instance: Promise<DuckDBInstance> | null = null;
  /** the temp folder the files are written to (and the only one the instance may touch) */
  readonly dir: string;
  private closed = false;
  private seq = 0;
  private readonly running = new Set<Promise<unknown>>();

  constructor(private readonly opts: ParquetExportOptions = {}) {
    // a folder of its own, so that the instance's sandbox can allow exactly it
    this.dir = mkdtempSync(join(tmpdir(), "edge-parquet-"));
  }

  /** The instance, made on the first export (most gateways never export). */
  private open(): Promise<DuckDBInstance> {
    this.instance ??= (async () => {
      const instance = await DuckDBInstance.create(":memory:");
      const conn = await instance.connect();
      try {
        // one thread: an export must not take the cores the log writer and the queries need
        const limitMb = Math.max(256, Math.ceil((2 * (this.opts.maxResultBytes ?? 0)) / 1_048_576));
        await applySandbox(conn, { archiveDir: this.dir, threads: 1, memoryLimit: `${limitMb}MB` });
      } finally {
        conn.closeSync();
      }
      return instance;
    })();
    return this.instance;
  }

  /**
   * Reads `result` to its end into a table of the export instance and writes it as a Parquet file. Its
   * rows are bounded by the query's result budget `maxBytes` (as for every format); the file may add
   * Parquet's own overhead, at most PARQUET_OVERHEAD_BYTES. The caller deletes the file.
   */
  async write(result: ChunkResult, maxBytes: number): Promise<ParquetFile> {
    if (this.closed) {
      await release(result);
      throw new QueryError("the Parquet export is stopped");
    }
    const p = this.export(result, maxBytes);
    this.running.add(p);
    try {
      return await p;
    } finally {
      this.running.delete(p);
    }
  }

  private async export(result: ChunkResult, maxBytes: number): Promise<ParquetFile> {
    let conn: DuckDBConnection;
    try {
      conn = await onExport(async () => (await this.open()).connect());
    } catch (e) {
      await release(result);
      throw e;
    }
    const table = `export_${++this.seq}`;
    const path = join(this.dir, `${randomUUID()}.parquet`);
    try {
      const names = uniqueNames(result.columns.map((c) => c.name));
      const cols = result.columns.map((c, i) => `${ident(names[i]!)} ${typeSql(c.duckdbType, c.name)}`);
      await onExport(() => conn.run(`CREATE TABLE ${table} (${cols.join(", ")})`));
      const app = await onExport(() => conn.createAppender(table));
      try {
        // the query's own failures (time limit, budget, cancel) come from the iteration, untouched
        for await (const chunk of result.batches) await onExport(() => app.appendDataChunk(chunk));
        await onExport(() => app.flushSync());
      } finally {
        closeQuietly(app);
      }
      await onExport(() => conn.run(`COPY ${table} TO ${literal(path)} (FORMAT parquet)`));
      const bytes = (await stat(path)).size;
      if (bytes > maxBytes + PARQUET_OVERHEAD_BYTES) throw new QueryError(`the Parquet file is ${bytes} bytes, more than the result budget of ${maxBytes} bytes (query.maxResultBytes)`);
      return { path, bytes, rows: result.rowCount, truncated: result.truncated };
    } catch (e) {
      await release(result);
      await unlink(path).catch(() => undefined);
      throw e;
    } finally {
      await dropQuietly(conn, table);
      conn.closeSync();
    }
  }

  /** The file as a stream that deletes it when read to the end, failed or cancelled. */
  static stream(path: string): ReadableStream<Uint8Array> {
    const reader = Bun.file(path).stream().getReader();
    let gone = false;
    const remove = () => {
      if (gone) return;
      gone = true;
      void unlink(path).catch(() => undefined);
    };
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const n = await reader.read();
          if (n.done) {
            remove();
            controller.close();
          } else controller.enqueue(n.value);
        } catch (e) {
          remove();
          controller.error(e);
        }
      },
      async cancel() {
        remove();
        await reader.cancel().catch(() => undefined);
      },
    });
  }

  /** Closes the instance and removes the temp folder (and any file a stalled download still held). */
  async close(): Promise<void> {
    this.closed = true;
    const settled = await settlesWithin(Promise.allSettled([...this.running]), CLOSE_WAIT_MS);
    const instance = await this.instance?.catch(() => null);
    // an export still inside DuckDB: the instance is left to the process's end rather than crash it
    if (instance && settled) closeQuietly(instance);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Lets a query's slot and connection go when its chunks will not be read (the export failed first): a
 * generator that never started would not run its cleanup on return(), so it is started and stopped.
 */
async function release(result: ChunkResult): Promise<void> {
  try {
    for await (const _ of result.batches) break;
  } catch {
    // the query failed as well: its slot went back with the failure
  }
}

async function dropQuietly(conn: DuckDBConnection, table: string): Promise<void> {
  try {
    await conn.run(`DROP TABLE IF EXISTS ${table}`);
  } catch {
    // the instance is going away (close) or out of memory: the table goes with it
  }
}
