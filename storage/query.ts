// User SQL over the log: one SELECT, checked three ways (statement count, DuckDB's statement type,
// and the parsed tree, storage/sql-gate.ts: only the documented views, visible CTEs, a few table functions), run on its own
// connection, a bounded number at a time (storage/query-slots.ts), with a deadline that interrupts until
// DuckDB lets go (storage/query-execution.ts), a row limit and a byte budget (storage/result-budget.ts),
// its result streamed chunk by chunk.
// The instance's sandbox settings (storage/log.ts `sandbox`) are the wall behind these checks.
import { StatementType, type DuckDBConnection, type DuckDBDataChunk, type DuckDBResult, type DuckDBPreparedStatement, type DuckDBType } from "@duckdb/node-api";
import type { Variable } from "../schemas/config.ts";
import type { EventLog } from "./log.ts";
import { QueryRefused, QueryError, QueryStopping, QueryTimeout, ResultTooLarge } from "./errors.ts";
import { QueryExecution } from "./query-execution.ts";
import { QueryPriority } from "./query-priority.ts";
import { defaultQuerySlots, QuerySlots } from "./query-slots.ts";
import { checkVectorInternals, convertWithin, type Fit } from "./result-budget.ts";
import { settlesWithin } from "./time.ts";
import { closeQuietly } from "./database.ts";
import { createScopeTagsSql, createViews, fillTagCatalog, mainSchema, refreshArchiveView, sameCatalogRows, SCOPE_TAGS, scopedViewsSql, type ReadScope } from "./views.ts";
import { SqlGate } from "./sql-gate.ts";

export interface QueryEngineOptions {
  /** the archive folder (Parquet), or null when there is none */
  archiveDir?: string | null;
  /** default and maximum time per query */
  timeoutMs?: number;
  /** default and maximum rows per result */
  maxRows?: number;
  /** idle connections kept per reader scope (tenant + allowed tags) */
  poolSize?: number;
  /** reader scopes whose idle connections are kept (least recently used beyond it are closed) */
  maxScopes?: number;
  /** default and maximum bytes per result (measured before rows become JS values; the result says when it was cut) */
  maxResultBytes?: number;
  /** queries running inside DuckDB at once (default: leave one N-API pool thread to the log writer, storage/query-slots.ts) */
  maxConcurrent?: number;
  /** queries waiting for a slot, at most; more are refused at once with QueryBusy */
  maxQueued?: number;
  /** nice value of a pool thread while it runs a query (storage/query-priority.ts); 0 leaves them alone */
  niceQueries?: number;
}

export interface RunOptions {
  /** stricter limits than the engine's, never looser */
  timeoutMs?: number;
  maxRows?: number;
  maxResultBytes?: number;
  /** when set, every view shows only this tenant's tags */
  tenant?: string | null;
  /** when set, every view shows only these tags (rows without a tag are hidden); [] shows none */
  tags?: readonly string[] | null;
  signal?: AbortSignal;
}

export interface Column {
  name: string;
  /** DuckDB type, e.g. DOUBLE, BIGINT, VARCHAR, TIMESTAMP */
  type: string;
  duckdbType: DuckDBType;
}

/** A running query: its columns, then its batches (one per DuckDB chunk, ~2048 rows each). */
interface Result<B> {
  columns: Column[];
  batches: AsyncIterable<B>;
  /** true once the row limit cut the result (read after the batches are consumed) */
  readonly truncated: boolean;
  readonly rowCount: number;
}

/** A running query whose batches are rows as JS values (bigint for 64-bit integers, Date for timestamps). */
export type QueryResult = Result<unknown[][]>;

/** A running query whose batches are DuckDB chunks (read each before asking for the next). */
export type ChunkResult = Result<DuckDBDataChunk>;

export class QueryEngine {
  private readonly timeoutMs: number;
  private readonly maxRows: number;
  private readonly poolSize: number;
  private readonly maxScopes: number;
  private readonly idle = new Map<string, DuckDBConnection[]>();
  private admin: DuckDBConnection | null = null;
  private gate: SqlGate | null = null;
  private stopped = false;
  private draining: Promise<void> | null = null;
  /** bytes per result, at most (query.maxResultBytes) */
  readonly maxResultBytes: number;
  private readonly slots: QuerySlots;
  private readonly priority: QueryPriority;
  /** queries holding a slot (in DuckDB, or their result being read) */
  private readonly running = new Set<QueryExecution>();
  /** queries that have their slot and are getting their connection (not in `running` yet) */
  private readonly connecting = new Set<Promise<unknown>>();
  /** the log's generation the connections were made under (storage/log.ts `generation`) */
  private generation = 0;
  /** the tags the catalog table holds now (null: not known, fill it) */
  private catalogRows: readonly Variable[] | null = null;

