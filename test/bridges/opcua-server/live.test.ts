// The OPC UA server bridge on its own log (no drivers): a real node-opcua client over loopback while the
// test appends readings, edits the catalog, fails log reads and answers commands with chosen ack codes.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import {
  AttributeIds,
  ClientMonitoredItem,
  ClientSubscription,
  DataType,
  TimestampsToReturn,
  type ClientSession,
  type DataValue,
} from "node-opcua";
import pino from "pino";
import { Registry } from "prom-client";
import { createOpcuaServer, type OpcuaServerBridge } from "../../../bridges/opcua-server/index.ts";
import { ACK_CODES, type AckCode } from "../../../schemas/acks.ts";
import { Catalog, type CmdFrame, type Logged, type Variable } from "../../../schemas/index.ts";
import { CommandBus } from "../../../storage/commands.ts";
import { EventLog } from "../../../storage/index.ts";
import { failLogReads } from "../../helpers/faults.ts";
import { freePort, tempDir, waitFor } from "../../helpers/index.ts";
import { connect, type UaConnection } from "./helpers.ts";
import { statusOfAck } from "../../../bridges/opcua-server/writes.ts";

const ns = "ns=1;s=";
const operator = { name: "operator", password: "op-secret" };
/** OPC 10000-8 §5.6.3: the UNECE common code's characters packed into an Int32 ("CEL" -> 0x43454C) */
const commonCodeToUInt = (code: string) => [...code].reduce((n, c) => (n << 8) | c.charCodeAt(0), 0);
const tag = (t: Partial<Variable> & Pick<Variable, "tag" | "type">): Variable => ({ driver: "src", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "default", ...t });
const TAGS: Variable[] = [
  tag({ tag: "line/temp", type: "float64", unit: "degC", description: "Line temperature", min: 0, max: 100 }),
  tag({ tag: "line/level", type: "int16", scale: 0.1, unit: "%", access: "RW", min: 0, max: 100 }),
  tag({ tag: "line/odd", type: "float64", unit: "furlong/fortnight" }),
  tag({ tag: "line/count", type: "int32" }),
];

const dir = tempDir("edge-opcua-live-");
let log: EventLog;
let commands: CommandBus;
let catalog: Catalog;
let bridge: OpcuaServerBridge;
const registry = new Registry();
const conns: UaConnection[] = [];
/** the ack the fake driver gives to every command (null: no answer) */
let ackCode: AckCode | null = "ok";

async function open(user?: typeof operator): Promise<ClientSession> {
  const c = await connect(bridge.endpointUrl, { pkiDir: join(dir.path, "client-pki"), user });
  conns.push(c);
  return c.session;
}

const append = (name: string, value: number) => log.append([{ kind: "data", tag: name, value, ts: Date.now() * 1000, quality: 0, source: "src" }]);
const read = (s: ClientSession, nodeId: string, attributeId = AttributeIds.Value) => s.read({ nodeId, attributeId });
async function propertyId(s: ClientSession, name: string, property: string): Promise<string> {
  const path = await s.translateBrowsePath({ startingNode: ns + name, relativePath: { elements: [{ targetName: { name: property } }] } as never });
  return path.targets![0]!.targetId.toString(); // the property exists: asserted by the callers through the read
}

beforeAll(async () => {
  log = await EventLog.open({ path: join(dir.path, "data", "log.duckdb") });
  commands = new CommandBus(log);
  commands.start();
  // a stand-in for the executor: every command gets the ack code the test chose
  commands.on("command", (c: Logged<CmdFrame>) => {
    const code = ackCode;
    if (!code) return;
    void log.append([{ kind: "ack", cmd: c.id, tag: c.tag, ok: code === "ok", status: code === "ok" ? "ok" : "error", code, ts: Date.now() * 1000, source: "src" }]);
  });
  catalog = new Catalog(TAGS);
  const passwordHash = await Bun.password.hash(operator.password, { algorithm: "bcrypt", cost: 4 });
  bridge = createOpcuaServer({
    config: {
      gateway: {
        opcua: { port: await freePort(), hostname: "127.0.0.1", allowAnonymous: true, writeTimeoutMs: 600, users: [{ name: operator.name, passwordHash, rights: ["read", "write"] }] },
        dataDir: join(dir.path, "data"),
        gatewayId: "test",
      },
    },
    log, catalog, commands, logger: pino({ level: "silent" }), metrics: { registry },
  });
  await bridge.start();
}, 30_000);

afterEach(async () => {
  ackCode = "ok";
  for (const c of conns.splice(0)) await c.close().catch(() => undefined);
});

afterAll(async () => {
  await bridge?.stop();
  await commands?.stop();
  await log?.close();
  dir.cleanup();
});

