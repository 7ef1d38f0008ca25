// The event log: one DuckDB table that is both the write-ahead log and the query store.
// One writer (this class) batches appends into transactions (group commit), assigns offsets,
// and only then hands frames to tails. See storage/README.md for the contract.
import { EventEmitter } from "node:events";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { BIGINT, VARCHAR, type DuckDBConnection } from "@duckdb/node-api";
import type { DataFrame, Frame, FrameKind, Logged } from "../schemas/frames.ts";
import { LogTuning } from "../schemas/config.ts";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { appendFrames, batchJsonLines, columnsToFrames, KIND_CODE, LOG_COLUMNS, LOG_COLUMNS_FAST, rowToFrame, type LogRow } from "./codec.ts";
import { CommitError, FrameError, LogClosedError, LogDegradedError } from "./errors.ts";
import type { ConsumerStatus } from "./consumer.ts";
import { closeDatabase, firstLine, isStorageFailure, needsReopen, openDatabase, readHead, type Database, type SandboxOptions } from "./database.ts";
import { backoffDelay, type BackoffSettings } from "./time.ts";

export interface LogOptions extends Partial<LogTuning> {
  /** path of the DuckDB file; ":memory:" for tests that do not need durability */
  path: string;
  /**
   * Locks the database instance down for user SQL (see storage/README.md, "SQL sandbox"): no file or
   * network access except `archiveDir` (created if missing), bounded memory and threads, and the
   * configuration locked so that no later statement can lift it. DuckDB holds these settings per
   * instance, not per connection, so they are set here, once, by the owner of the instance.
   * Off when absent (tests of the log itself).
   */
  sandbox?: SandboxOptions;
  /** delays between attempts of a commit that failed for a reason that can pass (disk full); default 100 ms doubling to 5 s */
  commitRetry?: BackoffSettings;
}

/** What the log says of itself (readiness, metrics). */
export interface LogHealth {
  head: number;
  queueDepth: number;
  paused: boolean;
  /** true while commits fail for a reason that can pass (disk full, database invalidated): producers are paused */
  degraded: boolean;
  /** the last commit failure, while degraded */
  reason: string | null;
  /** ms since the epoch when the log became degraded */
  degradedSince: number | null;
  /** failed attempts since the last commit that succeeded */
  failedCommits: number;
  /** ms since the epoch of the last commit that succeeded (of the open, before the first) */
  lastCommitAt: number;
  /** how many times the database was closed and opened again to recover */
  reopens: number;
  /** small batches the JSON insert refused (a string DuckDB's JSON reader took amiss) and the appender wrote */
  smallInsertFallbacks: number;
}

/** Emitted as 'recovered' when a commit succeeds after the log was degraded. */
export interface RecoveredEvent {
  /** how long commits failed */
  downMs: number;
  failedCommits: number;
  reopens: number;
}

/**
 * Batches up to this many frames go in as JSON lines (writeBatch): less CPU in all than the appender at
 * every size measured (10 to 2000 frames) and almost none on the event loop; a flood's batches, tens of
 * thousands of frames, keep the appender (one data chunk per 2048 rows, no text to build or parse).
 */
export const JSON_LINES_MAX_FRAMES = 8192;

const DEFAULT_COMMIT_RETRY: BackoffSettings = { initialMs: 100, maxMs: 5000 };

export interface CommitInfo {
  /** first and last offset of the frames of this append (first > last when it appended none) */
  first: number;
  last: number;
}

export interface CommitEvent {
  first: number;
  last: number;
  frames: number;
  /** from the first append of the batch to the end of its commit */
  latencyMs: number;
  /** the transaction alone */
  durationMs: number;
}

export interface ReadOptions {
  /** first offset wanted (offsets start at 1) */
  from: number;
  /** last offset wanted, inclusive; default: the head when each page is read */
  to?: number;
  pageSize?: number;
  kinds?: readonly FrameKind[];
  signal?: AbortSignal;
}

interface Batch {
  frames: Frame[];
  cursors: Map<string, number>;
  waiters: { resolve: (c: CommitInfo) => void; reject: (e: unknown) => void; first: number; count: number }[];
  since: number;
  urgent: boolean;
  /** commit time of the last attempt (a FATAL commit error can follow a durable commit: see reopen) */
  loggedAt: number;
}

const newBatch = (): Batch => ({ frames: [], cursors: new Map(), waiters: [], since: 0, urgent: false, loggedAt: 0 });