  constructor(
    private readonly log: EventLog,
    private readonly opts: QueryEngineOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxRows = opts.maxRows ?? 1_000_000;
    this.poolSize = opts.poolSize ?? 4;
    this.maxScopes = opts.maxScopes ?? 16;
    this.maxResultBytes = opts.maxResultBytes ?? 64 * 1024 * 1024;
    this.slots = new QuerySlots(opts.maxConcurrent ?? defaultQuerySlots(), opts.maxQueued ?? 32);
    this.priority = new QueryPriority(opts.niceQueries ?? 10);
  }

  /** Creates the views and the catalog table. */
  async start(tags: readonly Variable[] = []): Promise<void> {
    this.generation = this.log.generation;
    this.admin = await this.log.connect();
    await createViews(this.admin, this.opts.archiveDir ?? null);
    await fillTagCatalog(this.admin, tags);
    this.catalogRows = tags;
    this.gate = await SqlGate.fromInstance(this.admin);
    await checkVectorInternals(this.admin);
  }

  /**
   * Replaces the `tags` catalog (on config reload). An edit of mapping fields only (expressions, deadbands)
   * leaves its rows as they are: not refilled, which was 10,000 rows appended on the event loop after
   * every such reload of a large catalog.
   */
  async setCatalog(tags: readonly Variable[]): Promise<void> {
    await this.reconnectIfReopened();
    if (this.catalogRows && sameCatalogRows(this.catalogRows, tags)) return;
    this.catalogRows = null; // a failed fill leaves the table unknown: the next edit fills it
    await fillTagCatalog(this.requireAdmin(), tags);
    this.catalogRows = tags;
  }

  /** Re-reads the archive folder into `frames_all`/`data_all` (after an archive run). */
  async refreshArchive(): Promise<void> {
    await this.reconnectIfReopened();
    await refreshArchiveView(this.requireAdmin(), this.opts.archiveDir ?? null);
  }

  /**
   * After the log reopened its database (it had been invalidated, e.g. by a full disk), every connection
   * made before is dead: the pools are dropped and the admin connection made again. The views and the
   * tag catalog are tables of the database file, so they are still there.
   */
  private async reconnectIfReopened(): Promise<void> {
    if (this.generation === this.log.generation || this.stopped || !this.admin) return;
    this.generation = this.log.generation;
    for (const pool of this.idle.values()) for (const c of pool) closeQuietly(c);
    this.idle.clear();
    closeQuietly(this.admin);
    this.admin = await this.log.connect();
  }

  private requireAdmin(): DuckDBConnection {
    if (!this.admin) throw new QueryError("the query engine is not started");
    return this.admin;
  }

  /** A connection whose temp views show only `scope`; pooled per scope (a connection's views never change). */
  private async acquire(scope: ReadScope, key: string): Promise<DuckDBConnection> {
    const pool = this.idle.get(key);
    if (pool?.length) return pool.pop()!;
    const conn = await this.log.connect();
    try {
      if (scope.tags !== null) {
        await conn.run(createScopeTagsSql);
        const app = await conn.createAppender(SCOPE_TAGS.table, SCOPE_TAGS.schema, SCOPE_TAGS.catalog);
        for (const tag of scope.tags) {
          app.appendVarchar(tag);
          app.endRow();
        }
        app.flushSync();
        app.closeSync();
      }
      for (const sql of scopedViewsSql(scope, await mainSchema(conn))) await conn.run(sql);
    } catch (e) {
      conn.closeSync();
      throw e;
    }
    return conn;
  }

  private release(key: string, conn: DuckDBConnection): void {
    const pool = this.idle.get(key) ?? [];
    if (this.stopped || pool.length >= this.poolSize) return conn.closeSync();
    pool.push(conn);
    // re-inserted last: the Map's order is the scopes' order of use, oldest first
    this.idle.delete(key);
    this.idle.set(key, pool);
    // every token with its own tag patterns is a scope: keep the idle connections of the recent ones only
    for (const [k, old] of this.idle) {
      if (this.idle.size <= this.maxScopes) break;
      for (const c of old) c.closeSync();
      this.idle.delete(k);
    }
  }

