// `bun run bench writes`: setpoint writes through REST (JWT check, CmdFrame commit, executor, marker
// commit, Modbus write + read-back, ack commit) to a loopback Modbus TCP server, writes/s and
// request-to-ack latency; baseline: a bare modbus-serial client write loop on the same server.
import ModbusRTU from "modbus-serial";
import { startGateway } from "../helpers/gateway.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { configFiles, makeKeys, startPlc, token } from "../server/commands-fixture.ts";
import { percentile, report, type BenchRow } from "./report.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

const { plc } = await startPlc();
const keys = await makeKeys();

/** Bare client: `inFlight` loops of single-register writes; writes/s and per-write latency. */
async function bareClient(inFlight: number): Promise<{ perSecond: number; lat: number[] }> {
  const c = new ModbusRTU();
  await c.connectTCP("127.0.0.1", { port: plc.port });
  c.setTimeout(2000);
  c.setID(1);
  const lat: number[] = [];
  const until = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, k) => {
      let i = 0;
      while (performance.now() < until) {
        const s = performance.now();
        await c.writeRegister(100 + k, i++ & 0x7fff);
        lat.push(performance.now() - s);
      }
    }),
  );
  const perSecond = lat.length / ((performance.now() - t0) / 1000);
  await new Promise<void>((r) => c.close(() => r()));
  return { perSecond, lat };
}

/** `clients` concurrent REST writers for SECONDS; writes/s (acked ok) and request-to-ack latency. */
async function throughRest(clients: number, maxDelayMs: number): Promise<{ perSecond: number; lat: number[]; failed: number }> {
  const dir = tempDir("bench-writes-");
  const t = await startGateway(configFiles(dir.path, plc.port, keys, `commands: { ackTimeoutMs: 10000 }\nlog: { maxDelayMs: ${maxDelayMs} }`), { keepDir: dir.path });
  await waitFor(() => t.gw.ctx.drivers.status()[0]?.state === "Active", "driver Active", 30_000);
  const headers = { authorization: `Bearer ${await token(keys, { expiresIn: 3600 })}`, "content-type": "application/json" };
  const tags = ["line1/sp/temp", "line1/sp/speed"];
  const lat: number[] = [];
  let failed = 0;
  const until = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, k) => {
      let i = 0;
      while (performance.now() < until) {
        const s = performance.now();
        const r = await fetch(`${t.url}/api/tags/${tags[k % 2]}`, { method: "PUT", headers, body: JSON.stringify({ value: i++ % 400 }) });
        await r.arrayBuffer();
        if (r.status === 200) lat.push(performance.now() - s);
        else failed++;
      }
    }),
  );
  const perSecond = lat.length / ((performance.now() - t0) / 1000);
  await t.stop();
  return { perSecond, lat, failed };
}

const rows: BenchRow[] = [];
const bare1 = await bareClient(1);
const bare8 = await bareClient(8);
rows.push({ metric: "bare client writes/s, 1 in flight", value: bare1.perSecond, unit: "writes/s" });
rows.push({ metric: "bare client write p50, 1 in flight", value: percentile(bare1.lat, 50), unit: "ms" });
rows.push({ metric: "bare client writes/s, 8 in flight", value: bare8.perSecond, unit: "writes/s" });
for (const [clients, maxDelayMs] of [
  [1, 10],
  [8, 10],
  [8, 1],
] as const) {
  const r = await throughRest(clients, maxDelayMs);
  const base = clients === 1 ? bare1 : bare8;
  const label = `${clients} client${clients > 1 ? "s" : ""}, log.maxDelayMs ${maxDelayMs}`;
  rows.push({ metric: `REST writes/s, ${label}`, value: r.perSecond, unit: "writes/s", baseline: base.perSecond, ratio: r.perSecond / base.perSecond });
  rows.push({ metric: `REST request-to-ack p50, ${label}`, value: percentile(r.lat, 50), unit: "ms", baseline: percentile(base.lat, 50) });
  rows.push({ metric: `REST request-to-ack p99, ${label}`, value: percentile(r.lat, 99), unit: "ms", baseline: percentile(base.lat, 99) });
  if (r.failed) rows.push({ metric: `REST writes not acked ok, ${label}`, value: r.failed, unit: "requests" });
}
await plc.stop();
report("writes", rows);
process.exit(0);