/** Why a frame cannot be stored (its ts is not a BIGINT of microseconds, its quality not a uint32), or null. */
function unstorable(f: Frame): string | null {
  if (!Number.isFinite(f.ts) || Math.abs(f.ts) >= 9.2e18) return `ts ${f.ts} is not a timestamp in microseconds`;
  if (f.kind === "data" && !(Number.isInteger(f.quality) && f.quality >= 0 && f.quality <= 0xffffffff)) return `quality ${f.quality} is not a uint32 StatusCode`;
  return null;
}

export class EventLog extends EventEmitter {
  readonly tuning: LogTuning;
  private headOffset = 0;
  private queued = 0;
  private paused = false;
  private closed = false;
  private pending = newBatch();
  private committing: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly cursors = new Map<string, number>();
  private readonly latestByTag = new Map<string, Logged<DataFrame>>();
  private readonly ring: (Logged | undefined)[];
  private ringLow = 1;
  private headWaiters: { offset: number; resolve: () => void }[] = [];
  private resumeWaiters: (() => void)[] = [];
  private readonly consumerSet = new Set<{ readonly name: string; status(): ConsumerStatus }>();
  /** a batch whose commit failed for a reason that can pass: committed before anything newer */
  private retryBatch: Batch | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private reopenNeeded = false;
  private failedCommits = 0;
  private degradedReason: string | null = null;
  private degradedSince: number | null = null;
  private lastCommitAt = Date.now();
  private reopens = 0;
  private smallInsertRefused = 0;

  private constructor(
    readonly path: string,
    private db: Database,
    tuning: LogTuning,
    private readonly opts: LogOptions,
  ) {
    super();
    this.tuning = tuning;
    this.ring = new Array(tuning.tailFrames);
  }

  static async open(opts: LogOptions): Promise<EventLog> {
    const { path, sandbox: _sandbox, commitRetry: _retry, ...rest } = opts;
    const tuning = TypeValue.Default(LogTuning, rest) as LogTuning;
    if (tuning.lowWater >= tuning.highWater) tuning.lowWater = Math.floor(tuning.highWater / 2);
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const log = new EventLog(path, await openDatabase(path, opts.sandbox), tuning, opts);
    await log.recover();
    // with no ring every read goes to the database
    log.ringLow = log.ring.length > 0 ? log.headOffset + 1 : Number.POSITIVE_INFINITY;
    return log;
  }

  /** Reads head, cursors and the latest value per tag from the database (at open and after a reopen). */
  private async recover(): Promise<void> {
    const { conn } = this.db;
    this.headOffset = await readHead(conn);
    for (const [name, offset] of (await conn.runAndReadAll(`SELECT name, "offset" FROM cursors`)).getRows()) {
      this.cursors.set(String(name), Number(offset));
    }
    const latest = await conn.runAndReadAll(
      `SELECT ${LOG_COLUMNS} FROM log WHERE kind = ${KIND_CODE.data}
       QUALIFY row_number() OVER (PARTITION BY tag ORDER BY "offset" DESC) = 1`,
    );
    for (const row of latest.getRows()) {
      const f = rowToFrame(row as unknown as LogRow) as Logged<DataFrame>;
      this.latestByTag.set(f.tag, f);
    }
  }

  /** emit() that a throwing listener cannot turn into a stalled writer */
  private tell(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch {
      // a listener's bug is its own; the writer carries on
    }
  }

