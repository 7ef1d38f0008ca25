// The Modbus driver against a real Modbus TCP server on loopback (the demo PLC with its simulation
// off), through the driver manager into a real event log.
import { afterEach, beforeEach, describe, expect, it, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { builtinDrivers, DriverManager, EndpointPool, parseEndpointUrl, type Driver, type Endpoint } from "../../../drivers/index.ts";
import { Quality, Variable, type CmdFrame, type DataType, type DriverEntry, type EventFrame, type Logged, type Value } from "../../../schemas/index.ts";
import type { RegisterLayout } from "../../../schemas/registers.ts";
import { createDemoPlc, type DemoPlc } from "../../../server/demo/plc.ts";
import { EventLog } from "../../../storage/index.ts";
import { freePort, tempDir, waitFor } from "../../helpers/index.ts";

// waits below are generous for a slow shared machine; a test needs far less when all is well
setDefaultTimeout(40_000);

type Area = "coil" | "discrete" | "holding" | "input";
interface Point {
  tag: string;
  type: DataType;
  area: Area;
  address: number;
  layout?: Partial<RegisterLayout>;
  raw: Value;
  expected?: Value;
  extra?: Record<string, unknown>;
}

const points: Point[] = [
  { tag: "p/int16", type: "int16", area: "holding", address: 0, raw: -1234 },
  { tag: "p/uint16", type: "uint16", area: "holding", address: 1, raw: 65000 },
  { tag: "p/int32-cdab", type: "int32", area: "holding", address: 2, layout: { wordOrder: "LE" }, raw: -123456789 },
  { tag: "p/uint32", type: "uint32", area: "holding", address: 4, raw: 4000000000 },
  { tag: "p/int64", type: "int64", area: "holding", address: 6, raw: -9007199254740993n },
  { tag: "p/uint64-le", type: "uint64", area: "holding", address: 10, layout: { wordOrder: "LE", byteOrder: "LE" }, raw: 18446744073709551615n },
  { tag: "p/float32", type: "float32", area: "holding", address: 14, raw: 21.5 },
  { tag: "p/float32-cdab", type: "float32", area: "holding", address: 16, layout: { wordOrder: "LE" }, raw: -3.25 },
  { tag: "p/float64", type: "float64", area: "holding", address: 18, raw: Math.PI },
  { tag: "p/string", type: "string", area: "holding", address: 22, layout: { length: 4 }, raw: "PUMP-7" },
  { tag: "p/scaled", type: "int16", area: "holding", address: 26, raw: 215, expected: 21.5, extra: { scale: 0.1 } },
  { tag: "p/status", type: "uint16", area: "input", address: 0, raw: 0b101 },
  { tag: "p/status-bit2", type: "bool", area: "input", address: 0, layout: { bit: 2 }, raw: true },
  { tag: "p/input-float", type: "float32", area: "input", address: 3, raw: 1.5 },
  { tag: "p/coil", type: "bool", area: "coil", address: 3, raw: true },
  { tag: "p/coil-off", type: "bool", area: "coil", address: 4, raw: false },
  { tag: "p/discrete", type: "bool", area: "discrete", address: 7, raw: true },
];

const variable = (p: Point, driver: string, group = "default", access = "R"): Variable =>
  TypeValue.Default(Variable, {
    tag: p.tag,
    driver,
    type: p.type,
    group,
    access,
    address: { area: p.area, address: p.address, ...p.layout },
    ...p.extra,
  }) as Variable;

let dir: ReturnType<typeof tempDir>;
let log: EventLog;
let plc: DemoPlc;
let mgr: DriverManager;
let pool: EndpointPool;

beforeEach(async () => {
  dir = tempDir();
  log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
  plc = createDemoPlc({ simulate: false, size: 1000 });
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

const endpointOf = (port: number, timeoutMs = 500): Endpoint => ({ ...parseEndpointUrl(`tcp://127.0.0.1:${port}`), id: "ep", timeoutMs, pool });
const entry = (id: string, config: Record<string, unknown> = {}): DriverEntry => ({ id, type: "modbus", enabled: true, endpoint: "ep", config: { intervalMs: 20, ...config } });
const latest = (tag: string) => log.latest().get(tag);

async function events(type: string): Promise<Logged<EventFrame>[]> {
  const out: Logged<EventFrame>[] = [];
  for await (const f of log.read({ from: 1, kinds: ["event"] })) if ((f as EventFrame).type === type) out.push(f as Logged<EventFrame>);
  return out;
}

function cmd(tag: string, value: Value): CmdFrame {
  const now = Date.now() * 1000;
  return { kind: "cmd", id: crypto.randomUUID(), tag, value, origin: "rest", actor: "test", tenant: "default", ts: now, expiresAt: now + 30e6 };
}

describe("Modbus driver", () => {
  it("logs values equal to the server's registers for every type and order", async () => {
    for (const p of points) plc.set(p.area, p.address, { type: p.type, ...p.layout }, p.raw);
    mgr.add(entry("plc"), endpointOf(plc.port), points.map((p) => variable(p, "plc")));
    for (const p of points) {
      const f = await waitFor(() => latest(p.tag), `a frame of ${p.tag}`, 15_000);
      expect({ tag: p.tag, value: f.value, quality: f.quality }).toEqual({ tag: p.tag, value: p.expected ?? p.raw, quality: Quality.Good });
    }
    // and they follow the registers when they change
    plc.set("holding", 14, { type: "float32" }, 99.25);
    await waitFor(() => latest("p/float32")?.value === 99.25, "the new float32 value", 10_000);
  });

  it("gives Bad_ConfigurationError frames (the map is wrong, not no-such-node) for exactly the tags of a read that gets exception 2, while other groups stay Good", async () => {
    const good = variable(points[0]!, "plc", "good");
    const beyond = [
      variable({ tag: "x/missing-a", type: "int16", area: "holding", address: 2000, raw: 0 }, "plc", "bad"),
      variable({ tag: "x/missing-b", type: "float32", area: "holding", address: 2001, raw: 0 }, "plc", "bad"),
    ];
    plc.set("holding", 0, { type: "int16" }, 42);
    mgr.add(entry("plc", { groups: { good: 20, bad: 20 } }), endpointOf(plc.port), [good, ...beyond]);
    for (const t of beyond) {
      const f = await waitFor(() => latest(t.tag), `a frame of ${t.tag}`, 15_000);
      expect(f.quality).toBe(Quality.Bad_ConfigurationError);
      expect(f.value).toBeNull();
    }
    const head = log.head;
    plc.set("holding", 0, { type: "int16" }, 43);
    await waitFor(() => latest(good.tag)?.value === 43 && latest(good.tag)!.offset > head, "the good group polling on", 10_000);
    expect(latest(good.tag)!.quality).toBe(Quality.Good);
    const ev = await waitFor(async () => (await events("modbus.exception"))[0], "a modbus.exception event", 10_000);
    expect(ev.data).toEqual({ code: 2, unitId: 1, area: "holding", address: 2000, count: 3 });
    // a lasting failure is logged once per tag, not at every poll
    const bad = [];
    for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === "x/missing-a") bad.push(f);
    expect(bad).toHaveLength(1);
    expect(mgr.status()[0]!.restarts).toBe(0);
  });

  it("gives Bad_CommunicationError frames for an unreachable device and restarts with backoff without crashing", async () => {
    const port = await freePort(); // nothing listens there
    const t = variable(points[0]!, "dead");
    const states: string[] = [];
    mgr.on("state", (id: string, s: string) => id === "dead" && states.push(s));
    mgr.add(entry("dead", { failuresBeforeRestart: 2 }), endpointOf(port), [t]);
    const f = await waitFor(() => latest(t.tag), "a frame of the unreachable tag", 15_000);
    expect(f.quality).toBe(Quality.Bad_CommunicationError);
    await waitFor(() => mgr.status()[0]!.restarts >= 2, "two restarts", 15_000);
    expect(states).toContain("Backoff");
    const ev = await events("driver.state");
    expect(ev.some((e) => e.source === "dead" && e.data?.state === "Backoff" && String(e.data?.error).includes("connection failed"))).toBe(true);
  });

  it("recovers by itself when the device comes back on the same port", async () => {
    const port = await freePort();
    const t = variable(points[0]!, "late");
    mgr.add(entry("late"), endpointOf(port), [t]);
    await waitFor(() => latest(t.tag)?.quality === Quality.Bad_CommunicationError, "Bad while the device is down", 15_000);
    const late = createDemoPlc({ simulate: false, port });
    late.set("holding", 0, { type: "int16" }, 7);
    await late.start();
    try {
      await waitFor(() => latest(t.tag)?.quality === Quality.Good && latest(t.tag)?.value === 7, "Good after the device came up", 15_000);
      // and again after the device drops every connection
      late.server.dropConnections();
      late.set("holding", 0, { type: "int16" }, 8);
      await waitFor(() => latest(t.tag)?.value === 8, "values after a dropped connection", 15_000);
    } finally {
      await mgr.stop();
      await late.stop();
    }
  });

  it("shares one connection between two drivers on one URL", async () => {
    const a = variable(points[0]!, "a");
    const b = variable(points[1]!, "b");
    plc.set("holding", 0, { type: "int16" }, 1);
    plc.set("holding", 1, { type: "uint16" }, 2);
    mgr.add(entry("a"), endpointOf(plc.port), [a]);
    mgr.add(entry("b", { unitId: 5 }), endpointOf(plc.port), [b]);
    await waitFor(() => latest(a.tag) && latest(b.tag), "frames of both drivers", 15_000);
    const before = plc.server.requests;
    await waitFor(() => plc.server.requests > before + 10, "both polling", 10_000);
    expect(plc.server.connections).toBe(1);
    expect(pool.size).toBe(1);
    await mgr.remove("a");
    expect(plc.server.connections).toBe(1); // b still holds it
    await mgr.remove("b");
    await waitFor(() => plc.server.connections === 0, "the connection closed after the last driver left", 10_000);
  });

  describe("writes", () => {
    const rw = (p: Point) => variable(p, "plc", "default", "RW");
    let driver: Driver;
    const setpoints = {
      scaled: rw({ tag: "w/scaled", type: "int16", area: "holding", address: 0, raw: 0, extra: { scale: 0.1 } }),
      cdab: rw({ tag: "w/cdab", type: "float32", area: "holding", address: 2, layout: { wordOrder: "LE" }, raw: 0 }),
      u64: rw({ tag: "w/u64", type: "uint64", area: "holding", address: 4, raw: 0 }),
      bit: rw({ tag: "w/bit", type: "bool", area: "holding", address: 8, layout: { bit: 4 }, raw: 0 }),
      coil: rw({ tag: "w/coil", type: "bool", area: "coil", address: 2, raw: 0 }),
      text: rw({ tag: "w/text", type: "string", area: "holding", address: 10, layout: { length: 3 }, raw: 0 }),
      missing: rw({ tag: "w/missing", type: "int16", area: "holding", address: 1500, raw: 0 }),
      input: variable({ tag: "w/input", type: "int16", area: "input", address: 0, raw: 0 }, "plc"),
    };
    beforeEach(async () => {
      mgr.add(entry("plc", { groups: { never: 60_000 } }), endpointOf(plc.port), Object.values(setpoints).map((t) => ({ ...t, group: "never" })));
      driver = await waitFor(() => mgr.driver("plc")?.state === "Active" && mgr.driver("plc")!.driver, "the driver active", 15_000);
    });

    it("writes a scaled int16 as raw counts (FC6)", async () => {
      expect(await driver.write!(cmd("w/scaled", 21.5), setpoints.scaled)).toEqual({ ok: true });
      expect(plc.get("holding", 0, { type: "int16" })).toBe(215);
    });

    it("writes a float32 in CDAB word order (FC16)", async () => {
      expect(await driver.write!(cmd("w/cdab", 1.0), setpoints.cdab)).toEqual({ ok: true });
      expect([...plc.server.holding.subarray(2, 4)]).toEqual([0x0000, 0x3f80]);
    });

    it("writes a uint64 beyond 2^53 exactly", async () => {
      expect(await driver.write!(cmd("w/u64", 18446744073709551615n), setpoints.u64)).toEqual({ ok: true });
      expect(plc.get("holding", 4, { type: "uint64" })).toBe(18446744073709551615n);
    });

    it("sets one bit of a holding register and keeps the others", async () => {
      plc.server.holding[8] = 0x8001;
      expect(await driver.write!(cmd("w/bit", true), setpoints.bit)).toEqual({ ok: true });
      expect(plc.server.holding[8]).toBe(0x8011);
      expect(await driver.write!(cmd("w/bit", false), setpoints.bit)).toEqual({ ok: true });
      expect(plc.server.holding[8]).toBe(0x8001);
    });

    it("switches a coil on and off (FC5)", async () => {
      expect(await driver.write!(cmd("w/coil", true), setpoints.coil)).toEqual({ ok: true });
      expect(plc.get("coil", 2, { type: "bool" })).toBe(true);
      expect(await driver.write!(cmd("w/coil", false), setpoints.coil)).toEqual({ ok: true });
      expect(plc.get("coil", 2, { type: "bool" })).toBe(false);
    });

    it("writes a string", async () => {
      expect(await driver.write!(cmd("w/text", "AB12"), setpoints.text)).toEqual({ ok: true });
      expect(plc.get("holding", 10, { type: "string", length: 3 })).toBe("AB12");
    });

    it("answers a write the device refuses with the Modbus exception and its ack code", async () => {
      expect(await driver.write!(cmd("w/missing", 1), setpoints.missing)).toEqual({ ok: false, code: "device_address_error", error: "Modbus exception 2 (illegal data address)" });
    });

    it("refuses a value that does not fit the type and a write to an input register", async () => {
      const r = await driver.write!(cmd("w/scaled", 5000), setpoints.scaled);
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/not a int16/);
      expect(await driver.write!(cmd("w/input", 1), setpoints.input)).toEqual({ ok: false, code: "refused_not_writable", error: "input 0 is read-only" });
    });
  });
});