/** A monitored item on the tag's value; resolves once the server has created it and sent its first value. */
async function monitor(s: ClientSession, name: string) {
  const sub = ClientSubscription.create(s, { requestedPublishingInterval: 50, requestedMaxKeepAliveCount: 20, requestedLifetimeCount: 200, publishingEnabled: true, maxNotificationsPerPublish: 1000 });
  const seen: DataValue[] = [];
  const item = ClientMonitoredItem.create(sub, { nodeId: ns + name, attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 100, discardOldest: true }, TimestampsToReturn.Both);
  item.on("changed", (dv: DataValue) => seen.push(dv));
  await waitFor(() => seen.length > 0, `the first notification of ${name}`);
  return { seen, values: () => seen.map((d) => d.value.value as number), statuses: () => seen.map((d) => d.statusCode.name), terminate: () => sub.terminate() };
}

describe("opcua server on the log consumer", () => {
  it("keeps delivering value changes to a subscription after a log read fails", async () => {
    const s = await open();
    const m = await monitor(s, "line/count");
    await append("line/count", 1);
    await waitFor(() => m.values().includes(1), "the first value");
    const fault = failLogReads(log, 1, (o) => o.kinds?.length === 1 && o.kinds[0] === "data");
    try {
      await append("line/count", 2);
      await waitFor(() => fault.thrown === 1, "the injected read failure");
    } finally {
      fault.restore();
    }
    for (const v of [3, 4, 5]) await append("line/count", v);
    await waitFor(() => m.values().includes(5), "values after the failure", 5000);
    // the frame whose read failed is read again: nothing lost, nothing twice
    expect(m.values().filter((v) => v >= 2)).toEqual([2, 3, 4, 5]);
    const st = bridge.status();
    expect(st.consumer).toMatchObject({ state: "running", errors: 1 });
    expect(log.consumers().map((c) => c.name)).toContain("opcua-server");
    await m.terminate();
  }, 20_000);

  it("reports sessions, subscriptions and the consumer in status() and in /metrics", async () => {
    const s = await open();
    const m = await monitor(s, "line/temp");
    await waitFor(() => bridge.status().subscriptions === 1, "one subscription");
    const st = bridge.status();
    expect(st).toMatchObject({ state: "ok", sessions: 1, subscriptions: 1, sessionsRefused: 0, consumer: { state: "running", lagFrames: 0 } });
    const text = await registry.metrics();
    expect(text).toContain("edge_opcua_sessions 1");
    expect(text).toContain("edge_opcua_subscriptions 1");
    await m.terminate();
  }, 20_000);
});

