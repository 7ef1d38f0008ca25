// `bun run bench modbus`: tag values per second polled from a loopback Modbus TCP slave through the
// full driver (plan, client, codec, manager, group commit) into the event log, next to a bare
// modbus-serial client loop on the same slave in the same run (reads/s x registers per read).
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import ModbusRTU from "modbus-serial";
import { builtinDrivers, DriverManager, EndpointPool, parseEndpointUrl, type Driver, type FrameSink } from "../../drivers/index.ts";
import { createModbus } from "../../drivers/modbus/index.ts";
import { Variable, type DataType } from "../../schemas/index.ts";
import { ModbusTcpServer } from "../../server/demo/modbus-server.ts";
import { EventLog } from "../../storage/index.ts";
import { tempDir } from "../helpers/index.ts";
import { report, type BenchRow } from "./report.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const GROUPS = 4; // poll groups run concurrently on the one shared connection
// the slave's registers do not change: with report by exception (the catalog's default) nothing but
// heartbeats would be logged; this benchmark measures the poll -> frame path, so every poll is logged
const EVERY_POLL = { reportByException: false };

const slave = new ModbusTcpServer({ size: 20_000 });
await slave.start();
for (let i = 0; i < slave.holding.length; i++) slave.holding[i] = i & 0xffff;

/** Bare client: `inFlight` loops of 125-register reads for SECONDS; register values per second. */
async function bareClient(inFlight: number): Promise<number> {
  const c = new ModbusRTU();
  await c.connectTCP("127.0.0.1", { port: slave.port });
  c.setTimeout(2000);
  c.setID(1);
  const until = performance.now() + SECONDS * 1000;
  let reads = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, k) => {
      while (performance.now() < until) {
        await c.readHoldingRegisters((k * 125) % 10_000, 125);
        reads++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  await new Promise<void>((r) => c.close(() => r()));
  return (reads * 125) / s;
}

/** The driver polling `tags` tags of `type` as fast as it can; tag values committed per second. */
async function throughDriver(type: DataType, tags: number): Promise<{ perSecond: number; reads: number }> {
  const dir = tempDir("bench-modbus-");
  const log = await EventLog.open({ path: join(dir.path, "log.duckdb") });
  const pool = new EndpointPool();
  const mgr = new DriverManager({ log, factories: builtinDrivers, settings: { watchdogMs: 0 } });
  const width = type === "float32" ? 2 : 1;
  const vars = Array.from({ length: tags }, (_, i) =>
    TypeValue.Default(Variable, { tag: `b/${i}`, driver: "plc", type, group: `g${Math.floor((i * GROUPS) / tags)}`, address: { area: "holding", address: i * width }, ...EVERY_POLL }) as Variable,
  );
  const groups = Object.fromEntries(Array.from({ length: GROUPS }, (_, g) => [`g${g}`, 0]));
  // each group is a contiguous quarter of the map: every read is 125 registers of tags
  mgr.add({ id: "plc", type: "modbus", enabled: true, endpoint: "ep", config: { groups } }, { ...parseEndpointUrl(`tcp://127.0.0.1:${slave.port}`), id: "ep", timeoutMs: 2000, pool }, vars);
  while (log.head < tags * 2) await Bun.sleep(20); // warm up
  const r0 = slave.requests;
  const h0 = log.head;
  const t0 = performance.now();
  await Bun.sleep(SECONDS * 1000);
  const h1 = log.head;
  const s = (performance.now() - t0) / 1000;
  const reads = (slave.requests - r0) / s;
  await mgr.stop();
  await log.close();
  dir.cleanup();
  return { perSecond: (h1 - h0) / s, reads };
}

/** The driver alone into a sink that counts and drops: its own ceiling, without the log. */
async function driverOnly(type: DataType, tags: number): Promise<number> {
  const width = type === "float32" ? 2 : 1;
  const vars = Array.from({ length: tags }, (_, i) =>
    TypeValue.Default(Variable, { tag: `b/${i}`, driver: "plc", type, group: `g${Math.floor((i * GROUPS) / tags)}`, address: { area: "holding", address: i * width }, ...EVERY_POLL }) as Variable,
  );
  const d: Driver = createModbus();
  d.init({ id: "plc", config: { groups: Object.fromEntries(Array.from({ length: GROUPS }, (_, g) => [`g${g}`, 0])) }, tags: vars });
  const pool = new EndpointPool();
  const stop = new AbortController();
  await d.connect({ ...parseEndpointUrl(`tcp://127.0.0.1:${slave.port}`), id: "ep", timeoutMs: 2000, pool }, stop.signal);
  let n = 0;
  const sink: FrameSink = { send: async (f) => void (n += f.length), commit: async (f) => void (n += f.length), event() {}, isPaused: false, heartbeat() {} };
  const loop = d.readLoop(sink, stop.signal);
  await Bun.sleep(500);
  const n0 = n;
  const t0 = performance.now();
  await Bun.sleep(SECONDS * 1000);
  const perSecond = (n - n0) / ((performance.now() - t0) / 1000);
  stop.abort();
  await loop;
  await d.shutdown();
  return perSecond;
}

/** The log alone: the same frames (125 per append, as one read gives) straight into the appender. */
async function rawLog(tags: number): Promise<number> {
  const dir = tempDir("bench-modbus-log-");
  const log = await EventLog.open({ path: join(dir.path, "log.duckdb") });
  const until = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  let i = 0;
  let last: Promise<unknown> = Promise.resolve();
  while (performance.now() < until) {
    const ts = Date.now() * 1000;
    const frames = new Array(125);
    for (let k = 0; k < 125; k++, i++) frames[k] = { kind: "data", tag: `b/${i % tags}`, value: i & 0x7fff, ts, quality: 0, source: "plc" };
    last = log.append(frames);
    if (log.isPaused) await log.waitForCapacity();
    else if ((i / 125) % 64 === 0) await new Promise((r) => setImmediate(r));
  }
  await last; // committed, not just queued
  const s = (performance.now() - t0) / 1000;
  const head = log.head;
  await log.close();
  dir.cleanup();
  return head / s;
}

const rows: BenchRow[] = [];
const bare1 = await bareClient(1);
const bare4 = await bareClient(GROUPS);
rows.push({ metric: "bare client, 125-register reads, 1 in flight", value: bare1, unit: "registers/s" });
rows.push({ metric: `bare client, 125-register reads, ${GROUPS} in flight`, value: bare4, unit: "registers/s" });
const raw = await rawLog(5000);
rows.push({ metric: "raw log appender, 125 frames per append", value: raw, unit: "frames/s" });
for (const [type, n] of [["int16", 5000], ["float32", 2500]] as const) {
  const alone = await driverOnly(type, n);
  rows.push({ metric: `driver -> counting sink (no log), ${n} ${type} tags`, value: alone, unit: "tag values/s", baseline: bare4 / (type === "float32" ? 2 : 1), ratio: (alone * (type === "float32" ? 2 : 1)) / bare4 });
  const d = await throughDriver(type, n);
  const regsPerSec = d.perSecond * (type === "float32" ? 2 : 1);
  rows.push({ metric: `driver -> log, ${n} ${type} tags, ${GROUPS} groups`, value: d.perSecond, unit: "tag values/s", baseline: raw, ratio: d.perSecond / raw });
  rows.push({ metric: "  same, as registers vs bare client", value: regsPerSec, unit: "registers/s", baseline: bare4, ratio: regsPerSec / bare4 });
  rows.push({ metric: "  device reads during that run", value: d.reads, unit: "reads/s" });
}
report("modbus", rows);
await slave.stop();
process.exit(0);
