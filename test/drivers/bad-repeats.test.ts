// A tag's Bad frame is news when its quality (the reason) changes, not at every retry: the table alone
// (drivers/bad-repeats.ts), then a real Modbus PLC in its own process killed (SIGKILL) while the driver
// restarts with a short backoff, with report by exception off (the catalog's default, on, hid the
// repeats in the mapping layer; off, every retry logged every tag Bad again).
import { afterEach, beforeEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { BadRepeats } from "../../drivers/bad-repeats.ts";
import { builtinDrivers, DriverManager, EndpointPool, parseEndpointUrl } from "../../drivers/index.ts";
import { isBad, isGood, Quality, Variable, type DataFrame, type Logged } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";
import { ModbusDevice } from "../helpers/modbus-device.ts";

setDefaultTimeout(30_000);

const variable = (name: string, extra: Record<string, unknown> = {}): Variable =>
  TypeValue.Default(Variable, { tag: name, driver: "plc", type: "uint16", access: "R", address: { area: "holding", address: Number(name.slice(-1)) }, ...extra }) as Variable;
const frame = (tag: string, quality: number, value: DataFrame["value"] = null): DataFrame => ({ kind: "data", tag, value, ts: 0, quality, source: "plc" });

describe("BadRepeats", () => {
  it("drops a Bad frame repeating the tag's logged quality and keeps one with another reason", () => {
    const r = new BadRepeats([variable("t0"), variable("t1")]);
    r.note([frame("t0", Quality.Bad_CommunicationError)], 1000);
    const out = r.drop([frame("t0", Quality.Bad_CommunicationError), frame("t1", Quality.Bad_CommunicationError), frame("t0", Quality.Bad_Timeout)], 1100);
    expect(out.map((f) => [f.tag, f.quality])).toEqual([
      ["t1", Quality.Bad_CommunicationError],
      ["t0", Quality.Bad_Timeout],
    ]);
  });

  it("keeps the next Bad frame after a Good one, and returns the same array when nothing is dropped", () => {
    const r = new BadRepeats([variable("t0")]);
    r.note([frame("t0", Quality.Bad_CommunicationError)], 1000);
    r.note([frame("t0", Quality.Good, 5)], 1010);
    const frames = [frame("t0", Quality.Bad_CommunicationError)];
    expect(r.drop(frames, 1020)).toBe(frames);
  });

  it("lets a repeat through once the tag's maxIntervalMs has passed, and never with maxIntervalMs 0", () => {
    const r = new BadRepeats([variable("t0", { maxIntervalMs: 500 }), variable("t1", { maxIntervalMs: 0 })]);
    r.note([frame("t0", Quality.Bad_Timeout), frame("t1", Quality.Bad_Timeout)], 1000);
    expect(r.drop([frame("t0", Quality.Bad_Timeout), frame("t1", Quality.Bad_Timeout)], 1499)).toEqual([]);
    expect(r.drop([frame("t0", Quality.Bad_Timeout), frame("t1", Quality.Bad_Timeout)], 1500).map((f) => f.tag)).toEqual(["t0"]);
    expect(r.drop([frame("t1", Quality.Bad_Timeout)], 1_000_000)).toEqual([]);
  });
});

describe("Modbus PLC off through backoff retries", () => {
  let dir: ReturnType<typeof tempDir>;
  let log: EventLog;
  let mgr: DriverManager;
  let device: ModbusDevice;
  let backoffs = 0;

  beforeEach(async () => {
    dir = tempDir();
    log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
    device = new ModbusDevice(await freePort());
    await device.start();
    mgr = new DriverManager({ log, factories: builtinDrivers, settings: { backoffBaseMs: 50, backoffMaxMs: 100, faultAfterCrashes: 1000, watchdogMs: 0 } });
    backoffs = 0;
    mgr.on("state", (_id: string, state: string) => {
      if (state === "Backoff") backoffs++;
    });
  });

  afterEach(async () => {
    await mgr.stop();
    await device.kill();
    await log.close();
    dir.cleanup();
  });

  function start(tags: Variable[]): void {
    const endpoint = { ...parseEndpointUrl(`tcp://127.0.0.1:${device.port}`), id: "plc", timeoutMs: 200, pool: new EndpointPool() };
    mgr.add({ id: "plc", type: "modbus", enabled: true, config: { intervalMs: 20 } }, endpoint, tags);
  }
  async function badFramesOf(tag: string, from: number): Promise<Logged<DataFrame>[]> {
    const out: Logged<DataFrame>[] = [];
    for await (const f of log.read({ from, kinds: ["data"] })) if (f.kind === "data" && f.tag === tag && isBad(f.quality)) out.push(f as Logged<DataFrame>);
    return out;
  }
  async function killWhenGood(tags: Variable[]): Promise<number> {
    await waitFor(() => tags.every((t) => isGood(log.latest().get(t.tag)?.quality ?? Quality.Bad)), "every tag Good from the live PLC");
    const from = log.head + 1;
    device.signal("SIGKILL");
    return from;
  }

  it("logs each tag's Bad_CommunicationError once over 6 restarts of the driver with report by exception off", async () => {
    const tags = [0, 1, 2].map((i) => variable(`plc/t${i}`, { reportByException: false }));
    start(tags);
    const from = await killWhenGood(tags);
    await waitFor(() => backoffs >= 6, "6 restarts of the driver while the PLC is off");
    await log.append([]); // resolves once every frame appended before it is committed
    for (const t of tags) {
      // a request in flight at the kill may time out first (Bad_Timeout): a change of reason, logged
      const bad = (await badFramesOf(t.tag, from)).map((f) => f.quality);
      expect(bad.filter((q) => q === Quality.Bad_CommunicationError)).toHaveLength(1);
      expect(bad.filter((q) => q !== Quality.Bad_CommunicationError)).toEqual(bad.length === 2 ? [Quality.Bad_Timeout] : []);
    }
  });

  it("logs a tag that stays Bad again no sooner than its maxIntervalMs (the heartbeat)", async () => {
    const tags = [variable("plc/t0", { reportByException: false, maxIntervalMs: 400 })];
    start(tags);
    const from = await killWhenGood(tags);
    // the request in flight at the kill times out (Bad_Timeout), then connecting fails (Bad_CommunicationError)
    const bad = await waitFor(async () => {
      const frames = await badFramesOf("plc/t0", from);
      return frames.filter((f) => f.quality === Quality.Bad_CommunicationError).length >= 3 && frames;
    }, "three Bad_CommunicationError frames of the tag (the first and two heartbeats)");
    // the manager stamps and compares in the same millisecond as the driver's frame (a few ms of slack)
    for (let i = 1; i < bad.length; i++) if (bad[i]!.quality === bad[i - 1]!.quality) expect(bad[i]!.ts - bad[i - 1]!.ts).toBeGreaterThanOrEqual(390_000);
    expect(backoffs).toBeGreaterThanOrEqual(4); // retries in between were not logged
  });
});