describe("opcua server address space", () => {
  it("serves a scaled int16 tag as Double with its fraction, and notifies every change", async () => {
    const s = await open();
    expect((await read(s, ns + "line/level", AttributeIds.DataType)).value.value.value).toBe(DataType.Double);
    const m = await monitor(s, "line/level");
    for (const v of [11.9, 11.8, 11.7]) await append("line/level", v);
    await waitFor(() => m.values().includes(11.7), "11.7 notified");
    expect(m.values().filter((v) => v !== null)).toEqual([11.9, 11.8, 11.7]);
    await m.terminate();
  }, 20_000);

  it("accepts a write in engineering units on a scaled integer tag and records that value", async () => {
    const s = await open(operator);
    const head = log.head;
    const status = await s.write({ nodeId: ns + "line/level", attributeId: AttributeIds.Value, value: { value: { dataType: DataType.Double, value: 42.5 } } });
    expect(status.name).toBe("Good");
    const cmds: CmdFrame[] = [];
    for await (const f of log.read({ from: head + 1, kinds: ["cmd"] })) cmds.push(f as CmdFrame);
    expect(cmds).toMatchObject([{ tag: "line/level", value: 42.5, origin: "opcua", actor: "operator" }]);
  }, 20_000);

  it("keeps a subscription running through an edit of its tag's description and unit", async () => {
    const s = await open();
    const m = await monitor(s, "line/temp");
    await append("line/temp", 20);
    await waitFor(() => m.values().includes(20), "the first value");
    const before = catalog.all();
    const seenBefore = m.seen.length;
    catalog.replace(before.map((t) => (t.tag === "line/temp" ? { ...t, description: "Line temperature (outlet)", unit: "K", max: 400 } : t)));
    try {
      for (const v of [21, 22]) await append("line/temp", v);
      await waitFor(() => m.values().includes(22), "values after the edit", 5000);
      // the current value may be notified once more with the SemanticsChanged bit (OPC 10000-8 §5.3.1)
      expect(m.values().slice(seenBefore).filter((v) => v !== 20)).toEqual([21, 22]);
      expect(m.statuses().slice(seenBefore).every((n) => n.startsWith("Good"))).toBe(true);
      expect((await read(s, ns + "line/temp", AttributeIds.Description)).value.value.text).toBe("Line temperature (outlet)");
      const eu = (await read(s, await propertyId(s, "line/temp", "EngineeringUnits"))).value.value;
      expect({ unitId: eu.unitId, name: eu.displayName.text }).toEqual({ unitId: commonCodeToUInt("KEL"), name: "K" });
      const range = (await read(s, await propertyId(s, "line/temp", "EURange"))).value.value;
      expect({ low: range.low, high: range.high }).toEqual({ low: 0, high: 400 });
    } finally {
      catalog.replace(before);
    }
    await m.terminate();
  }, 20_000);

  it("re-creates a node whose DataType changes: its monitored items end with one BadNodeIdInvalid, a new item gets the new type", async () => {
    const s = await open();
    const m = await monitor(s, "line/count");
    const before = catalog.all();
    const seenBefore = m.seen.length;
    catalog.replace(before.map((t) => (t.tag === "line/count" ? { ...t, type: "float64" } : t)));
    try {
      await append("line/count", 7.5);
      await waitFor(() => m.seen.length > seenBefore, "a notification after the change");
      expect(m.statuses().slice(seenBefore)).toEqual(["BadNodeIdInvalid"]);
      expect((await read(s, ns + "line/count", AttributeIds.DataType)).value.value.value).toBe(DataType.Double);
      const fresh = await monitor(s, "line/count");
      expect(fresh.values()).toEqual([7.5]);
      expect(m.seen.length).toBe(seenBefore + 1); // the old item hears nothing more
      await fresh.terminate();
    } finally {
      catalog.replace(before);
    }
    await m.terminate();
  }, 20_000);

  it("adds read-only EngineeringUnits and EURange to a tag that gets a unit, and drops EngineeringUnits when the unit goes", async () => {
    const s = await open(operator);
    const before = catalog.all();
    const withUnit = (unit?: string) => before.map((t) => (t.tag === "line/count" ? { ...t, unit, max: 50 } : t));
    try {
      catalog.replace(withUnit("kg"));
      const euId = await propertyId(s, "line/count", "EngineeringUnits");
      expect((await read(s, euId)).value.value.unitId).toBe(commonCodeToUInt("KGM"));
      expect((await read(s, await propertyId(s, "line/count", "EURange"))).value.value.high).toBe(50);
      const status = await s.write({ nodeId: euId, attributeId: AttributeIds.Value, value: { value: { dataType: DataType.ExtensionObject, value: (await read(s, euId)).value.value } } });
      expect(status.name).toBe("BadNotWritable");
      catalog.replace(withUnit(undefined));
      expect((await read(s, euId)).statusCode.name).toBe("BadNodeIdUnknown");
    } finally {
      catalog.replace(before);
    }
  }, 20_000);

  it("gives EngineeringUnits the UNECE code as UnitId, and UnitId -1 to a unit it does not know", async () => {
    const s = await open();
    const unit = async (name: string) => (await read(s, await propertyId(s, name, "EngineeringUnits"))).value.value;
    const celsius = await unit("line/temp");
    expect({ unitId: celsius.unitId, name: celsius.displayName.text }).toEqual({ unitId: commonCodeToUInt("CEL"), name: "°C" });
    expect((await unit("line/level")).unitId).toBe(commonCodeToUInt("P1"));
    const odd = await unit("line/odd");
    expect({ unitId: odd.unitId, name: odd.displayName.text }).toEqual({ unitId: -1, name: "furlong/fortnight" });
  }, 20_000);

  it("refuses a write of EURange, from an anonymous session and from an operator", async () => {
    for (const user of [undefined, operator]) {
      const s = await open(user);
      const id = await propertyId(s, "line/temp", "EURange");
      const status = await s.write({ nodeId: id, attributeId: AttributeIds.Value, value: { value: { dataType: DataType.ExtensionObject, value: (await read(s, id)).value.value } } });
      expect(["BadNotWritable", "BadUserAccessDenied"]).toContain(status.name);
    }
  }, 20_000);
});

describe("opcua server writes", () => {
  it("answers a write with the StatusCode of its ack code: an illegal device address is BadConfigurationError", async () => {
    const s = await open(operator);
    const write = () => s.write({ nodeId: ns + "line/level", attributeId: AttributeIds.Value, value: { value: { dataType: DataType.Double, value: 10 } } });
    ackCode = "device_address_error";
    expect((await write()).name).toBe("BadConfigurationError");
    ackCode = "timeout_outcome_unknown";
    expect((await write()).name).toBe("BadTimeout");
    ackCode = "driver_not_running";
    expect((await write()).name).toBe("BadNotConnected");
  }, 20_000);

  it("answers BadTimeout when no ack arrives in time", async () => {
    const s = await open(operator);
    ackCode = null;
    const t0 = performance.now();
    const status = await s.write({ nodeId: ns + "line/level", attributeId: AttributeIds.Value, value: { value: { dataType: DataType.Double, value: 10 } } });
    expect(status.name).toBe("BadTimeout");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(500);
  }, 20_000);

  it("maps every ack code to a StatusCode node-opcua knows", () => {
    for (const code of ACK_CODES) {
      const status = statusOfAck(code);
      expect(`${code}:${code === "internal_error" || status.name !== "BadInternalError"}`).toBe(`${code}:true`);
    }
    expect(statusOfAck("refused_unknown_tag").name).toBe("BadNodeIdUnknown");
    expect(statusOfAck("device_address_error").name).not.toBe("BadNodeIdUnknown");
  });
});
