// Modbus slave throughput: reads of 125 holding registers per request from 1 and from 8 concurrent
// masters (modbus-serial clients, one connection each, one request in flight per master), against our
// slave (values from the log) and, as the baseline in the same run, a bare jsmodbus TCP server with a
// static register buffer. Plus the in-process read of the register image (the request's hot path without
// the network: copy and quality check of 125 registers) against a bare copy of a Uint16Array.
//   bun run bench modbus-slave
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import * as Modbus from "jsmodbus";
import ModbusRTU from "modbus-serial";
import { createModbusSlave } from "../../bridges/modbus-slave/index.ts";
import { Catalog, nowMicros, parseWithSchema, Quality, VariablesFile } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { freePort, tempDir } from "../helpers/index.ts";
import { report, type BenchRow } from "./report.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const REGS = 125;

async function runMasters(port: number, masters: number): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: masters }, async () => {
      const m = new ModbusRTU();
      await m.connectTCP("127.0.0.1", { port });
      m.setID(1);
      m.setTimeout(5000);
      return m;
    }),
  );
  // warm-up
  for (const m of clients) await m.readHoldingRegisters(0, REGS);
  let count = 0;
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    clients.map(async (m) => {
      while (performance.now() < end) {
        const r = await m.readHoldingRegisters(0, REGS);
        if (r.data.length !== REGS) throw new Error("short read");
        count++;
      }
    }),
  );
  const rate = count / ((performance.now() - started) / 1000);
  await Promise.all(clients.map((m) => new Promise<void>((r) => m.close(() => r()))));
  return rate;
}

// ---- our slave: 125 int16 tags with values in the log --------------------------------------------
const tmp = tempDir("edge-bench-mbslave-");
const log = await EventLog.open({ path: join(tmp.path, "log.duckdb") });
const tags = Array.from({ length: REGS }, (_, i) => ({ tag: `b/r${i}`, driver: "plc", type: "int16" }));
const catalog = new Catalog(parseWithSchema(VariablesFile, { tags }, "variables.yml").tags);
await log.append(tags.map((t, i) => ({ kind: "data" as const, tag: t.tag, value: i, ts: nowMicros(), quality: Quality.Good, source: "bench" })));
const slavePort = await freePort();
const slave = createModbusSlave({
  config: {
    dir: tmp.path,
    gateway: { modbusSlave: { enabled: true, host: "127.0.0.1", port: slavePort, map: tags.map((t, i) => ({ tag: t.tag, area: "holding", address: i })) } },
  },
  log,
  catalog,
  commands: { execute: async () => ({ ack: null }) }, // reads only
})!;
await slave.start();

/** Reads/s of slave.image.read(125 holding registers), in-process, against Uint16Array.slice of 125 (median of rounds). */
function imageReadRow(): BenchRow {
  const iters = 200_000;
  const src = new Uint16Array(REGS);
  const timed = (read: () => Uint16Array) => {
    let sink = 0;
    const t = performance.now();
    for (let k = 0; k < iters; k++) sink += read()[k % REGS]!;
    if (sink < 0) throw new Error("unreachable");
    return iters / ((performance.now() - t) / 1000);
  };
  const ours: number[] = [];
  const base: number[] = [];
  for (let round = 0; round < 9; round++) {
    ours.push(timed(() => slave.image.read(1, "holding", 0, REGS)));
    base.push(timed(() => src.slice(0, REGS)));
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  const value = median(ours);
  const baseline = median(base);
  return { metric: `image read of ${REGS} registers in-process (baseline: Uint16Array.slice)`, value, unit: "reads/s", baseline, ratio: value / baseline };
}

// ---- baseline: a bare jsmodbus server ------------------------------------------------------------
const basePort = await freePort();
const netServer: Server = createServer();
const holding = Buffer.alloc(REGS * 2);
for (let i = 0; i < REGS; i++) holding.writeInt16BE(i, 2 * i);
new Modbus.server.TCP(netServer, { holding });
await new Promise<void>((r) => netServer.listen(basePort, "127.0.0.1", () => r()));

const rows: BenchRow[] = [];
for (const masters of [1, 8]) {
  const base = await runMasters(basePort, masters);
  const ours = await runMasters(slavePort, masters);
  rows.push({ metric: `read ${REGS} registers, ${masters} master${masters > 1 ? "s" : ""} (baseline: bare jsmodbus server)`, value: ours, unit: "req/s", baseline: base, ratio: ours / base });
}
rows.push(imageReadRow());
report("modbus-slave", rows);

await slave.stop();
await new Promise<void>((r) => netServer.close(() => r()));
await log.close();
tmp.cleanup();
process.exit(0);
