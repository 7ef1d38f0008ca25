// The built-in OPC UA server end to end: a real node-opcua client over loopback against an
// in-process gateway (simulated sources, the demo PLC over Modbus TCP for writes).
import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import {
  AttributeIds,
  BrowseDirection,
  ClientMonitoredItem,
  ClientSubscription,
  DataType,
  NodeClass,
  StatusCodes,
  TimestampsToReturn,
  type ClientSession,
  type DataValue,
} from "node-opcua";
import { createDemoPlc, type DemoPlc } from "../../../server/demo/plc.ts";
import { Quality } from "../../../schemas/quality.ts";
import type { Logged, CmdFrame, Variable } from "../../../schemas/index.ts";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../../helpers/index.ts";
import { connect, usersYaml, type UaConnection } from "./helpers.ts";

const users = [
  { name: "operator", password: "op-secret", rights: ["read", "write"] },
  { name: "viewer", password: "view-secret", rights: ["read"] },
];
const ns = "ns=1;s=";

let t: TestGateway;
let plc: DemoPlc;
let url: string;
const pki = tempDir("edge-opcua-client-");
const conns: UaConnection[] = [];

async function open(user?: string): Promise<ClientSession> {
  const u = user ? users.find((x) => x.name === user)! : undefined; // test users, defined above
  const c = await connect(url, { pkiDir: pki.path, user: u && { name: u.name, password: u.password } });
  conns.push(c);
  return c.session;
}

beforeAll(async () => {
  plc = createDemoPlc({ simulate: false });
  await plc.start();
  const port = await freePort();
  t = await startGateway({
    "gateway.yml": [
      "opcua:",
      "  enabled: true",
      `  port: ${port}`,
      "  hostname: 127.0.0.1",
      "  allowAnonymous: true",
      "  writeTimeoutMs: 8000",
      await usersYaml(users),
    ].join("\n"),
    "endpoints.yml": `endpoints:\n  plc: { url: "tcp://127.0.0.1:${plc.port}", timeoutMs: 1000 }\n`,
    "drivers.yml": [
      "drivers:",
      "  - { id: sim, type: simulator, config: { intervalMs: 50, signals: { plant/line/count: { shape: counter, min: 0, max: 1000000, periodMs: 60000 } } } }",
      // polled once at start, then quiet for the duration of the tests: stable values to compare
      "  - { id: still, type: simulator, config: { intervalMs: 3600000 } }",
      "  - { id: plc, type: modbus, endpoint: plc, config: { unitId: 1, intervalMs: 100 } }",
    ].join("\n"),
    "variables.yml": [
      "tags:",
      "  - { tag: plant/line/count, driver: sim, type: int32 }",
      "  - { tag: plant/line/temp, driver: still, type: float64, unit: degC, description: Line temperature, min: -50, max: 250 }",
      "  - { tag: plant/line/small, driver: still, type: int16 }",
      "  - { tag: plant/line/word, driver: still, type: uint16 }",
      "  - { tag: plant/line/dword, driver: still, type: uint32 }",
      "  - { tag: plant/line/big, driver: still, type: int64 }",
      "  - { tag: plant/line/ubig, driver: still, type: uint64 }",
      "  - { tag: plant/line/ratio, driver: still, type: float32 }",
      "  - { tag: plant/line/on, driver: still, type: bool }",
      "  - { tag: plant/line/label, driver: still, type: string }",
      "  - { tag: plant/status, driver: still, type: uint16, description: Status word }",
      "  - { tag: boiler/setpoint, driver: plc, type: float32, address: { area: holding, address: 20 }, access: RW, unit: degC, min: 20, max: 120 }",
      "  - { tag: boiler/temperature, driver: plc, type: float32, address: { area: holding, address: 0 }, unit: degC }",
      "  - { tag: tank/level, driver: plc, type: int16, address: { area: holding, address: 23 }, scale: 0.1, access: RW, unit: '%', min: 0, max: 100 }",
    ].join("\n"),
  });
  url = `opc.tcp://127.0.0.1:${port}/UA/edge`;
  await waitFor(() => t.gw.ctx.log.latest().size >= 14, "a value for every tag", 20_000).catch((e) => { console.log([...t.gw.ctx.log.latest().keys()], t.gw.ctx.drivers.status?.()); throw e; });
}, 60_000);

