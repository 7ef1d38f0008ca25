// History and SQL benchmark: a log of BENCH_FRAMES frames (default 10M: 116 tags at 1 Hz over one day),
// 1-minute buckets for one tag and for all tags through POST /api/query next to the same SQL run
// directly on DuckDB, Arrow and Parquet vs JSON output for a 1M-row result, and ingest while a heavy query runs.
import { join } from "node:path";
import { mkdirSync } from "node:fs";
import { DuckDBInstance } from "@duckdb/node-api";
import { LOG_DDL } from "../../storage/codec.ts";
import type { Frame } from "../../schemas/index.ts";
import { startGateway } from "../helpers/gateway.ts";
import { tempDir } from "../helpers/index.ts";
import { HS_SECRET, token } from "../server/commands-fixture.ts";
import { percentile, report, type BenchRow } from "./report.ts";

const N = Number(process.env.BENCH_FRAMES ?? 10_000_000);
const TAGS = 116;
const T0 = Date.UTC(2024, 0, 1) * 1000;
const DAY_US = 86_400_000_000;
const tmp = tempDir("edge-bench-query-");
const dataDir = join(tmp.path, "data");
mkdirSync(dataDir, { recursive: true });

// 1. the log, generated inside DuckDB (the fastest raw path), then opened by the gateway
let t = performance.now();
{
  const inst = await DuckDBInstance.create(join(dataDir, "log.duckdb"));
  const c = await inst.connect();
  await c.run(LOG_DDL);
  await c.run(`CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)`);
  const perTs = Math.max(1, Math.floor(N / TAGS));
  const stepUs = Math.floor(DAY_US / perTs);
  await c.run(`INSERT INTO log SELECT range + 1, 1, ${T0} + (range // ${TAGS}) * ${stepUs}, 't' || (range % ${TAGS}), 1,
      sin(range / 1000.0) * 100, NULL, 0, 'bench', NULL, ${T0} FROM range(${N})`);
  await c.run(`INSERT OR REPLACE INTO meta VALUES ('head', ${N})`);
  c.closeSync();
  inst.closeSync();
}
const genS = (performance.now() - t) / 1000;
console.log(`generated ${N} frames in ${genS.toFixed(1)} s`);

const tags = Array.from({ length: TAGS }, (_, i) => `  - { tag: t${i}, driver: sim, type: float64 }`).join("\n");
const g = await startGateway(
  {
    "gateway.yml": `auth: { hs256Secret: "${HS_SECRET}" }\nquery: { timeoutMs: 120000, maxRows: 2000000 }\nlog: { tailFrames: 10000 }\n`,
    "drivers.yml": "drivers: [{ id: sim, type: simulator, enabled: false }]\n",
    "variables.yml": `tags:\n${tags}\n`,
  },
  { keepDir: tmp.path },
);
const auth = { authorization: `Bearer ${await token(null, { claims: { scope: "read", tenant: "default" } })}`, "content-type": "application/json" };
const direct = await g.gw.ctx.log.connect();

const api = async (sql: string, format = "json") => {
  const r = await fetch(`${g.url}/api/query`, { method: "POST", headers: auth, body: JSON.stringify({ sql, format }) });
  if (r.status !== 200) throw new Error(`${r.status} ${await r.text()}`);
  return format === "json" ? ((await r.json()) as { rows: unknown[] }).rows.length : (await r.arrayBuffer()).byteLength;
};
const median = (xs: number[]) => percentile(xs, 50);
async function timeIt(fn: () => Promise<unknown>, runs = 5): Promise<number> {
  await fn(); // warm
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    await fn();
    ms.push(performance.now() - s);
  }
  return median(ms);
}

const rows: BenchRow[] = [];
const day = `ts_us >= ${T0} AND ts_us < ${T0 + DAY_US}`;
const oneTag = `SELECT time_bucket(INTERVAL 1 minute, ts) AS t, avg(value) AS v FROM data WHERE tag = 't7' AND ${day} GROUP BY 1 ORDER BY 1`;
const allTags = `SELECT tag, time_bucket(INTERVAL 1 minute, ts) AS t, avg(value) AS v FROM data WHERE ${day} GROUP BY 1, 2 ORDER BY 1, 2`;
for (const [name, sql] of [
  ["1-min buckets, one tag, one day (1440 rows)", oneTag],
  [`1-min buckets, all ${TAGS} tags, one day (${TAGS * 1440} rows)`, allTags],
] as const) {
  const base = await timeIt(async () => (await direct.runAndReadAll(sql)).getRowsJS());
  const viaApi = await timeIt(() => api(sql));
  rows.push({ metric: `${name}: API latency`, value: viaApi, unit: "ms", baseline: base, ratio: viaApi / base });
}
const hist = await timeIt(async () => {
  const r = await fetch(`${g.url}/api/tags/t7/history?from=${T0 / 1000}&to=${T0 / 1000 + 86_400_000}&step=1m&agg=avg`, { headers: auth });
  await r.json();
});
const histBase = await timeIt(async () => (await direct.runAndReadAll(oneTag)).getRowsJS());
rows.push({ metric: "GET /api/tags/t7/history step=1m, one day", value: hist, unit: "ms", baseline: histBase, ratio: hist / histBase });

