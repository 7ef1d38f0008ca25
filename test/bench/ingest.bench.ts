// Ingest benchmark (`bun run bench ingest`): committed frames/s through the full writer (EventLog.append
// with group commit, offsets, and a live follower consuming the tail) next to the raw DuckDB appender
// for the same rows (same table, same batch size, BEGIN/append/flush/COMMIT per batch), measured in the
// same run; commit latency p50/p99 from the log's 'commit' events under that flood, and per append at a
// steady rate; RSS before and after.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { BIGINT, DOUBLE, DuckDBDataChunk, DuckDBInstance, UINTEGER, UTINYINT, VARCHAR, type DuckDBAppender } from "@duckdb/node-api";
import type { DataFrame } from "../../schemas/index.ts";
import { LOG_DDL, VT } from "../../storage/codec.ts";
import { EventLog, type CommitEvent } from "../../storage/index.ts";
import { tempDir } from "../helpers/index.ts";
import { percentile, report, rssMiB } from "./report.ts";

const TAGS = 1000; // one poll of a realistic device set: 1000 numeric tags
const FRAMES = Number(process.env.BENCH_INGEST_FRAMES ?? 500_000);
const BATCH = 5000; // the gateway's default batchSize
const ROUNDS = Number(process.env.BENCH_INGEST_ROUNDS ?? 2);
const tags = Array.from({ length: TAGS }, (_, i) => `plant/line${i % 10}/sensor${i}`);

/** One poll: a frame per tag with a numeric value, as a driver produces them. */
function poll(n: number): DataFrame[] {
  const ts = Date.now() * 1000;
  const frames: DataFrame[] = new Array(TAGS);
  for (let i = 0; i < TAGS; i++) frames[i] = { kind: "data", tag: tags[i]!, value: Math.sin(n + i) * 100, ts, quality: 0, source: "bench" };
  return frames;
}

async function fullWriter(path: string) {
  const log = await EventLog.open({ path, batchSize: BATCH, maxDelayMs: 10 });
  const latencies: number[] = [];
  log.on("commit", (c: CommitEvent) => latencies.push(c.latencyMs));
  const ac = new AbortController();
  let followed = 0;
  const follower = (async () => {
    for await (const page of log.follow({ from: log.head + 1, signal: ac.signal })) {
      followed += page.length;
      if (followed >= FRAMES) ac.abort();
    }
  })();
  const t0 = performance.now();
  const appends: Promise<unknown>[] = [];
  for (let n = 0; n * TAGS < FRAMES; n++) {
    appends.push(log.append(poll(n)));
    // a driver awaits the writer's capacity (backpressure) and yields between polls
    if (log.isPaused) await log.waitForCapacity();
    else await new Promise((r) => setImmediate(r));
  }
  await Promise.all(appends);
  await follower;
  const seconds = (performance.now() - t0) / 1000;
  await log.close();
  return { rate: FRAMES / seconds, seconds, latencies, followed };
}

/**
 * Commit latency at a steady rate, as a plant produces it (not a flood): one poll of TAGS frames every
 * `everyMs`, each append timed from the call to its commit.
 */
async function steadyLatency(path: string, framesPerSecond: number, seconds: number) {
  const log = await EventLog.open({ path, batchSize: BATCH, maxDelayMs: 10 });
  const everyMs = (TAGS / framesPerSecond) * 1000;
  const latencies: number[] = [];
  const appends: Promise<unknown>[] = [];
  const t0 = performance.now();
  for (let n = 0; performance.now() - t0 < seconds * 1000; n++) {
    const at = performance.now();
    appends.push(log.append(poll(n)).then(() => latencies.push(performance.now() - at)));
    const next = t0 + (n + 1) * everyMs;
    await Bun.sleep(Math.max(0, next - performance.now()));
  }
  await Promise.all(appends);
  await log.close();
  return latencies;
}

const LOG_TYPES = [BIGINT, UTINYINT, BIGINT, VARCHAR, UTINYINT, DOUBLE, VARCHAR, UINTEGER, VARCHAR, VARCHAR, BIGINT];

/** The same rows through DuckDB data chunks (column vectors of 2048 rows): the fastest raw path. */
function appendChunks(app: DuckDBAppender, batch: DataFrame[], firstOffset: number, loggedAt: bigint): void {
  for (let start = 0; start < batch.length; start += 2048) {
    const n = Math.min(2048, batch.length - start);
    const chunk = DuckDBDataChunk.create(LOG_TYPES, n);
    const v = LOG_TYPES.map((_, i) => chunk.getColumnVector(i));
    for (let r = 0; r < n; r++) {
      const f = batch[start + r]!;
      v[0]!.setItem(r, BigInt(firstOffset + start + r));
      v[1]!.setItem(r, 1);
      v[2]!.setItem(r, BigInt(f.ts));
      v[3]!.setItem(r, f.tag);
      v[4]!.setItem(r, VT.number);
      v[5]!.setItem(r, f.value as number);
      v[6]!.setItem(r, null);
      v[7]!.setItem(r, f.quality);
      v[8]!.setItem(r, f.source);
      v[9]!.setItem(r, null);
      v[10]!.setItem(r, loggedAt);
    }
    for (const x of v) x.flush();
    app.appendDataChunk(chunk);
  }
}