afterEach(async () => {
  for (const c of conns.splice(0)) await c.close().catch(() => undefined);
});

afterAll(async () => {
  await t?.stop();
  await plc?.stop();
  pki.cleanup();
});

const read = (s: ClientSession, tag: string, attributeId = AttributeIds.Value) => s.read({ nodeId: ns + tag, attributeId });
const write = (s: ClientSession, tag: string, dataType: DataType, value: unknown) =>
  s.write({ nodeId: ns + tag, attributeId: AttributeIds.Value, value: { value: { dataType, value } } });

describe("opcua server", () => {
  it("builds folders from the tag path and one variable per tag with the tag's DataType", async () => {
    const s = await open();
    // Organizes references only (HasTypeDefinition points at FolderType)
    const names = async (nodeId: string) =>
      (await s.browse({ nodeId, browseDirection: BrowseDirection.Forward, referenceTypeId: "Organizes", includeSubtypes: true, resultMask: 63 })).references!.map((r) => `${r.browseName.name}:${NodeClass[r.nodeClass]}`);
    const objects = await names("ns=0;i=85");
    expect(objects).toContain("Tags:Object");
    expect(await names(`${ns}folder:`)).toEqual(expect.arrayContaining(["plant:Object", "boiler:Object"]));
    expect(await names(`${ns}folder:plant`)).toEqual(expect.arrayContaining(["line:Object", "status:Variable"]));
    const expected: Record<string, DataType> = {
      count: DataType.Int32, temp: DataType.Double, small: DataType.Int16, word: DataType.UInt16, dword: DataType.UInt32,
      big: DataType.Int64, ubig: DataType.UInt64, ratio: DataType.Float, on: DataType.Boolean, label: DataType.String,
    };
    const line = await names(`${ns}folder:plant/line`);
    expect(line.sort()).toEqual(Object.keys(expected).map((k) => `${k}:Variable`).sort());
    for (const [leaf, type] of Object.entries(expected)) {
      const dv = await read(s, `plant/line/${leaf}`, AttributeIds.DataType);
      expect(`${leaf}:${dv.value.value.value}`).toBe(`${leaf}:${type}`);
    }
  }, 30_000);

  it("gives access level from R/W/RW, the description, and engineering units for numeric tags with a unit", async () => {
    const s = await open();
    expect((await read(s, "boiler/setpoint", AttributeIds.AccessLevel)).value.value).toBe(3); // CurrentRead | CurrentWrite
    expect((await read(s, "boiler/temperature", AttributeIds.AccessLevel)).value.value).toBe(1);
    expect((await read(s, "plant/line/temp", AttributeIds.Description)).value.value.text).toBe("Line temperature");
    const path = await s.translateBrowsePath({ startingNode: `${ns}plant/line/temp`, relativePath: { elements: [{ targetName: { name: "EngineeringUnits" } }] } as never });
    const eu = await s.read({ nodeId: path.targets![0]!.targetId, attributeId: AttributeIds.Value });
    expect(eu.value.value.displayName.text).toBe("°C");
    expect(eu.value.value.unitId).toBe(0x43454c); // UNECE "CEL"
  }, 30_000);

  it("reads each tag's latest value from the log with its source timestamp", async () => {
    const s = await open();
    const latest = t.gw.ctx.log.latest();
    for (const tag of ["plant/line/temp", "plant/line/small", "plant/line/word", "plant/line/dword", "plant/line/big", "plant/line/ratio", "plant/line/on", "plant/line/label"]) {
      const f = latest.get(tag)!; // waited for in beforeAll
      const dv = await read(s, tag);
      expect(dv.statusCode.value).toBe(StatusCodes.Good.value);
      let v = dv.value.value;
      if (Array.isArray(v)) v = Number((BigInt(v[0]) << 32n) | BigInt(v[1])); // Int64 as [high, low]
      if (tag.endsWith("ratio")) expect(v).toBeCloseTo(f.value as number, 4);
      else expect(`${tag}=${v}`).toBe(`${tag}=${tag.endsWith("label") ? String(f.value) : f.value}`);
      expect(dv.sourceTimestamp!.getTime()).toBe(Math.floor(f.ts / 1000));
    }
  }, 30_000);

  it("maps the quality of a reading to the StatusCode of the value", async () => {
    const s = await open();
    const ts = Date.now() * 1000;
    await t.gw.ctx.log.append([{ kind: "data", tag: "plant/status", value: null, ts, quality: Quality.Bad_CommunicationError, source: "still" }]);
    const dv = await waitFor(async () => {
      const d = await read(s, "plant/status");
      return d.statusCode.value === StatusCodes.BadCommunicationError.value && d;
    }, "Bad_CommunicationError on the node");
    expect(dv.sourceTimestamp!.getTime()).toBe(ts / 1000);
    await t.gw.ctx.log.append([{ kind: "data", tag: "plant/status", value: 7, ts: ts + 1000, quality: Quality.Uncertain_LastUsableValue, source: "still" }]);
    await waitFor(async () => {
      const d = await read(s, "plant/status");
      return d.statusCode.value === StatusCodes.UncertainLastUsableValue.value && d.value.value === 7;
    }, "Uncertain_LastUsableValue with the value 7");
  }, 30_000);

  it("reports changes of a simulated source to a subscription's monitored item", async () => {
    const s = await open();
    const sub = ClientSubscription.create(s, { requestedPublishingInterval: 50, requestedMaxKeepAliveCount: 20, requestedLifetimeCount: 200, publishingEnabled: true, maxNotificationsPerPublish: 1000 });
    const seen: number[] = [];
    const item = ClientMonitoredItem.create(sub, { nodeId: `${ns}plant/line/count`, attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 100, discardOldest: true }, TimestampsToReturn.Both);
    item.on("changed", (dv: DataValue) => seen.push(dv.value.value as number));
    try {
      await waitFor(() => seen.length >= 5, "5 notifications", 15_000);
      const distinct = new Set(seen);
      expect(distinct.size).toBeGreaterThanOrEqual(4);
      // each notified value is a counter value that the log holds, in increasing order
      expect([...seen].sort((a, b) => a - b)).toEqual(seen);
      expect(seen.at(-1)!).toBeLessThanOrEqual(t.gw.ctx.log.latest().get("plant/line/count")!.value as number);
    } finally {
      await sub.terminate();
    }
  }, 30_000);

  it("turns an operator's write into a command that reaches the PLC and answers Good", async () => {
    const s = await open("operator");
    const status = await write(s, "boiler/setpoint", DataType.Float, 55.5);
    expect(status.name).toBe("Good");
    expect(plc.get("holding", 20, { type: "float32" })).toBeCloseTo(55.5, 4);
    const cmds: Logged<CmdFrame>[] = [];
    for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["cmd"] })) cmds.push(f as Logged<CmdFrame>);
    expect(cmds.at(-1)).toMatchObject({ tag: "boiler/setpoint", origin: "opcua", actor: "operator", tenant: "default" });
    // the node shows what the PLC reports, read back through the driver
    await waitFor(async () => Math.abs(((await read(s, "boiler/setpoint")).value.value as number) - 55.5) < 1e-4, "the setpoint read back from the PLC");
  }, 30_000);

  it("writes a scaled int16 tag in engineering units: 42.5 reaches the PLC as raw 425 and reads back as 42.5", async () => {
    const s = await open("operator");
    expect((await read(s, "tank/level", AttributeIds.DataType)).value.value.value).toBe(DataType.Double);
    expect((await write(s, "tank/level", DataType.Double, 42.5)).name).toBe("Good");
    expect(plc.get("holding", 23, { type: "int16" })).toBe(425);
    await waitFor(async () => (await read(s, "tank/level")).value.value === 42.5, "42.5 read back from the PLC");
  }, 30_000);

  it("answers BadOutOfRange for a value beyond the tag's max, without a command", async () => {
    const s = await open("operator");
    const head = t.gw.ctx.log.head;
    expect((await write(s, "boiler/setpoint", DataType.Float, 500)).name).toBe("BadOutOfRange");
    for await (const f of t.gw.ctx.log.read({ from: head + 1, kinds: ["cmd"] })) throw new Error(`unexpected command ${JSON.stringify(f)}`);
  }, 30_000);

  it("answers BadNotWritable for a write to a read-only node", async () => {
    const s = await open("operator");
    expect((await write(s, "boiler/temperature", DataType.Float, 30)).name).toBe("BadNotWritable");
  }, 30_000);

  it("answers BadUserAccessDenied to a user without the write right and to anonymous sessions", async () => {
    const viewer = await open("viewer");
    expect((await write(viewer, "boiler/setpoint", DataType.Float, 60)).name).toBe("BadUserAccessDenied");
    expect((await read(viewer, "boiler/setpoint")).statusCode.name).toBe("Good");
    const anon = await open();
    expect((await write(anon, "boiler/setpoint", DataType.Float, 60)).name).toBe("BadUserAccessDenied");
    expect(plc.get("holding", 20, { type: "float32" })).not.toBeCloseTo(60, 4);
  }, 30_000);

  it("exposes sessions and subscriptions in the gateway's /metrics", async () => {
    await open();
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toMatch(/^edge_opcua_sessions [1-9]/m);
    expect(text).toMatch(/^edge_opcua_subscriptions \d/m);
    expect(text).toContain("edge_opcua_sessions_refused_total");
  }, 30_000);

  it("refuses a session with a wrong password", async () => {
    await expect(connect(url, { pkiDir: pki.path, user: { name: "operator", password: "wrong" } })).rejects.toThrow(/BadUserAccessDenied|BadIdentityTokenRejected|BadIdentityTokenInvalid/);
  }, 30_000);

  it("adds and removes nodes live when the catalog changes", async () => {
    const s = await open();
    const catalog = t.gw.ctx.catalog;
    const before = catalog.all();
    const extra = { ...catalog.get("plant/line/small")!, tag: "plant/new/level", type: "float64", description: "added live" } as Variable;
    catalog.replace([...before.filter((x) => x.tag !== "plant/line/label"), extra]);
    const names = async (nodeId: string) =>
      ((await s.browse({ nodeId, browseDirection: BrowseDirection.Forward, referenceTypeId: "Organizes", includeSubtypes: true, resultMask: 63 })).references ?? []).map((r) => r.browseName.name);
    expect(await names(`${ns}folder:plant`)).toContain("new");
    expect(await names(`${ns}folder:plant/new`)).toEqual(["level"]);
    expect((await read(s, "plant/new/level")).statusCode.name).toBe("BadWaitingForInitialData");
    await t.gw.ctx.log.append([{ kind: "data", tag: "plant/new/level", value: 42.5, ts: Date.now() * 1000, quality: 0, source: "still" }]);
    await waitFor(async () => (await read(s, "plant/new/level")).value.value === 42.5, "the new node's value from the log");
    expect((await read(s, "plant/line/label")).statusCode.name).toBe("BadNodeIdUnknown");
    catalog.replace(before);
    expect(await names(`${ns}folder:plant`)).not.toContain("new");
    expect((await read(s, "plant/line/label")).statusCode.name).toBe("Good");
  }, 30_000);
});