  /**
   * Checks `sql` and explains a refusal: exactly one statement, of type SELECT, whose tree names only
   * the documented views (or its own CTEs) and allowed table functions. Throws QueryRefused.
   */
  async check(sql: string, conn?: DuckDBConnection): Promise<void> {
    if (!conn) await this.reconnectIfReopened();
    (await this.prepareChecked(sql, conn)).destroySync();
  }

  /** `check`, keeping the prepared statement so that the query is not parsed and bound twice. */
  private async prepareChecked(sql: string, conn?: DuckDBConnection, scope?: ReadScope): Promise<DuckDBPreparedStatement> {
    const c = conn ?? this.requireAdmin();
    let extracted;
    try {
      extracted = await c.extractStatements(sql);
    } catch (e) {
      throw new QueryError(`not valid SQL: ${firstLine(e)}`);
    }
    if (extracted.count !== 1) throw new QueryRefused(`exactly one statement is accepted, got ${extracted.count}`);
    // The tree first: it refuses files and hidden tables before DuckDB binds (and so touches) anything.
    if (!this.gate) throw new QueryError("the query engine is not started");
    await this.gate.check(c, sql, scope);
    let prepared;
    try {
      prepared = await extracted.prepare(0);
    } catch (e) {
      throw classify(e);
    }
    const type = prepared.statementType;
    if (type !== StatementType.SELECT) {
      prepared.destroySync();
      throw new QueryRefused(`only SELECT is accepted, got ${StatementType[type] ?? type}`);
    }
    return prepared;
  }

  /**
   * Checks and starts `sql`; the returned batches stream the result. It waits for a query slot first
   * (its deadline counting), and ends at its deadline with QueryTimeout whatever DuckDB is doing. The
   * connection and the slot go back when the batches are consumed (or abandoned through `return()`)
   * and DuckDB has really stopped.
   */
  async run(sql: string, ro: RunOptions = {}): Promise<QueryResult> {
    return this.execute(sql, ro, true, (_chunk, fit, n) => (n < fit.rows.length ? fit.rows.slice(0, n) : fit.rows));
  }

  /**
   * `run`, with the rows left in DuckDB's chunks instead of converted to JS values (each chunk cut to
   * what fits the row limit and the byte budget): for the Parquet export (storage/parquet-export.ts),
   * which appends them, types and microseconds intact, to its own instance.
   */
  async runChunks(sql: string, ro: RunOptions = {}): Promise<ChunkResult> {
    return this.execute(sql, ro, false, (chunk, _fit, n) => {
      chunk.rowCount = n;
      return chunk;
    });
  }

  private async execute<B>(sql: string, ro: RunOptions, convert: boolean, take: (chunk: DuckDBDataChunk, fit: Fit, n: number) => B): Promise<Result<B>> {
    if (this.stopped) throw new QueryError("the query engine is stopped");
    const scope: ReadScope = { tenant: ro.tenant ?? null, tags: ro.tags ? [...new Set(ro.tags)].sort() : null };
    const key = JSON.stringify([scope.tenant, scope.tags]);
    const timeoutMs = Math.min(ro.timeoutMs ?? this.timeoutMs, this.timeoutMs);
    const maxRows = Math.min(ro.maxRows ?? this.maxRows, this.maxRows);
    const maxBytes = Math.min(ro.maxResultBytes ?? this.maxResultBytes, this.maxResultBytes);
    const deadlineAt = performance.now() + timeoutMs;
    const expired = () => new QueryTimeout(timeoutMs);
    const aborted = () => new QueryError("the query was cancelled (the client left)");
    const slot = await this.slots.acquire(deadlineAt, expired, ro.signal, aborted);
    this.priority.queryStarted();
    let conn: DuckDBConnection;
    const connecting = (async () => {
      await this.reconnectIfReopened();
      return this.acquire(scope, key);
    })();
    this.connecting.add(connecting);
    try {
      conn = await connecting;
    } catch (e) {
      this.priority.queryEnded();
      slot.release();
      throw e;
    } finally {
      this.connecting.delete(connecting);
    }
    const ex: QueryExecution = new QueryExecution(conn, deadlineAt - performance.now(), expired, ro.signal, aborted, () => {
      this.running.delete(ex);
      this.release(key, conn);
      this.priority.queryEnded();
      slot.release();
    });
    this.running.add(ex);
    // drain() began while this query was getting its connection: it was not among those drain() stopped
    // (missed, it ran on to its own deadline and held the gateway's stop: a race a loaded machine hit)
    if (this.stopped) ex.cancel(new QueryStopping());
    const fail = (e: unknown): never => {
      ex.finish();
      const reason = ex.stopReason;
      if (reason) throw reason;
      throw e instanceof QueryRefused || e instanceof QueryError || e instanceof ResultTooLarge ? e : classify(e);
    };
    let result: DuckDBResult;
    try {
      const prepared = await ex.call(() => this.prepareChecked(sql, conn, scope));
      result = await ex.call(() => prepared.stream());
    } catch (e) {
      return fail(e);
    }
    const columns: Column[] = result.columnNames().map((name, i) => {
      const t = result.columnType(i);
      return { name, type: t.toString(), duckdbType: t };
    });
    const state = { truncated: false, rowCount: 0, bytes: 0 };
    const batches = async function* (): AsyncGenerator<B> {
      try {
        while (state.rowCount < maxRows) {
          const chunk = await ex.call(() => result.fetchChunk());
          if (!chunk || chunk.rowCount === 0) return;
          // measured before converting: a value past the budget never becomes a JS string
          const fit = convertWithin(chunk, maxBytes - state.bytes, maxBytes, convert);
          if (fit.oversized) throw new ResultTooLarge(columns[fit.oversized.column]!.name, fit.oversized.bytes, maxBytes);
          const n = Math.min(fit.fit, maxRows - state.rowCount);
          state.truncated ||= fit.cut || n < fit.fit;
          state.rowCount += n;
          state.bytes += fit.bytes;
          if (n) yield take(chunk, fit, n);
          if (state.truncated) return;
        }
        // exactly maxRows so far: truncated only if DuckDB has more
        const more = await ex.call(() => result.fetchChunk());
        if (more && more.rowCount > 0) state.truncated = true;
      } catch (e) {
        fail(e);
      } finally {
        ex.finish();
      }
    };
    return {
      columns,
      batches: batches(),
      get truncated() {
        return state.truncated;
      },
      get rowCount() {
        return state.rowCount;
      },
    };
  }