  /** Offset of the last committed frame; 0 when the log is empty. */
  get head(): number {
    return this.headOffset;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Commit time (µs) of the frame at `offset` when it is still in memory; undefined otherwise. */
  loggedAtOf(offset: number): number | undefined {
    if (offset < this.ringLow || offset > this.headOffset) return undefined;
    return this.ring[offset % this.ring.length]?.loggedAt;
  }

  /** The running consumers of this log (storage/consumer.ts registers them), for metrics and health. */
  consumers(): ConsumerStatus[] {
    return [...this.consumerSet].map((c) => c.status());
  }

  registerConsumer(c: { readonly name: string; status(): ConsumerStatus }): void {
    this.consumerSet.add(c);
  }

  unregisterConsumer(c: { readonly name: string; status(): ConsumerStatus }): void {
    this.consumerSet.delete(c);
  }

  /** Emits 'consumerError' (name, error): one place where the gateway logs and counts every consumer's failures. */
  tellConsumerError(name: string, err: unknown): boolean {
    const heard = this.listenerCount("consumerError") > 0;
    this.tell("consumerError", name, err);
    return heard;
  }

  /** Frames accepted but not yet committed. */
  get queueDepth(): number {
    return this.queued;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** True while commits fail for a reason that can pass (disk full ...): appends wait, producers are paused. */
  get isDegraded(): boolean {
    return this.degradedReason !== null;
  }

  /**
   * Bumped each time the database is closed and opened again (after DuckDB invalidated it): a
   * connection from `connect()` made under an older generation is dead and must be replaced.
   */
  get generation(): number {
    return this.reopens;
  }

  health(): LogHealth {
    return {
      head: this.headOffset,
      queueDepth: this.queued,
      paused: this.paused,
      degraded: this.degradedReason !== null,
      reason: this.degradedReason,
      degradedSince: this.degradedSince,
      failedCommits: this.failedCommits,
      lastCommitAt: this.lastCommitAt,
      reopens: this.reopens,
      smallInsertFallbacks: this.smallInsertRefused,
    };
  }

  /**
   * Appends frames; resolves when they are committed (durable), with their offsets. The log takes
   * ownership of the frame objects: it adds `offset` and `loggedAt` to them at commit.
   * With `cursor`, the cursor is set in the same transaction as the frames.
   * While the log is degraded, appends wait for the recovery, up to `highWater` queued frames; past
   * that they are refused with LogDegradedError.
   */
  append(frames: readonly Frame[], opts?: { cursor?: { name: string; offset: number }; urgent?: boolean }): Promise<CommitInfo> {
    if (this.closed) return Promise.reject(new LogClosedError());
    if (this.degradedReason !== null && frames.length > 0 && this.queued + frames.length > this.tuning.highWater) {
      return Promise.reject(new LogDegradedError(this.degradedReason));
    }
    // A frame the table cannot store would fail the whole group commit, other producers' frames with it:
    // it is refused here, with this append alone.
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const problem = unstorable(f);
      if (problem) return Promise.reject(new FrameError(`frame ${i} of the append: ${problem}`));
      // the table keeps whole microseconds: a tail (from memory) must show what a replay (from DuckDB) shows
      if (!Number.isInteger(f.ts)) f.ts = Math.trunc(f.ts);
    }
    const b = this.pending;
    if (b.since === 0) b.since = performance.now();
    // Someone waits on this commit to answer a request (a command, its ack): do not add the
    // group-commit delay. Readings still group into the same transaction if they are pending.
    if (opts?.urgent) b.urgent = true;
    const first = b.frames.length;
    for (let i = 0; i < frames.length; i++) b.frames.push(frames[i]!);
    if (opts?.cursor) b.cursors.set(opts.cursor.name, opts.cursor.offset);
    this.queued += frames.length;
    this.checkWater();
    const p = new Promise<CommitInfo>((resolve, reject) => b.waiters.push({ resolve, reject, first, count: frames.length }));
    this.schedule();
    return p;
  }

  /** Records that consumer `name` has fully handled every frame up to `offset`. */
  async commitCursor(name: string, offset: number): Promise<void> {
    await this.append([], { cursor: { name, offset } });
  }

  /** Last offset consumer `name` has fully handled; 0 when it has none. */
  cursor(name: string): number {
    return this.cursors.get(name) ?? 0;
  }

  /** Latest committed data frame per tag. */
  latest(): ReadonlyMap<string, Logged<DataFrame>> {
    return this.latestByTag;
  }

  /**
   * The last data frame of each of `tags` at or before `offset`, from the hot table (a consumer that
   * resumes from its cursor needs the values as they were there, not the latest ones).
   */
  async latestAt(tags: readonly string[], offset: number): Promise<Map<string, Logged<DataFrame>>> {
    const out = new Map<string, Logged<DataFrame>>();
    if (tags.length === 0 || offset < 1) return out;
    const list = tags.map((t) => `'${t.replaceAll("'", "''")}'`).join(", ");
    const conn = await this.db.instance.connect();
    try {
      const rows = await conn.runAndReadAll(
        `SELECT ${LOG_COLUMNS} FROM log WHERE kind = ${KIND_CODE.data} AND "offset" <= ${Math.floor(offset)} AND tag IN (${list})
         QUALIFY row_number() OVER (PARTITION BY tag ORDER BY "offset" DESC) = 1`,
      );
      for (const row of rows.getRows()) {
        const f = rowToFrame(row as unknown as LogRow) as Logged<DataFrame>;
        out.set(f.tag, f);
      }
    } finally {
      conn.closeSync();
    }
    return out;
  }

  /** Resolves at once unless producers are paused; then when the queue drains below the low-water mark and commits succeed. */
  waitForCapacity(): Promise<void> {
    if (!this.paused) return Promise.resolve();
    return new Promise((resolve) => this.resumeWaiters.push(resolve));
  }

  private checkWater(): void {
    // a degraded log keeps producers paused whatever its queue: their frames could only wait or be refused
    const full = this.queued >= this.tuning.highWater || this.degradedReason !== null;
    if (!this.paused && full) {
      this.paused = true;
      this.tell("pause");
    } else if (this.paused && this.queued <= this.tuning.lowWater && this.degradedReason === null) {
      this.paused = false;
      const waiters = this.resumeWaiters;
      this.resumeWaiters = [];
      for (const w of waiters) w();
      this.tell("resume");
    }
  }

  private schedule(): void {
    // the running commit picks up the pending batch when it ends; a failed one waits for its retry
    if (this.committing || this.retryTimer) return;
    const b = this.pending;
    if (b.waiters.length === 0 && !this.retryBatch) return;
    if (this.retryBatch || b.urgent || b.frames.length >= this.tuning.batchSize || this.tuning.maxDelayMs === 0 || this.closed) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.committing = this.commit();
    } else if (!this.timer) {
      const wait = Math.max(0, this.tuning.maxDelayMs - (performance.now() - b.since));
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.committing && !this.retryTimer) this.committing = this.commit();
      }, wait);
    }
  }

  private async commit(): Promise<void> {
    let b = this.retryBatch;
    this.retryBatch = null;
    if (!b) {
      b = this.pending;
      this.pending = newBatch();
    }
    const started = performance.now();
    let inDoubtCommitted = false;
    try {
      if (this.reopenNeeded) inDoubtCommitted = await this.reopen(b);
      if (!inDoubtCommitted) {
        // one commit time for the row and the in-memory frame, so a tail and a replay agree
        b.loggedAt = Date.now() * 1000;
        await this.writeBatch(b, this.headOffset + 1);
      }
    } catch (cause) {
      this.commitFailed(b, cause);
      return;
    }
    this.committed(b, started);
    this.afterCommit();
  }

  /**
   * One transaction: the frames at offsets `first`... and the cursors. A batch up to JSON_LINES_MAX_FRAMES goes in
   * as one prepared INSERT of JSON lines that DuckDB parses on its own thread (codec.ts batchJsonLines):
   * a latency-bound poll loop commits many small batches, and filling and flushing an appender chunk held
   * the event loop ~1.2 ms each time. A flood's large batches keep the appender. A batch the INSERT
   * refuses for a reason other than the storage is written again by the appender.
   */
  private async writeBatch(b: Batch, first: number): Promise<void> {
    const json = b.frames.length > 0 && b.frames.length <= JSON_LINES_MAX_FRAMES ? batchJsonLines(b.frames) : undefined;
    if (json !== undefined) {
      try {
        // without cursors the INSERT is the whole transaction: one statement commits atomically by itself
        // (BEGIN and COMMIT cost ~40-175 µs each on the event loop, measured, and two round trips)
        if (b.cursors.size === 0) await this.insertSmall(json, first, b.loggedAt);
        else await this.transaction(b, () => this.insertSmall(json, first, b.loggedAt));
        return;
      } catch (e) {
        if (isStorageFailure(e) || this.closed) throw e;
        this.smallInsertRefused++;
      }
    }
    const { appender } = this.db;
    await this.transaction(b, async () => {
      appendFrames(appender, b.frames, first, b.loggedAt);
      appender.flushSync();
    });
  }

  private async insertSmall(json: string, first: number, loggedAt: number): Promise<void> {
    const ins = this.db.smallInsert;
    ins.bind({ first: BigInt(first), rows: json, at: BigInt(loggedAt) }, { first: BIGINT, rows: VARCHAR, at: BIGINT });
    await ins.run();
  }

  /** BEGIN, `rows()` (the frames; no head row: the head is the highest offset, database.ts readHead), the cursors, COMMIT. */
  private async transaction(b: Batch, rows: () => Promise<void>): Promise<void> {
    const { conn, appender } = this.db;
    await conn.run("BEGIN TRANSACTION");
    try {
      await rows();
      const now = Date.now() * 1000;
      for (const [name, offset] of b.cursors) {
        await conn.run(`INSERT OR REPLACE INTO cursors VALUES ($name, $offset, $now)`, { name, offset: BigInt(offset), now: BigInt(now) });
      }
      await conn.run("COMMIT");
    } catch (e) {
      appender.clear();
      await conn.run("ROLLBACK").catch(() => undefined);
      throw e;
    }
  }

  /**
   * Closes the invalidated instance and opens the same file again (same sandbox), then re-reads head,
   * cursors and latest values. DuckDB reports "COMMIT succeeded and is durable, but the autocheckpoint
   * failed" as a FATAL error: the batch that got it may be in the file. True when it is (the head moved
   * by exactly its frames), so that it is not written twice; its offsets are the ones it got then.
   */
  private async reopen(b: Batch): Promise<boolean> {
    const before = this.headOffset;
    closeDatabase(this.db);
    this.db = await openDatabase(this.path, this.opts.sandbox);
    this.reopenNeeded = false;
    this.reopens++;
    await this.recover();
    this.tell("reopen", this.reopens);
    const n = b.frames.length;
    if (this.headOffset === before) return false;
    if (n > 0 && this.headOffset === before + n) {
      this.headOffset = before; // committed() moves it, as for any commit
      return true;
    }
    // Not this batch's doing (the file was changed by someone else): offsets follow the file.
    throw new CommitError(`after reopening, the head is ${this.headOffset}, expected ${before} or ${before + n}`);
  }

  private commitFailed(b: Batch, cause: unknown): void {
    const n = b.frames.length;
    // while the instance awaits its reopen, any failure (of the reopen itself) is one of the storage
    if (this.closed || !(isStorageFailure(cause) || this.reopenNeeded)) {
      // Nothing of this batch is committed and its offsets are not used: the log stays gapless.
      const err = cause instanceof CommitError ? cause : new CommitError(`commit of ${n} frames failed: ${(cause as Error).message}`, { cause });
      for (const w of b.waiters) w.reject(err);
      this.queued -= n;
      this.checkWater();
      // EventEmitter throws an "error" nobody listens to: that would leave `committing` set forever
      // and stall the writer. The appenders already got the error; listeners are optional.
      if (this.listenerCount("error") > 0) this.tell("error", err);
      this.afterCommit();
      return;
    }
    // The storage failed, not the batch (disk full ...): keep it, pause producers, retry with backoff.
    // Nobody is told "committed" until it is; offsets are assigned again at the attempt that succeeds.
    this.retryBatch = b;
    this.failedCommits++;
    if (needsReopen(cause)) this.reopenNeeded = true;
    const reason = firstLine(cause);
    const wasDegraded = this.degradedReason !== null;
    this.degradedReason = reason;
    this.degradedSince ??= Date.now();
    this.checkWater();
    if (!wasDegraded) this.tell("degraded", reason);
    if (this.listenerCount("error") > 0) this.tell("error", new CommitError(`commit of ${n} frames failed (retried): ${reason}`, { cause }));
    this.committing = null;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.schedule();
    }, backoffDelay(this.failedCommits, this.opts.commitRetry ?? DEFAULT_COMMIT_RETRY));
  }

  private committed(b: Batch, started: number): void {
    const n = b.frames.length;
    const first = this.headOffset + 1;
    const loggedAt = b.loggedAt;
    this.headOffset = first + n - 1;
    this.lastCommitAt = Date.now();
    for (const [name, offset] of b.cursors) this.cursors.set(name, offset);
    const cap = this.ring.length;
    for (let i = 0; i < n; i++) {
      const f = b.frames[i] as Logged;
      f.offset = first + i;
      f.loggedAt = loggedAt;
      if (f.kind === "data") this.latestByTag.set(f.tag, f as Logged<DataFrame>);
      if (cap > 0) this.ring[f.offset % cap] = f;
    }
    if (cap > 0) this.ringLow = Math.max(this.ringLow, this.headOffset - cap + 1);
    for (const w of b.waiters) w.resolve({ first: first + w.first, last: first + w.first + w.count - 1 });
    this.queued -= n;
    if (this.degradedReason !== null) this.recovered();
    this.checkWater();
    const done = performance.now();
    if (n > 0) {
      this.tell("commit", {
        first,
        last: this.headOffset,
        frames: n,
        latencyMs: done - b.since,
        durationMs: done - started,
      } satisfies CommitEvent);
      this.wakeHeadWaiters();
    }
  }

  private recovered(): void {
    const event: RecoveredEvent = { downMs: Date.now() - (this.degradedSince ?? Date.now()), failedCommits: this.failedCommits, reopens: this.reopens };
    this.degradedReason = null;
    this.degradedSince = null;
    this.failedCommits = 0;
    this.tell("recovered", event);
  }

  private afterCommit(): void {
    this.committing = null;
    this.schedule();
  }

  private wakeHeadWaiters(): void {
    if (this.headWaiters.length === 0) return;
    const still: typeof this.headWaiters = [];
    for (const w of this.headWaiters) (w.offset <= this.headOffset ? w.resolve() : still.push(w));
    this.headWaiters = still;
  }

  /** Resolves when the frame at `offset` is committed (or the signal aborts or the log closes). */
  waitForOffset(offset: number, signal?: AbortSignal): Promise<void> {
    if (offset <= this.headOffset || this.closed || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const w = {
        offset,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.headWaiters = this.headWaiters.filter((x) => x !== w);
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.headWaiters.push(w);
    });
  }

  /**
   * Committed frames from `from` in pages of at most `pageSize`, in offset order, up to `to` (or the
   * head). Recent frames come from memory, older ones from DuckDB: memory stays bounded by the page.
   */
  async *pages(opts: ReadOptions): AsyncGenerator<Logged[]> {
    const pageSize = opts.pageSize ?? 5000;
    const kinds = opts.kinds ? new Set(opts.kinds) : null;
    let next = Math.max(1, opts.from);
    let conn: DuckDBConnection | null = null;
    try {
      while (!opts.signal?.aborted) {
        const end = Math.min(opts.to ?? Number.MAX_SAFE_INTEGER, this.headOffset);
        if (next > end) return;
        let page: Logged[];
        let last: number;
        if (next >= this.ringLow) {
          last = Math.min(end, next + pageSize - 1);
          page = [];
          const cap = this.ring.length;
          for (let o = next; o <= last; o++) {
            const f = this.ring[o % cap]!;
            if (!kinds || kinds.has(f.kind)) page.push(f);
          }
        } else {
          conn ??= await this.db.instance.connect();
          const upto = Math.min(end, this.ringLow - 1);
          const kindSql = kinds ? `AND kind IN (${[...kinds].map((k) => KIND_CODE[k]).join(",")})` : "";
          const cols = (
            await conn.runAndReadAll(
              `SELECT ${LOG_COLUMNS_FAST} FROM log WHERE "offset" BETWEEN ${next} AND ${upto} ${kindSql} ORDER BY "offset" LIMIT ${pageSize}`,
            )
          ).getColumns();
          page = columnsToFrames(cols);
          // a short page means the range is exhausted (filtered rows or archived ones are absent)
          last = page.length < pageSize ? upto : page[page.length - 1]!.offset;
        }
        next = last + 1;
        if (page.length) yield page;
      }
    } finally {
      conn?.closeSync();
    }
  }

  /** Committed frames one by one: `for await (const frame of log.read({ from }))`. */
  async *read(opts: ReadOptions): AsyncGenerator<Logged> {
    for await (const page of this.pages(opts)) yield* page;
  }

  /** Replays from `from`, then follows the live tail until the signal aborts or the log closes. */
  async *follow(opts: ReadOptions): AsyncGenerator<Logged[]> {
    let next = Math.max(1, opts.from);
    while (!opts.signal?.aborted && !this.closed) {
      for await (const page of this.pages({ ...opts, from: next, to: undefined })) {
        yield page;
        next = page[page.length - 1]!.offset + 1;
      }
      next = Math.max(next, this.headOffset + 1);
      await this.waitForOffset(next, opts.signal);
    }
  }

  /** A connection to the same database, for read paths (queries, exports). Close it when done. */
  connect(): Promise<DuckDBConnection> {
    return this.db.instance.connect();
  }

  /** Commits what is pending, then closes the database. Appends after close are refused. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // a failed batch gets one more attempt now; if it fails again its appends are rejected (closed)
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    while (this.committing || this.pending.waiters.length || this.retryBatch) {
      if (!this.committing) this.committing = this.commit();
      await this.committing;
    }
    for (const w of this.headWaiters) w.resolve();
    this.headWaiters = [];
    for (const w of this.resumeWaiters) w();
    this.resumeWaiters = [];
    // fold the WAL into the database file now, while the writer still owns it: the next open replays
    // nothing, and the file alone is the whole log. (DuckDB also checkpoints when the last handle
    // closes, but not while another connection, such as a reader's, is still open.)
    await this.db.conn.run("CHECKPOINT").catch(() => undefined);
    closeDatabase(this.db);
  }
}
