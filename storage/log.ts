// The event log: one DuckDB table that is both the write-ahead log and the query store.
// One writer (this class) batches appends into transactions (group commit), assigns offsets,
// and only then hands frames to tails. See storage/README.md for the contract.
import { EventEmitter } from "node:events";
import { mkdirSync } from "node:fs";
import { dirname, resolve, sep } from "node:path";
import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection } from "@duckdb/node-api";
import type { DataFrame, Frame, FrameKind, Logged } from "../schemas/frames.ts";
import { LogTuning } from "../schemas/config.ts";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { appendFrames, columnsToFrames, KIND_CODE, LOG_COLUMNS, LOG_COLUMNS_FAST, LOG_DDL, rowToFrame, type LogRow } from "./codec.ts";
import { CommitError, FrameError, LogClosedError } from "./errors.ts";
import type { ConsumerStatus } from "./consumer.ts";

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
}

export interface SandboxOptions {
  /** the only directory the database may read or write besides its own file (the Parquet archive) */
  archiveDir: string;
  /** DuckDB memory_limit, e.g. "512MB"; a query past it fails instead of starving the process */
  memoryLimit?: string;
  /** DuckDB worker threads; fewer leaves a core for ingest on a small machine */
  threads?: number;
}

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

/**
 * The second wall of the SQL sandbox (the first is the statement check in storage/query.ts). The order
 * matters: allowed_directories before external access is turned off, lock_configuration last.
 */
async function applySandbox(conn: DuckDBConnection, sb: SandboxOptions): Promise<void> {
  const dir = resolve(sb.archiveDir);
  mkdirSync(dir, { recursive: true });
  const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
  await conn.run(`SET allowed_directories=[${quote(dir + sep)}]`);
  await conn.run(`SET enable_external_access=false`);
  if (sb.memoryLimit) await conn.run(`SET memory_limit=${quote(sb.memoryLimit)}`);
  if (sb.threads) await conn.run(`SET threads=${Math.max(1, Math.floor(sb.threads))}`);
  await conn.run(`SET lock_configuration=true`);
}

interface Batch {
  frames: Frame[];
  cursors: Map<string, number>;
  waiters: { resolve: (c: CommitInfo) => void; reject: (e: unknown) => void; first: number; count: number }[];
  since: number;
  urgent: boolean;
}