  /** Runs `sql` and collects every row (tests, small results). */
  async all(sql: string, ro: RunOptions = {}): Promise<{ columns: string[]; rows: unknown[][]; truncated: boolean }> {
    const r = await this.run(sql, ro);
    const rows: unknown[][] = [];
    for await (const b of r.batches) rows.push(...b);
    return { columns: r.columns.map((c) => c.name), rows, truncated: r.truncated };
  }

  /** Slots in use and waiting queries (metrics, readiness). */
  get load(): { running: number; queued: number; limit: number; maxQueued: number } {
    return this.slots.stats;
  }

  /**
   * Refuses waiting and new queries and interrupts the running ones until DuckDB has let each go (at
   * most STOP_WAIT_MS). The gateway calls it before it stops HTTP, which waits for open requests.
   */
  drain(): Promise<void> {
    this.draining ??= (async () => {
      this.stopped = true;
      this.priority.release();
      const stopping = new QueryStopping();
      this.slots.close(stopping);
      // those getting their connection join `running` (and are stopped there) once they have it
      await settlesWithin(Promise.allSettled([...this.connecting]), STOP_WAIT_MS);
      const running = [...this.running];
      for (const ex of running) ex.cancel(stopping);
      await settlesWithin(Promise.all(running.map((ex) => ex.settled)), STOP_WAIT_MS);
      // a consumer that never reads again (a stalled client) would hold its connection: give it back now
      for (const ex of running) ex.finish();
    })();
    return this.draining;
  }

  /**
   * drain(), then closes every connection. Closing a connection under a running query crashes the
   * process (DuckDB), so one whose query did not stop in time is left open rather than closed.
   */
  async stop(): Promise<void> {
    await this.drain();
    for (const pool of this.idle.values()) for (const c of pool) c.closeSync();
    this.idle.clear();
    this.admin?.closeSync();
    this.admin = null;
  }
}

/** How long stop() waits for interrupted queries to leave DuckDB. */
const STOP_WAIT_MS = 5000;

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n")[0]!;

/** DuckDB's errors, told apart: a sandbox wall is a refusal, anything else a bad query. */
function classify(e: unknown): Error {
  const msg = firstLine(e);
  if (/^INTERRUPT/i.test(msg)) return new QueryError("the query was interrupted");
  if (/Permission Error|disabled by configuration|lock_configuration/i.test(msg)) return new QueryRefused(msg);
  if (/Out of Memory/i.test(msg)) return new QueryError(`the query needs more memory than allowed: ${msg}`);
  return new QueryError(msg);
}
