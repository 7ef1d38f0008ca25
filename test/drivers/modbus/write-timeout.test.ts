// Writes under timeouts: the PLC (a Modbus server in its own process) hangs (SIGSTOP) while writes
// come in through the command executor. The first write gets no answer: acked timeout_outcome_unknown,
// whichever timeout fires first (the endpoint's inside the driver, or the executor's writeTimeoutMs).
// No later write may be sent until the link is proven again (a hung server's kernel still accepts a
// new connection, so "reconnected" proves nothing): they are acked device_busy, unsent. After SIGCONT
// the device has executed at most the first write and none of the later ones (counted at the
// device), and writes work again once a request has been answered on the new connection.
import { afterEach, beforeEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { builtinDrivers, CommandExecutor, DriverManager, EndpointPool, parseEndpointUrl } from "../../../drivers/index.ts";
import { Catalog, nowMicros, Quality, Variable, type AckFrame, type CmdFrame, type Logged } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { freePort, tempDir, waitFor } from "../../helpers/index.ts";
import { ModbusDevice } from "../../helpers/modbus-device.ts";

setDefaultTimeout(30_000);

const variable = (tag: string, address: number, access: "R" | "RW") =>
  TypeValue.Default(Variable, { tag, driver: "plc", type: "uint16", access, address: { area: "holding", address } }) as Variable;
const tags = [variable("plc/sp1", 10, "RW"), variable("plc/sp2", 11, "RW"), variable("plc/pv", 20, "R")];

let dir: ReturnType<typeof tempDir>;
let log: EventLog;
let mgr: DriverManager;
let exec: CommandExecutor | null = null;
let device: ModbusDevice;

async function setup(endpointTimeoutMs: number, writeTimeoutMs: number): Promise<void> {
  const pool = new EndpointPool();
  mgr = new DriverManager({ log, factories: builtinDrivers, settings: { backoffBaseMs: 100, backoffMaxMs: 500, watchdogMs: 0 } });
  const endpoint = { ...parseEndpointUrl(`tcp://127.0.0.1:${device.port}`), id: "plc", timeoutMs: endpointTimeoutMs, pool };
  mgr.add({ id: "plc", type: "modbus", enabled: true, config: { intervalMs: 100 } }, endpoint, tags);
  exec = new CommandExecutor({ log, drivers: mgr, catalog: new Catalog(tags), writeTimeoutMs });
  exec.start();
  await waitFor(() => log.latest().get("plc/pv")?.quality === Quality.Good, "the PLC read");
}

beforeEach(async () => {
  dir = tempDir();
  log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
  device = new ModbusDevice(await freePort());
  await device.start();
});

afterEach(async () => {
  await exec?.stop();
  exec = null;
  await mgr.stop();
  await device.kill();
  await log.close();
  dir.cleanup();
});

let n = 0;
const cmd = (tag: string, value: number): CmdFrame => ({ kind: "cmd", id: `w${++n}`, tag, value, origin: "rest", actor: "alice", tenant: "default", ts: nowMicros(), expiresAt: nowMicros() + 60_000_000 });
async function ackOf(id: string): Promise<Logged<AckFrame>> {
  return await waitFor(async () => {
    for await (const f of log.read({ from: 1, kinds: ["ack"] })) if (f.kind === "ack" && f.cmd === id) return f;
    return null;
  }, `ack of ${id}`, 10_000);
}
const writesOf = (value: number) => device.writes.filter((w) => w.value === value).length;

/** The scenario of both tests, with the endpoint timeout of the setup. */
async function hungDeviceScenario(endpointTimeoutMs: number): Promise<void> {
  device.signal("SIGSTOP");
  const first = cmd("plc/sp1", 111);
  const second = cmd("plc/sp2", 222);
  const sentAt = performance.now();
  await log.append([first, second]);
  expect(await ackOf(first.id)).toMatchObject({ ok: false, code: "timeout_outcome_unknown" });
  expect(["device_busy", "expired"]).toContain((await ackOf(second.id)).code);
  // A fixed wait, on purpose: the third write must come after the first one's device call has ended
  // (its endpoint timeout), when no guard of the executor holds it back any more. The driver has
  // reconnected by then (the stopped server's kernel accepts it) but nothing has been answered.
  await Bun.sleep(Math.max(0, sentAt + endpointTimeoutMs + 300 - performance.now()));
  const third = cmd("plc/sp2", 333);
  await log.append([third]);
  expect(await ackOf(third.id)).toMatchObject({ ok: false, code: "device_busy" });

  const resumed = Date.now() * 1000;
  device.signal("SIGCONT");
  await waitFor(() => {
    const pv = log.latest().get("plc/pv");
    return pv?.quality === Quality.Good && pv.ts > resumed;
  }, "a read answered after SIGCONT (the link proven)");
  const fourth = cmd("plc/sp2", 444);
  await log.append([fourth]);
  expect(await ackOf(fourth.id)).toMatchObject({ ok: true, code: "ok" });
  await waitFor(() => writesOf(444) === 1, "the fourth write at the device");
  expect(writesOf(111)).toBeLessThanOrEqual(1);
  expect(writesOf(222)).toBe(0);
  expect(writesOf(333)).toBe(0);
}

describe("writes to a hung Modbus device", () => {
  it("acks the unanswered write timeout_outcome_unknown when the endpoint timeout fires in the driver, sends no later write until the link is proven", async () => {
    await setup(400, 5_000);
    await hungDeviceScenario(400);
  });

  it("acks the unanswered write timeout_outcome_unknown when the executor's writeTimeoutMs fires first, sends no later write until the link is proven", async () => {
    await setup(1_500, 300);
    await hungDeviceScenario(1_500);
  });
});
