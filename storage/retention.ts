// Retention: old frames leave the hot table by age and/or count. With archiving on, each range is
// first written as Parquet files partitioned by day (<archiveDir>/day=YYYY-MM-DD/o<first>-<last>_<n>.parquet),
// its row count read back and compared, and only then deleted from the hot table, in the transaction
// that moves meta.archived. Offsets are never reused: the head is the higher of max(offset) and meta.archived (database.ts readHead).
import { EventEmitter } from "node:events";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import type { EventLog } from "./log.ts";
import { archiveFiles } from "./views.ts";

export interface RetentionPolicy {
  /** frames committed longer ago than this leave the hot table (0: no age limit) */
  maxAgeHours: number;
  /** at most this many frames stay in the hot table (0: no count limit) */
  maxFrames: number;
  /** write Parquet before deleting (false: frames past the policy are dropped) */
  archive: boolean;
  /** frames per Parquet write and delete transaction: bounds memory and shows progress */
  chunkFrames: number;
}

export interface RetentionRun {
  /** first and last offset that left the hot table in this run (first > last: none) */
  first: number;
  last: number;
  frames: number;
  files: number;
  durationMs: number;
}

/** Emitted per chunk: `progress` { first, last, frames, done, total }. */
export class Retention extends EventEmitter {
  private readonly archiveDir: string;
  private running: Promise<RetentionRun> | null = null;

  constructor(
    private readonly log: EventLog,
    archiveDir: string,
    private readonly policy: RetentionPolicy,
  ) {
    super();
    this.archiveDir = resolve(archiveDir);
  }

  get isRunning(): boolean {
    return this.running !== null;
  }

  /** Runs the policy once (a second call while one runs joins it). */
  run(nowMs = Date.now()): Promise<RetentionRun> {
    this.running ??= this.runOnce(nowMs).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async runOnce(nowMs: number): Promise<RetentionRun> {
    const started = performance.now();
    const conn = await this.log.connect();
    try {
      const archived = await metaValue(conn, "archived");
      if (this.policy.archive) this.removeOrphans(archived);
      const upto = await this.cutoff(conn, nowMs);
      const run: RetentionRun = { first: archived + 1, last: archived, frames: 0, files: 0, durationMs: 0 };
      const total = Math.max(0, upto - archived);
      for (let a = archived + 1; a <= upto; a += this.policy.chunkFrames) {
        const b = Math.min(upto, a + this.policy.chunkFrames - 1);
        const { frames, files } = await this.moveRange(conn, a, b);
        run.last = b;
        run.frames += frames;
        run.files += files;
        this.emit("progress", { first: a, last: b, frames, done: b - archived, total });
      }
      run.durationMs = performance.now() - started;
      return run;
    } finally {
      conn.closeSync();
    }
  }

  /** Highest offset the policy sends out of the hot table (offsets grow with commit time). */
  private async cutoff(conn: DuckDBConnection, nowMs: number): Promise<number> {
    let upto = 0;
    const head = this.log.head;
    if (this.policy.maxFrames > 0) upto = Math.max(upto, head - this.policy.maxFrames);
    if (this.policy.maxAgeHours > 0) {
      const before = BigInt(Math.floor((nowMs - this.policy.maxAgeHours * 3_600_000) * 1000));
      const r = await conn.runAndReadAll(`SELECT coalesce(max("offset"), 0) FROM log WHERE logged_at < $1`, [before]);
      upto = Math.max(upto, Number(r.getRows()[0]![0]));
    }
    return Math.min(upto, head);
  }

  private async moveRange(conn: DuckDBConnection, a: number, b: number): Promise<{ frames: number; files: number }> {
    const count = Number((await conn.runAndReadAll(`SELECT count(*) FROM log WHERE "offset" BETWEEN ${a} AND ${b}`)).getRows()[0]![0]);
    let files: string[] = [];
    if (this.policy.archive && count > 0) files = await this.writeParquet(conn, a, b, count);
    await conn.run("BEGIN TRANSACTION");
    try {
      await conn.run(`DELETE FROM log WHERE "offset" BETWEEN ${a} AND ${b}`);
      await conn.run(`INSERT OR REPLACE INTO meta VALUES ('archived', ${b})`);
      await conn.run("COMMIT");
    } catch (e) {
      await conn.run("ROLLBACK").catch(() => undefined);
      // files of a range not deleted are orphans: the next run removes them before writing again
      throw e;
    }
    return { frames: count, files: files.length };
  }

  /** COPY to a staging folder, verify the row count from the files, then move them into place. */
  private async writeParquet(conn: DuckDBConnection, a: number, b: number, expected: number): Promise<string[]> {
    const staging = join(this.archiveDir, ".staging", `o${a}-${b}`);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(join(this.archiveDir, ".staging"), { recursive: true });
    await conn.run(
      `COPY (SELECT "offset", kind, ts, tag, vtype, num, str, quality, source, body, logged_at,
               strftime(make_timestamp(ts), '%Y-%m-%d') AS day
             FROM log WHERE "offset" BETWEEN ${a} AND ${b} ORDER BY "offset")
       TO '${staging}' (FORMAT parquet, PARTITION_BY (day), FILENAME_PATTERN 'o${a}-${b}_{i}')`,
    );
    const written = Number(
      (await conn.runAndReadAll(`SELECT count(*) FROM read_parquet('${join(staging, "*", "*.parquet")}', hive_partitioning = false)`)).getRows()[0]![0],
    );
    if (written !== expected) {
      rmSync(staging, { recursive: true, force: true });
      throw new Error(`archive of offsets ${a}..${b}: ${written} rows read back from Parquet, ${expected} expected; nothing deleted`);
    }
    const moved: string[] = [];
    for (const day of readdirSync(staging)) {
      mkdirSync(join(this.archiveDir, day), { recursive: true });
      for (const f of readdirSync(join(staging, day))) {
        const to = join(this.archiveDir, day, f);
        renameSync(join(staging, day, f), to);
        moved.push(to);
      }
    }
    rmSync(staging, { recursive: true, force: true });
    return moved;
  }

  /** Files of a run that wrote Parquet but did not commit its delete (a crash between the two). */
  private removeOrphans(archived: number): void {
    rmSync(join(this.archiveDir, ".staging"), { recursive: true, force: true });
    if (!existsSync(this.archiveDir)) return;
    for (const f of archiveFiles(this.archiveDir)) {
      const m = /^o(\d+)-(\d+)_/.exec(basename(f));
      if (m && Number(m[1]) > archived) rmSync(f);
    }
  }
}

async function metaValue(conn: DuckDBConnection, key: string): Promise<number> {
  const r = await conn.runAndReadAll(`SELECT value FROM meta WHERE key = $1`, [key]);
  return r.getRows().length ? Number(r.getRows()[0]![0]) : 0;
}
