// Quality follows the device: a Modbus PLC in its own process is killed (SIGKILL) while the driver
// polls it, with tags in all four areas and poll groups of different rates (input registers slowest,
// the case that stayed Good before). Every tag of the driver must be Bad within 2 s, and Good again
// once the PLC is back on the same port; a removed or stopped driver's tags are Bad.
import { afterEach, beforeEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { builtinDrivers, DriverManager, EndpointPool, parseEndpointUrl } from "../../../drivers/index.ts";
import { isBad, isGood, Quality, qualityName, Variable, type DataType } from "../../../schemas/index.ts";
import { EventLog } from "../../../storage/index.ts";
import { freePort, tempDir, waitFor } from "../../helpers/index.ts";
import { ModbusDevice } from "../../helpers/modbus-device.ts";

setDefaultTimeout(30_000);

type Area = "coil" | "discrete" | "holding" | "input";
const groups: Record<string, number> = { fast: 50, medium: 300, slow: 1500 };
/** 28 tags: 7 per area, spread over the groups; input registers all in the slowest group. */
function plcTags(): Variable[] {
  const out: Variable[] = [];
  const areas: [Area, DataType, (i: number) => string][] = [
    ["coil", "bool", (i) => (i < 4 ? "fast" : "medium")],
    ["discrete", "bool", (i) => (i < 4 ? "medium" : "slow")],
    ["holding", "uint16", (i) => (i < 3 ? "fast" : i < 5 ? "medium" : "slow")],
    ["input", "uint16", () => "slow"],
  ];
  for (const [area, type, group] of areas) {
    for (let i = 0; i < 7; i++) {
      // two blocks per area: a gap larger than maxGap splits the reads
      const address = i < 4 ? i : 50 + i;
      out.push(TypeValue.Default(Variable, { tag: `plc/${area}${i}`, driver: "plc", type, group: group(i), access: "R", address: { area, address } }) as Variable);
    }
  }
  return out;
}

let dir: ReturnType<typeof tempDir>;
let log: EventLog;
let mgr: DriverManager;
let pool: EndpointPool;
let device: ModbusDevice;
const tags = plcTags();

beforeEach(async () => {
  dir = tempDir();
  log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
  device = new ModbusDevice(await freePort());
  await device.start();
  pool = new EndpointPool();
  // a realistic restart backoff (seconds): the tags must not wait for the next attempt to turn Bad
  mgr = new DriverManager({ log, factories: builtinDrivers, settings: { backoffBaseMs: 2500, backoffMaxMs: 2500, faultAfterCrashes: 1000, watchdogMs: 0 } });
  const endpoint = { ...parseEndpointUrl(`tcp://127.0.0.1:${device.port}`), id: "plc", timeoutMs: 300, pool };
  mgr.add({ id: "plc", type: "modbus", enabled: true, config: { groups, maxGap: 4 } }, endpoint, tags);
});

afterEach(async () => {
  await mgr.stop();
  await device.kill();
  await log.close();
  dir.cleanup();
});

const qualities = () => tags.map((t) => log.latest().get(t.tag)?.quality);
const notBad = () => tags.filter((t) => !isBad(log.latest().get(t.tag)?.quality ?? Quality.Good)).map((t) => `${t.tag} ${qualityName(log.latest().get(t.tag)?.quality ?? 0)}`);

describe("Modbus PLC killed while polled", () => {
  it("marks every tag of the driver Bad within 2 s whatever its area and poll group, and Good again after the PLC restarts on the same port", async () => {
    await waitFor(() => qualities().every((q) => q !== undefined && isGood(q)), "every tag Good from the live PLC");
    expect(log.latest().get("plc/input6")?.value).toBe(2056);
    device.signal("SIGKILL");
    const t0 = performance.now();
    await waitFor(() => notBad().length === 0, "every tag Bad", 5_000, 10).catch((e) => {
      throw new Error(`${(e as Error).message}; still not Bad: ${notBad().join(", ")}`);
    });
    expect(performance.now() - t0).toBeLessThan(2_000);
    // a connection failure: Bad_CommunicationError (from the driver or the manager), never a value
    for (const t of tags) expect(log.latest().get(t.tag)).toMatchObject({ value: null, quality: Quality.Bad_CommunicationError });
    await device.start();
    await waitFor(() => qualities().every((q) => q !== undefined && isGood(q)), "every tag Good again after the restart", 15_000);
    expect(log.latest().get("plc/input6")?.value).toBe(2056);
  });
});

describe("a driver that stops", () => {
  it("marks every tag Bad_OutOfService when the driver is removed", async () => {
    await waitFor(() => qualities().every((q) => q !== undefined && isGood(q)), "every tag Good");
    await mgr.remove("plc");
    await waitFor(() => qualities().every((q) => q === Quality.Bad_OutOfService), "every tag Bad_OutOfService", 2_000);
  });

  it("marks every tag Bad_NoCommunication when the manager stops (gateway shutdown)", async () => {
    await waitFor(() => qualities().every((q) => q !== undefined && isGood(q)), "every tag Good");
    await mgr.stop();
    await waitFor(() => qualities().every((q) => q === Quality.Bad_NoCommunication), "every tag Bad_NoCommunication", 2_000);
  });
});