/** The same rows one by one through the row appender (eleven calls per row). */
function appendRows(app: DuckDBAppender, batch: DataFrame[], firstOffset: number, loggedAt: bigint): void {
  let offset = firstOffset;
  for (const f of batch) {
    app.appendBigInt(BigInt(offset++));
    app.appendUTinyInt(1);
    app.appendBigInt(BigInt(f.ts));
    app.appendVarchar(f.tag);
    app.appendUTinyInt(VT.number);
    app.appendDouble(f.value as number);
    app.appendNull();
    app.appendUInteger(f.quality);
    app.appendVarchar(f.source);
    app.appendNull();
    app.appendBigInt(loggedAt);
    app.endRow();
  }
}

async function rawAppender(path: string, method: "chunks" | "rows") {
  const instance = await DuckDBInstance.create(path);
  const conn = await instance.connect();
  await conn.run(LOG_DDL);
  const app = await conn.createAppender("log");
  const t0 = performance.now();
  let offset = 0;
  let n = 0;
  let pending: DataFrame[] = [];
  while (offset < FRAMES) {
    while (pending.length < BATCH) pending = pending.concat(poll(n++));
    const batch = pending.slice(0, BATCH);
    pending = pending.slice(BATCH);
    await conn.run("BEGIN TRANSACTION");
    const loggedAt = BigInt(Date.now() * 1000);
    (method === "chunks" ? appendChunks : appendRows)(app, batch, offset + 1, loggedAt);
    offset += batch.length;
    app.flushSync();
    await conn.run("COMMIT");
  }
  const seconds = (performance.now() - t0) / 1000;
  app.closeSync();
  conn.closeSync();
  instance.closeSync();
  return { rate: offset / seconds, seconds };
}

const dir = tempDir("edge-bench-ingest-");
try {
  const rssBefore = rssMiB();
  // the baselines first, then the writer, each on a fresh file
  const rawRun = async (method: "chunks" | "rows") => {
    const file = join(dir.path, `raw-${method}.duckdb`);
    const r = await rawAppender(file, method);
    rmSync(file, { force: true });
    rmSync(`${file}.wal`, { force: true });
    return r;
  };
  // The host is shared: runs alternate and the best of each is kept, so that a burst of someone
  // else's load does not land on one side of the ratio only.
  let raw = { rate: 0 };
  let rawRows = { rate: 0 };
  let full: Awaited<ReturnType<typeof fullWriter>> | null = null;
  for (let round = 0; round < ROUNDS; round++) {
    const r = await rawRun("chunks");
    if (r.rate > raw.rate) raw = r;
    const rr = await rawRun("rows");
    if (rr.rate > rawRows.rate) rawRows = rr;
    Bun.gc(true);
    const f = await fullWriter(join(dir.path, `log-${round}.duckdb`));
    if (!full || f.rate > full.rate) full = f;
    Bun.gc(true);
  }
  if (!full) throw new Error("no run");
  const STEADY = 50_000;
  const steady = await steadyLatency(join(dir.path, "steady.duckdb"), STEADY, 5);
  Bun.gc(true);
  const rssAfter = rssMiB();
  if (full.followed < FRAMES) throw new Error(`the follower saw ${full.followed} of ${FRAMES} frames`);
  report("ingest", [
    { metric: `committed frames/s, full writer (${FRAMES.toLocaleString("en-US")} frames, ${TAGS} tags, batch ${BATCH}, live tail; best of ${ROUNDS})`, value: full.rate, unit: "frames/s", baseline: raw.rate, ratio: full.rate / raw.rate },
    { metric: `raw DuckDB appender, data chunks, same rows, batches of ${BATCH}`, value: raw.rate, unit: "frames/s" },
    { metric: `raw DuckDB appender, row by row, same rows, batches of ${BATCH}`, value: rawRows.rate, unit: "frames/s", baseline: raw.rate, ratio: rawRows.rate / raw.rate },
    { metric: "writer: mean frames per commit (batches grow while a commit runs)", value: FRAMES / full.latencies.length, unit: "frames" },
    { metric: "commit latency p50 (append -> committed)", value: percentile(full.latencies, 50), unit: "ms" },
    { metric: "commit latency p99", value: percentile(full.latencies, 99), unit: "ms" },
    { metric: `commit latency p50 at a steady ${STEADY.toLocaleString("en-US")} frames/s (polls of ${TAGS}, maxDelayMs 10)`, value: percentile(steady, 50), unit: "ms" },
    { metric: `commit latency p99 at a steady ${STEADY.toLocaleString("en-US")} frames/s`, value: percentile(steady, 99), unit: "ms" },
    { metric: "RSS before", value: rssBefore, unit: "MiB" },
    { metric: "RSS after", value: rssAfter, unit: "MiB" },
  ]);
} finally {
  dir.cleanup();
}