const newBatch = (): Batch => ({ frames: [], cursors: new Map(), waiters: [], since: 0, urgent: false });

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

  private constructor(
    readonly path: string,
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    private readonly appender: DuckDBAppender,
    tuning: LogTuning,
  ) {
    super();
    this.tuning = tuning;
    this.ring = new Array(tuning.tailFrames);
  }

  static async open(opts: LogOptions): Promise<EventLog> {
    const { path, sandbox: _sandbox, ...rest } = opts;
    const tuning = TypeValue.Default(LogTuning, rest) as LogTuning;
    if (tuning.lowWater >= tuning.highWater) tuning.lowWater = Math.floor(tuning.highWater / 2);
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const instance = await DuckDBInstance.create(path);
    const conn = await instance.connect();
    if (opts.sandbox) await applySandbox(conn, opts.sandbox);
    await conn.run(LOG_DDL);
    await conn.run(`CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)`);
    await conn.run(`CREATE TABLE IF NOT EXISTS cursors (name VARCHAR PRIMARY KEY, "offset" BIGINT NOT NULL, updated_at BIGINT NOT NULL)`);
    const appender = await conn.createAppender("log");
    const log = new EventLog(path, instance, conn, appender, tuning);
    await log.recover();
    return log;
  }

  private async recover(): Promise<void> {
    const meta = await this.conn.runAndReadAll(`SELECT value FROM meta WHERE key = 'head'`);
    const max = await this.conn.runAndReadAll(`SELECT coalesce(max("offset"), 0) FROM log`);
    const metaHead = meta.getRows().length ? Number(meta.getRows()[0]![0]) : 0;
    // Both are written in the same transaction, so they agree; the max guards a head row lost by hand.
    this.headOffset = Math.max(metaHead, Number(max.getRows()[0]![0]));
    // with no ring every read goes to the database
    this.ringLow = this.ring.length > 0 ? this.headOffset + 1 : Number.POSITIVE_INFINITY;
    for (const [name, offset] of (await this.conn.runAndReadAll(`SELECT name, "offset" FROM cursors`)).getRows()) {
      this.cursors.set(String(name), Number(offset));
    }
    const latest = await this.conn.runAndReadAll(
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
  tellConsumerError(name: string, err: unknown): void {
    this.tell("consumerError", name, err);
  }

  /** Frames accepted but not yet committed. */
  get queueDepth(): number {
    return this.queued;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Appends frames; resolves when they are committed (durable), with their offsets. The log takes
   * ownership of the frame objects: it adds `offset` and `loggedAt` to them at commit.
   * With `cursor`, the cursor is set in the same transaction as the frames.
   */
  append(frames: readonly Frame[], opts?: { cursor?: { name: string; offset: number }; urgent?: boolean }): Promise<CommitInfo> {
    if (this.closed) return Promise.reject(new LogClosedError());
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

  /** Resolves at once unless producers are paused; then when the queue drains below the low-water mark. */
  waitForCapacity(): Promise<void> {
    if (!this.paused) return Promise.resolve();
    return new Promise((resolve) => this.resumeWaiters.push(resolve));
  }

  private checkWater(): void {
    if (!this.paused && this.queued >= this.tuning.highWater) {
      this.paused = true;
      this.tell("pause");
    } else if (this.paused && this.queued <= this.tuning.lowWater) {
      this.paused = false;
      const waiters = this.resumeWaiters;
      this.resumeWaiters = [];
      for (const w of waiters) w();
      this.tell("resume");
    }
  }

  private schedule(): void {
    if (this.committing) return; // the running commit picks up the pending batch when it ends
    const b = this.pending;
    if (b.waiters.length === 0) return;
    if (b.urgent || b.frames.length >= this.tuning.batchSize || this.tuning.maxDelayMs === 0 || this.closed) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.committing = this.commit();
    } else if (!this.timer) {
      const wait = Math.max(0, this.tuning.maxDelayMs - (performance.now() - b.since));
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.committing) this.committing = this.commit();
      }, wait);
    }
  }

  private async commit(): Promise<void> {
    const b = this.pending;
    this.pending = newBatch();
    const n = b.frames.length;
    const first = this.headOffset + 1;
    const started = performance.now();
    // one commit time for the row and the in-memory frame, so a tail and a replay agree
    const loggedAt = Date.now() * 1000;
    try {
      await this.conn.run("BEGIN TRANSACTION");
      try {
        appendFrames(this.appender, b.frames, first, loggedAt);
        this.appender.flushSync();
        if (n > 0) await this.conn.run(`INSERT OR REPLACE INTO meta VALUES ('head', ${first + n - 1})`);
        const now = Date.now() * 1000;
        for (const [name, offset] of b.cursors) {
          await this.conn.run(`INSERT OR REPLACE INTO cursors VALUES ($name, $offset, $now)`, {
            name,
            offset: BigInt(offset),
            now: BigInt(now),
          });
        }
        await this.conn.run("COMMIT");
      } catch (e) {
        this.appender.clear();
        await this.conn.run("ROLLBACK").catch(() => undefined);
        throw e;
      }
    } catch (cause) {
      // Nothing of this batch is committed and its offsets are not used: the log stays gapless.
      const err = new CommitError(`commit of ${n} frames failed: ${(cause as Error).message}`, { cause });
      for (const w of b.waiters) w.reject(err);
      this.queued -= n;
      this.checkWater();
      // EventEmitter throws an "error" nobody listens to: that would leave `committing` set forever
      // and stall the writer. The appenders already got the error; listeners are optional.
      if (this.listenerCount("error") > 0) this.tell("error", err);
      this.afterCommit();
      return;
    }
    this.headOffset = first + n - 1;
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
    this.afterCommit();
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
          conn ??= await this.instance.connect();
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
    return this.instance.connect();
  }

  /** Commits what is pending, then closes the database. Appends after close are refused. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.committing || this.pending.waiters.length) {
      if (!this.committing) this.committing = this.commit();
      await this.committing;
    }
    for (const w of this.headWaiters) w.resolve();
    this.headWaiters = [];
    for (const w of this.resumeWaiters) w();
    this.resumeWaiters = [];
    this.appender.closeSync();
    this.conn.closeSync();
    this.instance.closeSync();
  }
}
