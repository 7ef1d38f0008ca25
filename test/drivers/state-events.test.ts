// Which driver state changes reach the event log: one event per real change (Backoff with the reason,
// Active again, Fault, Shutdown), not the Connected/Active/Error/Backoff steps of every retry that fails
// the same way, while the manager's live status (GET /api/drivers) and its 'state' events still follow
// every step. Against a real Modbus device in its own process, killed (SIGKILL) and started again.
import { afterEach, beforeEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { builtinDrivers, DriverManager, EndpointPool, parseEndpointUrl } from "../../drivers/index.ts";
import { isGood, Quality, Variable, type EventFrame, type Logged } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";
import { ModbusDevice } from "../helpers/modbus-device.ts";

setDefaultTimeout(30_000);

const tags = [0, 1].map((i) => TypeValue.Default(Variable, { tag: `plc/t${i}`, driver: "plc", type: "uint16", access: "R", address: { area: "holding", address: i } }) as Variable);

describe("driver state events of a Modbus device that dies and comes back", () => {
  let dir: ReturnType<typeof tempDir>;
  let log: EventLog;
  let mgr: DriverManager;
  let device: ModbusDevice;
  const live: string[] = [];

  beforeEach(async () => {
    dir = tempDir();
    log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
    device = new ModbusDevice(await freePort());
    await device.start();
    // backoff 50 ms doubling to 400 ms: about 15 retries in 5 s
    mgr = new DriverManager({ log, factories: builtinDrivers, settings: { backoffBaseMs: 50, backoffMaxMs: 400, faultAfterCrashes: 1000, watchdogMs: 0 } });
    live.length = 0;
    mgr.on("state", (_id: string, state: string) => live.push(state));
    const endpoint = { ...parseEndpointUrl(`tcp://127.0.0.1:${device.port}`), id: "plc", timeoutMs: 200, pool: new EndpointPool() };
    mgr.add({ id: "plc", type: "modbus", enabled: true, config: { intervalMs: 20, failuresBeforeRestart: 2 } }, endpoint, tags);
  });

  afterEach(async () => {
    await mgr.stop();
    await device.kill();
    await log.close();
    dir.cleanup();
  });

  async function stateEvents(from = 1): Promise<Logged<EventFrame>[]> {
    await log.append([]); // resolves once every frame appended before it is committed
    const out: Logged<EventFrame>[] = [];
    for await (const f of log.read({ from, kinds: ["event"] })) if (f.kind === "event" && f.type === "driver.state") out.push(f as Logged<EventFrame>);
    return out;
  }
  const allGood = () => tags.every((t) => isGood(log.latest().get(t.tag)?.quality ?? Quality.Bad));
  const backoffs = () => live.filter((s) => s === "Backoff").length;

  it("logs one Backoff with the reason over 5 s of failed retries, while the live status counts every retry", async () => {
    await waitFor(allGood, "every tag Good from the live device");
    const from = log.head + 1;
    device.signal("SIGKILL");
    await waitFor(() => backoffs() >= 2, "the first retries");
    const started = performance.now();
    await waitFor(() => performance.now() - started > 5000 && backoffs() >= 8, "5 s of backoff and at least 8 retries", 20_000);
    const evs = await stateEvents(from);
    expect(evs.map((e) => e.data!.state)).toEqual(["Backoff"]);
    expect(evs[0]!.data).toMatchObject({ previous: "Active", attempt: 1 });
    expect(String(evs[0]!.data!.error)).toContain("connection failed");
    // the live view still follows every step of every retry
    const status = mgr.status()[0]!;
    expect(status.restarts).toBeGreaterThanOrEqual(7);
    expect(status.errors).toBeGreaterThanOrEqual(8);
    expect(live.filter((s) => s === "Connected").length).toBeGreaterThanOrEqual(8);
  });

  it("logs Active once when the device is back, with the number of failed attempts, and nothing in between", async () => {
    await waitFor(allGood, "every tag Good from the live device");
    const from = log.head + 1;
    device.signal("SIGKILL");
    await waitFor(() => backoffs() >= 4, "four failed retries");
    await device.start();
    await waitFor(allGood, "every tag Good again");
    await waitFor(async () => (await stateEvents(from)).length >= 2, "the recovery logged");
    const evs = await stateEvents(from);
    expect(evs.map((e) => [e.data!.state, e.data!.previous])).toEqual([
      ["Backoff", "Active"],
      ["Active", "Backoff"],
    ]);
    expect(evs[1]!.data!.attempts).toBeGreaterThanOrEqual(4);
    expect(mgr.status()[0]!.state).toBe("Active");
  });

  it("logs the start as Loading, Init, Connected, Active and a stop as Shutdown", async () => {
    await waitFor(allGood, "every tag Good from the live device");
    await mgr.stop();
    expect((await stateEvents()).map((e) => e.data!.state)).toEqual(["Loading", "Init", "Connected", "Active", "Shutdown"]);
  });
});
