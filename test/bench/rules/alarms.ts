// Part "alarms" of `bun run bench rules`: alarm evaluation on 10,000 tags (HH/H/L/LL with a deadband
// each). Two rows: the engine's evaluation alone on pages in memory (target >= 200,000 frames/s), and
// the whole engine reading the log from its first offset to its head (transitions committed with its
// cursor) against a log consumer with an empty handler over the same frames (what reading costs).
import { join } from "node:path";
import { AlarmEngine } from "../../../bridges/rules/alarms.ts";
import { Catalog, Quality, type DataFrame, type Variable } from "../../../schemas/index.ts";
import { consume, EventLog } from "../../../storage/index.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import type { Logged } from "../../../schemas/index.ts";
import type { BenchRow } from "../report.ts";

const TAGS = 10_000;
const FRAMES = Number(process.env.BENCH_ALARM_FRAMES ?? 500_000);

function catalog(): Variable[] {
  return Array.from(
    { length: TAGS },
    (_, i) =>
      ({
        tag: `plant/t${i}`,
        driver: "sim",
        type: "float64",
        group: "default",
        scale: 1,
        offset: 0,
        deadband: 0,
        access: "R",
        tenant: "default",
        alarms: { HH: { limit: 95 }, H: { limit: 90 }, L: { limit: 10 }, LL: { limit: 5 }, deadband: 1, onDelayMs: 0, offDelayMs: 0 },
      }) as Variable,
  );
}

/** Readings in the normal band, one tag in a hundred swinging past H now and then (some transitions, as in a plant). */
async function fill(log: EventLog): Promise<void> {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const ts = Date.now() * 1000;
  for (let o = 0; o < FRAMES; o += 5000) {
    const batch: DataFrame[] = [];
    for (let k = 0; k < 5000 && o + k < FRAMES; k++) {
      const i = (o + k) % TAGS;
      const swing = i % 100 === 0 && rnd() < 0.2;
      batch.push({ kind: "data", tag: `plant/t${i}`, value: swing ? 92 : 40 + rnd() * 20, ts: ts + o + k, quality: Quality.Good, source: "bench" });
    }
    await log.append(batch);
  }
}

async function timeToHead(start: () => { stop(): Promise<void> } | Promise<{ stop(): Promise<void> }>, position: () => number, head: number): Promise<number> {
  const t0 = performance.now();
  const c = await start();
  await waitFor(() => position() >= head, "caught up", 600_000, 2);
  const s = (performance.now() - t0) / 1000;
  await c.stop();
  return FRAMES / s;
}

/** Frames/s of AlarmEngine.evaluate over in-memory pages (the median of 3 rounds); tag names are fresh strings per frame, as decoded from the log. */
async function evaluationRate(log: EventLog): Promise<number> {
  const engine = new AlarmEngine({ log, catalog: new Catalog(catalog()), name: "bench-eval" });
  await engine.start();
  const loggedAt = Date.now() * 1000;
  const pages: Logged[][] = [];
  for (let p = 0; p < 100; p++) {
    const page: Logged[] = [];
    for (let k = 0; k < 5000; k++) {
      const i = (p * 5000 + k) % TAGS;
      page.push({ kind: "data", tag: `plant/t${i}`, value: 40 + ((i * 7 + p) % 20), ts: loggedAt, quality: Quality.Good, source: "bench", offset: p * 5000 + k + 1, loggedAt });
    }
    pages.push(page);
  }
  const rates: number[] = [];
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    for (const page of pages) engine.evaluate(page);
    rates.push(500_000 / ((performance.now() - t0) / 1000));
  }
  await engine.stop();
  return rates.sort((a, b) => a - b)[1]!;
}

export async function measure(): Promise<BenchRow[]> {
  const dir = tempDir("bench-alarms-");
  // tailFrames below FRAMES: both runs read most pages from DuckDB, as a consumer catching up does
  const log = await EventLog.open({ path: join(dir.path, "log.duckdb"), tailFrames: 100_000 });
  try {
    await fill(log);
    // the fill's WAL is checkpointed now: otherwise the first commit of a transition pays for it inside
    // the engine's run while the baseline, which commits nothing, never does
    const conn = await log.connect();
    await conn.run("CHECKPOINT");
    conn.closeSync();
    const head = log.head;
    let seen = 0;
    const base = await timeToHead(
      () => consume(log, { name: "bench-empty", from: 1, handler: (page) => void (seen = page[page.length - 1]!.offset) }),
      () => seen,
      head,
    );
    let engine: AlarmEngine | null = null;
    const rate = await timeToHead(
      async () => {
        engine = new AlarmEngine({ log, catalog: new Catalog(catalog()), name: "bench-alarms" });
        await engine.start();
        return engine;
      },
      () => (engine as AlarmEngine | null)?.position ?? 0,
      head,
    );
    const transitions = log.head - head;
    const evaluation = await evaluationRate(log);
    return [
      { metric: `alarm evaluation alone, ${TAGS.toLocaleString("en-US")} tags x 4 limits (pages in memory; target 200,000)`, value: evaluation, unit: "frames/s", baseline: 200_000, ratio: evaluation / 200_000 },
      { metric: `alarm engine from the log vs a consumer alone, ${TAGS.toLocaleString("en-US")} tags x 4 limits, ${FRAMES.toLocaleString("en-US")} frames (${transitions} transitions)`, value: rate, unit: "frames/s", baseline: base, ratio: rate / base },
    ];
  } finally {
    await log.close();
    dir.cleanup();
  }
}
