// The history service: the SQL query engine over the log and the retention/archive timer, with their
// metrics. The HTTP routes (server/api/query.ts) find the engine through `historyOf(ctx)`.
import { join } from "node:path";
import { Counter, Gauge, Histogram } from "prom-client";
import { ParquetExporter, QueryEngine } from "../storage/index.ts";
import { Retention } from "../storage/retention.ts";
import type { GatewayContext, Service } from "./context.ts";

/** Where the log's Parquet archive lives; also the only folder the sandboxed database may touch. */
export const archiveDirOf = (dataDir: string) => join(dataDir, "archive");

export interface History {
  engine: QueryEngine;
  /** query results as Parquet files, written by an instance of its own (no user SQL runs there) */
  parquet: ParquetExporter;
  retention: Retention | null;
  queries: Counter<"result">;
  queryDuration: Histogram;
}

const byContext = new WeakMap<GatewayContext, History>();

/** The running history service of a gateway (null before it started or when it is stopped). */
export function historyOf(ctx: GatewayContext): History | null {
  return byContext.get(ctx) ?? null;
}

/**
 * Refuses new and waiting queries and interrupts running ones (until DuckDB lets them go, a few seconds
 * at most): the gateway calls it first when it stops, since stopping HTTP waits for open requests.
 */
export async function interruptQueries(ctx: GatewayContext): Promise<void> {
  await historyOf(ctx)?.engine.drain();
}

export function historyService(ctx: GatewayContext): Service {
  const { config, log, logger, metrics, catalog } = ctx;
  const g = config.gateway;
  const archiveDir = archiveDirOf(g.dataDir);
  const q = g.query;
  const engine = new QueryEngine(log, {
    archiveDir,
    timeoutMs: q.timeoutMs,
    maxRows: q.maxRows,
    maxResultBytes: q.maxResultBytes,
    maxConcurrent: q.maxConcurrent || undefined,
    maxQueued: q.maxQueued,
    niceQueries: q.niceQueries,
  });
  const parquet = new ParquetExporter({ maxResultBytes: q.maxResultBytes });
  const reg = metrics.registry;
  const archivedFrames = new Counter({ name: "edge_archive_frames_total", help: "Frames moved out of the hot table (to Parquet when archiving is on)", registers: [reg] });
  const archiveRunning = new Gauge({ name: "edge_archive_running", help: "1 while a retention/archive run is in progress", registers: [reg] });
  const queries = new Counter({ name: "edge_query_total", help: "User SQL queries by result", labelNames: ["result"], registers: [reg] });
  const queryDuration = new Histogram({
    name: "edge_query_duration_ms",
    help: "User SQL queries, from check to last row (ms)",
    buckets: [1, 5, 10, 50, 100, 250, 500, 1000, 5000, 30_000],
    registers: [reg],
  });
  const r = g.retention;
  const retention =
    r.maxAgeHours > 0 || r.maxFrames > 0
      ? new Retention(log, archiveDir, { maxAgeHours: r.maxAgeHours, maxFrames: r.maxFrames, archive: r.archive, chunkFrames: r.chunkFrames })
      : null;
  retention?.on("progress", (p: { first: number; last: number; frames: number; done: number; total: number }) => {
    archivedFrames.inc(p.frames);
    logger.info({ first: p.first, last: p.last, frames: p.frames, done: p.done, total: p.total, archive: r.archive }, "retention: frames left the hot table");
  });
  let timer: ReturnType<typeof setInterval> | null = null;
  let current: Promise<void> | null = null;
  // Catalog updates run one after another and stop() awaits the last: closing the engine's connection
  // under a running update crashes the process (DuckDB), e.g. a reload just before shutdown.
  let catalogUpdate: Promise<void> = Promise.resolve();
  const onCatalog = () => {
    const tags = catalog.all();
    catalogUpdate = catalogUpdate.then(() => engine.setCatalog(tags)).catch((err) => logger.error({ err }, "query engine: catalog update failed"));
  };
  const runRetention = async () => {
    if (!retention || retention.isRunning) return;
    archiveRunning.set(1);
    try {
      const run = await retention.run();
      if (run.frames > 0) {
        await engine.refreshArchive();
        logger.info({ ...run }, "retention run done");
      }
    } catch (err) {
      // a failed run deletes nothing it has not archived; the next interval tries again
      logger.error({ err }, "retention run failed");
    } finally {
      archiveRunning.set(0);
    }
  };
  return {
    name: "history",
    async start() {
      await engine.start(catalog.all());
      catalog.on("change", onCatalog);
      byContext.set(ctx, { engine, parquet, retention, queries, queryDuration });
      if (retention) {
        const tick = () => void (current ??= runRetention().finally(() => (current = null)));
        timer = setInterval(tick, r.intervalMs);
        timer.unref?.();
        tick();
      }
    },
    async stop() {
      if (timer) clearInterval(timer);
      // the log closes after this service: let a running archive chunk finish its transaction first
      await current;
      catalog.off("change", onCatalog);
      await catalogUpdate;
      byContext.delete(ctx);
      await engine.stop();
      await parquet.close();
    },
  };
}