// 2. output formats for a 1M-row result
const big = `SELECT "offset", tag, value, ts FROM data WHERE "offset" <= ${Math.min(N, 1_000_000)}`;
const bigRows = Math.min(N, 1_000_000);
const jsonMs = await timeIt(() => api(big, "json"), 2);
const arrowMs = await timeIt(() => api(big, "arrow"), 2);
rows.push({ metric: `JSON output, ${bigRows} rows`, value: bigRows / (jsonMs / 1000), unit: "rows/s" });
rows.push({ metric: `Arrow IPC output, ${bigRows} rows`, value: bigRows / (arrowMs / 1000), unit: "rows/s", baseline: bigRows / (jsonMs / 1000), ratio: jsonMs / arrowMs });
// Parquet: the chunks go to the export instance, then COPY writes the file (storage/parquet-export.ts)
let parquetBytes = 0;
const parquetMs = await timeIt(async () => (parquetBytes = await api(big, "parquet")), 2);
rows.push({ metric: `Parquet output, ${bigRows} rows`, value: bigRows / (parquetMs / 1000), unit: "rows/s", baseline: bigRows / (jsonMs / 1000), ratio: jsonMs / parquetMs });
rows.push({ metric: `Parquet file size, ${bigRows} rows`, value: parquetBytes / 1e6, unit: "MB" });

// 3. ingest while a heavy query runs vs idle
const log = g.gw.ctx.log;
async function ingestFor(ms: number): Promise<number> {
  const end = performance.now() + ms;
  let n = 0;
  const batch = (): Frame[] => Array.from({ length: 1000 }, (_, i) => ({ kind: "data", tag: `t${i % TAGS}`, value: i, ts: T0 + DAY_US, quality: 0, source: "bench" }));
  const inflight = new Set<Promise<unknown>>();
  const started = performance.now();
  while (performance.now() < end) {
    const p = log.append(batch()).then(() => (n += 1000));
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    if (inflight.size >= 8) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  return n / ((performance.now() - started) / 1000);
}
const idle = await ingestFor(5000);
const heavySql = `SELECT tag, quantile_cont(value, 0.5), count(DISTINCT ts_us), avg(value) FROM data GROUP BY tag ORDER BY tag`;
let heavyRuns = 0;
let heavyOn = true;
const heavy = (async () => {
  while (heavyOn) {
    await api(heavySql);
    heavyRuns++;
  }
})();
await Bun.sleep(200); // the query has started
const loaded = await ingestFor(5000);
heavyOn = false;
await heavy;
rows.push({ metric: `ingest while a heavy query runs (${heavyRuns} runs)`, value: loaded, unit: "frames/s", baseline: idle, ratio: loaded / idle });

// 4. ingest while 20 heavy queries run (issue #17): each re-sent as soon as it ends (408 at its deadline),
// so that one runs and the others wait in the queue for the whole measurement
const statuses = new Map<number, number>();
let swarmOn = true;
const swarm = Array.from({ length: 20 }, async () => {
  while (swarmOn) {
    const r = await fetch(`${g.url}/api/query`, { method: "POST", headers: auth, body: JSON.stringify({ sql: "SELECT sum(range) FROM range(1000000000000)", timeoutMs: 2000 }) });
    await r.arrayBuffer();
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  }
});
await Bun.sleep(200);
const commitMs: number[] = [];
const onCommit = (e: { durationMs: number }) => commitMs.push(e.durationMs);
log.on("commit", onCommit);
const swarmLoaded = await ingestFor(5000);
const swarmCommits = commitMs.splice(0);
swarmOn = false;
const swarmStarted = performance.now();
await Promise.all(swarm);
const answered = [...statuses].map(([s, n]) => `${n}x${s}`).join(" ");
console.log(`20 heavy queries: answers ${answered}; the last ones ended ${(performance.now() - swarmStarted).toFixed(0)} ms after the measurement`);
const idleAgain = await ingestFor(5000);
const idleCommits = commitMs.splice(0);
log.off("commit", onCommit);
rows.push({ metric: "commit transaction p99 while 20 heavy queries run", value: percentile(swarmCommits, 99), unit: "ms", baseline: percentile(idleCommits, 99), ratio: percentile(swarmCommits, 99) / percentile(idleCommits, 99) });
rows.push({ metric: "commit transaction max while 20 heavy queries run", value: Math.max(...swarmCommits), unit: "ms", baseline: Math.max(...idleCommits), ratio: Math.max(...swarmCommits) / Math.max(...idleCommits) });
rows.push({ metric: `ingest while 20 heavy queries run (answers: ${answered})`, value: swarmLoaded, unit: "frames/s", baseline: idleAgain, ratio: swarmLoaded / idleAgain });
rows.push({ metric: "log generation (INSERT from range, raw)", value: N / genS, unit: "frames/s" });

direct.closeSync();
await g.stop();
tmp.cleanup(); // keepDir is not removed by the gateway helper
report("query", rows);
