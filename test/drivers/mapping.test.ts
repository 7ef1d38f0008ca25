// The mapping layer (drivers/mapping.ts, applied by the manager to every driver's frames) on values
// polled from a real Modbus TCP server on loopback: expressions, clamping, report by exception with its
// heartbeat, deadbands against an oscillating value, and an expression error isolated to its tag.
import { afterEach, beforeEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { builtinDrivers, DriverManager, EndpointPool, parseEndpointUrl, type Endpoint } from "../../drivers/index.ts";
import { LIMIT_HIGH, LIMIT_LOW, MappingTable } from "../../drivers/mapping.ts";
import { AlarmRequest, Quality, Variable, type DataFrame, type DriverEntry, type EventFrame, type Logged } from "../../schemas/index.ts";
import { createDemoPlc, type DemoPlc } from "../../server/demo/plc.ts";
import { EventLog } from "../../storage/index.ts";
import { tempDir, waitFor } from "../helpers/index.ts";

setDefaultTimeout(30_000);

let dir: ReturnType<typeof tempDir>;
let log: EventLog;
let plc: DemoPlc;
let mgr: DriverManager;
let pool: EndpointPool;

beforeEach(async () => {
  dir = tempDir();
  log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
  plc = createDemoPlc({ simulate: false, size: 100 });
  await plc.start();
  pool = new EndpointPool();
  mgr = new DriverManager({ log, factories: builtinDrivers, settings: { backoffBaseMs: 50, backoffMaxMs: 200, faultAfterCrashes: 1000, watchdogMs: 0 } });
});

afterEach(async () => {
  await mgr.stop();
  await plc.stop();
  await log.close();
  dir.cleanup();
});

/** A holding-register int16 tag of driver "plc" as variables.yml would give it (schema defaults applied). */
const tag = (name: string, address: number, extra: Record<string, unknown> = {}): Variable =>
  TypeValue.Default(Variable, { tag: name, driver: "plc", type: "int16", address: { area: "holding", address }, ...extra }) as Variable;
const endpoint = (): Endpoint => ({ ...parseEndpointUrl(`tcp://127.0.0.1:${plc.port}`), id: "ep", timeoutMs: 500, pool });
const entry: DriverEntry = { id: "plc", type: "modbus", enabled: true, endpoint: "ep", config: { intervalMs: 20 } };
const setRaw = (address: number, value: number) => plc.set("holding", address, { type: "int16" }, value);

async function framesOf(name: string): Promise<Logged<DataFrame>[]> {
  const out: Logged<DataFrame>[] = [];
  for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === name) out.push(f as Logged<DataFrame>);
  return out;
}
async function eventsOf(type: string): Promise<Logged<EventFrame>[]> {
  const out: Logged<EventFrame>[] = [];
  for await (const f of log.read({ from: 1, kinds: ["event"] })) if ((f as EventFrame).type === type) out.push(f as Logged<EventFrame>);
  return out;
}
const latest = (name: string) => log.latest().get(name);

describe("mapping on polled Modbus values", () => {
  it("computes an expression over the raw register and holds a clamped value at max as Uncertain_EngineeringUnitsExceeded", async () => {
    setRaw(0, 650);
    setRaw(1, 2000);
    setRaw(2, -50);
    mgr.add(entry, endpoint(), [
      tag("t/temp", 0, { expr: "raw * 0.1 - 40", unit: "°C" }),
      tag("t/level", 1, { scale: 0.1, clamp: true, min: 0, max: 100 }),
      tag("t/flow", 2, { clamp: true, min: 0 }),
    ]);
    const temp = await waitFor(() => latest("t/temp"), "t/temp", 10_000);
    expect(temp.value).toBeCloseTo(25);
    expect(temp.quality).toBe(Quality.Good);
    const level = await waitFor(() => latest("t/level"), "t/level", 10_000);
    expect({ value: level.value, quality: level.quality }).toEqual({ value: 100, quality: (Quality.Uncertain_EngineeringUnitsExceeded | LIMIT_HIGH) >>> 0 });
    const flow = await waitFor(() => latest("t/flow"), "t/flow", 10_000);
    expect({ value: flow.value, quality: flow.quality }).toEqual({ value: 0, quality: (Quality.Uncertain_EngineeringUnitsExceeded | LIMIT_LOW) >>> 0 });
    // back in range: Good again, and the expression follows the register
    setRaw(1, 500);
    setRaw(0, 700);
    await waitFor(() => latest("t/level")?.quality === Quality.Good && latest("t/level")?.value === 50, "t/level back in range", 10_000);
    await waitFor(() => latest("t/temp")?.value === 30, "t/temp following the register", 10_000);
  });

  it("logs an unchanged reading once, then again at each heartbeat, while a tag without report by exception logs every poll", async () => {
    setRaw(0, 7);
    setRaw(1, 7);
    mgr.add(entry, endpoint(), [tag("t/rbe", 0, { maxIntervalMs: 400 }), tag("t/every", 1, { reportByException: false })]);
    // 60 polls of the unfiltered tag take at least 1.2 s: three heartbeat periods of the other one
    await waitFor(async () => (await framesOf("t/every")).length >= 60, "60 polls", 20_000);
    const rbe = await framesOf("t/rbe");
    const every = await framesOf("t/every");
    expect(rbe.length).toBeGreaterThanOrEqual(2); // the first reading and at least one heartbeat
    expect(rbe.length).toBeLessThan(every.length / 4);
    for (let i = 1; i < rbe.length; i++) expect(rbe[i]!.ts - rbe[i - 1]!.ts).toBeGreaterThanOrEqual(380_000); // µs: no frame before its heartbeat
    // a change passes at once, not at the next heartbeat
    const head = log.head;
    setRaw(0, 8);
    await waitFor(() => latest("t/rbe")?.value === 8 && latest("t/rbe")!.offset > head, "the change", 5_000);
  });

  it("does not flap with a value oscillating across a threshold inside the deadband, and logs a real step", async () => {
    setRaw(0, 499);
    setRaw(1, 499);
    mgr.add(entry, endpoint(), [
      tag("t/abs", 0, { expr: "raw / 10", deadband: 0.5, maxIntervalMs: 0 }),
      tag("t/pct", 1, { scale: 0.1, deadbandPercent: 1, min: 0, max: 100, maxIntervalMs: 0 }),
      tag("t/polls", 2, { reportByException: false }), // counts the polls
    ]);
    await waitFor(() => latest("t/abs") && latest("t/pct"), "first readings", 10_000);
    // 49.9 <-> 50.1 around a 50.0 threshold, faster than the poll, for 40 polls
    let high = false;
    const osc = setInterval(() => {
      high = !high;
      setRaw(0, high ? 501 : 499);
      setRaw(1, high ? 501 : 499);
    }, 7);
    try {
      const polls = (await framesOf("t/polls")).length;
      await waitFor(async () => (await framesOf("t/polls")).length >= polls + 40, "40 polls of oscillation", 10_000);
      expect((await framesOf("t/abs")).length).toBe(1);
      expect((await framesOf("t/pct")).length).toBe(1);
    } finally {
      clearInterval(osc);
    }
    setRaw(0, 560);
    setRaw(1, 560);
    await waitFor(() => latest("t/abs")?.value === 56 && latest("t/pct")?.value === 56, "the step past the deadband", 5_000);
    expect((await framesOf("t/abs")).length).toBe(2);
  });

  it("gives only the failing tag a Bad_ConfigurationError frame and one mapping.error event, and mapping.recovered when it computes again", async () => {
    setRaw(0, 5);
    setRaw(1, 100);
    mgr.add(entry, endpoint(), [tag("t/ratio", 0, { expr: "1000 / (raw - 5)" }), tag("t/other", 1, { expr: "raw * 2" })]);
    const bad = await waitFor(() => latest("t/ratio"), "t/ratio", 10_000);
    expect({ value: bad.value, quality: bad.quality }).toEqual({ value: null, quality: Quality.Bad_ConfigurationError });
    // the other tag keeps polling and following its register
    setRaw(1, 101);
    await waitFor(() => latest("t/other")?.value === 202, "t/other polling on", 10_000);
    const errors = await eventsOf(AlarmRequest.MappingError);
    expect(errors).toHaveLength(1); // once per transition, not per poll
    expect(errors[0]!.tag).toBe("t/ratio");
    expect(String(errors[0]!.data?.error)).toContain("division by zero");
    expect(await framesOf("t/ratio")).toHaveLength(1); // repeated Bad readings add nothing
    setRaw(0, 15);
    await waitFor(() => latest("t/ratio")?.value === 100, "t/ratio computing again", 10_000);
    const recovered = await waitFor(async () => (await eventsOf(AlarmRequest.MappingRecovered))[0], "mapping.recovered", 5_000);
    expect(recovered.tag).toBe("t/ratio");
    expect(latest("t/ratio")!.quality).toBe(Quality.Good);
    expect(mgr.status()[0]!.restarts).toBe(0);
  });
});

describe("mapping table", () => {
  const frame = (value: number | null, quality = 0): DataFrame => ({ kind: "data", tag: "x", value, ts: 1, quality, source: "d" });
  const table = (extra: Record<string, unknown>) => new MappingTable([tag("x", 0, extra)], { failed: () => {}, recovered: () => {} });

  it("lets a quality change through even when the value is the same", () => {
    const t = table({ deadband: 10 });
    expect(t.apply([frame(5)], 0)).toHaveLength(1);
    expect(t.apply([frame(5)], 1)).toHaveLength(0);
    expect(t.apply([frame(5, Quality.Uncertain_LastUsableValue)], 2)).toHaveLength(1);
    t.noteLogged("x", null, Quality.Bad_CommunicationError, 3); // the manager marked the tag Bad
    expect(t.apply([frame(5)], 4)).toHaveLength(1);
  });

  it("logs a NaN reading once, and the steps into and out of NaN also with a deadband", () => {
    for (const extra of [{}, { deadband: 1 }, { deadbandPercent: 10 }]) {
      const t = table(extra);
      expect(t.apply([frame(5)], 0)).toHaveLength(1);
      expect(t.apply([frame(NaN)], 1)).toHaveLength(1);
      expect(t.apply([frame(NaN)], 2)).toHaveLength(0);
      expect(t.apply([frame(NaN)], 3)).toHaveLength(0);
      expect(t.apply([frame(5)], 4)).toHaveLength(1);
      expect(t.apply([frame(Infinity)], 5)).toHaveLength(1);
      expect(t.apply([frame(Infinity)], 6)).toHaveLength(0);
      expect(t.apply([frame(-Infinity)], 7)).toHaveLength(1);
    }
  });

  it("takes deadbandPercent of the last logged value when the tag has no range", () => {
    const t = table({ deadbandPercent: 10 });
    expect(t.apply([frame(200)], 0)).toHaveLength(1);
    expect(t.apply([frame(215)], 1)).toHaveLength(0); // 7.5 % of 200
    expect(t.apply([frame(221)], 2)).toHaveLength(1); // 10.5 %
  });
});
