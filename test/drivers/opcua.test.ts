// The OPC UA client driver against a real node-opcua server started in the test: values land in
// the log (subscription and polling), Bad statuses become qualities, commands are written back.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { DataType, OPCUACertificateManager, OPCUAServer, StatusCodes, Variant, VariantArrayType, coerceInt64, type UAVariable } from "node-opcua";
import { Quality } from "../../schemas/quality.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";

let server: OPCUAServer;
let t: TestGateway;
const vars: Record<string, UAVariable> = {};
const dir = tempDir("edge-opcua-driver-");

beforeAll(async () => {
  const port = await freePort();
  server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    resourcePath: "/UA/plant",
    serverCertificateManager: new OPCUACertificateManager({ rootFolder: join(dir.path, "server-pki"), automaticallyAcceptUnknownCertificate: true }),
    isAuditing: false,
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace!; // created by initialize()
  const ns = addressSpace.getOwnNamespace();
  const add = (name: string, dataType: DataType, value: unknown, writable = false) => {
    vars[name] = ns.addVariable({
      organizedBy: addressSpace.rootFolder.objects,
      browseName: name,
      nodeId: `s=${name}`,
      dataType,
      accessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      userAccessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      minimumSamplingInterval: 0,
    });
    const arrayType = dataType === DataType.Int64 ? { arrayType: VariantArrayType.Scalar } : {};
    vars[name]!.setValueFromSource(new Variant({ dataType, value, ...arrayType }));
  };
  add("Temp", DataType.Double, 21.5);
  add("Count", DataType.Int32, 7);
  add("Energy", DataType.Int64, coerceInt64(String(2n ** 40n + 5n)));
  add("Running", DataType.Boolean, true);
  add("Name", DataType.String, "Line 1");
  add("Raw", DataType.Int16, 123);
  add("Setpoint", DataType.Double, 10, true);
  await server.start();
  const url = `opc.tcp://127.0.0.1:${port}/UA/plant`;
  t = await startGateway({
    "endpoints.yml": `endpoints:\n  plant: { url: "${url}", timeoutMs: 2000 }\n`,
    "drivers.yml": [
      "drivers:",
      `  - { id: ua, type: opcua, endpoint: plant, config: { samplingIntervalMs: 0, publishingIntervalMs: 50, pkiDir: "${join(dir.path, "client-pki")}" } }`,
      `  - { id: uapoll, type: opcua, endpoint: plant, config: { mode: poll, intervalMs: 50, pkiDir: "${join(dir.path, "client-pki")}" } }`,
    ].join("\n"),
    "variables.yml": [
      "tags:",
      '  - { tag: ext/temp, driver: ua, type: float64, address: { nodeId: "ns=1;s=Temp" } }',
      '  - { tag: ext/count, driver: ua, type: int32, address: { nodeId: "ns=1;s=Count" } }',
      '  - { tag: ext/energy, driver: ua, type: int64, address: { nodeId: "ns=1;s=Energy" } }',
      '  - { tag: ext/running, driver: ua, type: bool, address: { nodeId: "ns=1;s=Running" } }',
      '  - { tag: ext/name, driver: ua, type: string, address: { nodeId: "ns=1;s=Name" } }',
      '  - { tag: ext/scaled, driver: ua, type: int16, scale: 0.1, address: { nodeId: "ns=1;s=Raw" } }',
      '  - { tag: ext/setpoint, driver: ua, type: float64, access: RW, address: { nodeId: "ns=1;s=Setpoint" } }',
      '  - { tag: polled/temp, driver: uapoll, type: float64, address: { nodeId: "ns=1;s=Temp" } }',
    ].join("\n"),
  });
}, 60_000);

afterAll(async () => {
  await t?.stop();
  await server?.shutdown(0).catch(() => undefined);
  dir.cleanup();
}, 30_000);

const latest = (tag: string) => t.gw.ctx.log.latest().get(tag);

describe("opcua client driver", () => {
  it("subscribes to the server's nodes and logs their values with the tag's type", async () => {
    await waitFor(() => ["ext/temp", "ext/count", "ext/energy", "ext/running", "ext/name", "ext/scaled"].every((x) => latest(x)), "a value for every tag", 20_000);
    expect(latest("ext/temp")).toMatchObject({ value: 21.5, quality: Quality.Good, source: "ua" });
    expect(latest("ext/count")!.value).toBe(7);
    expect(latest("ext/energy")!.value).toBe(2n ** 40n + 5n);
    expect(latest("ext/running")!.value).toBe(true);
    expect(latest("ext/name")!.value).toBe("Line 1");
    expect(latest("ext/scaled")!.value).toBeCloseTo(12.3, 6);
  }, 30_000);

  it("logs a change on the server as a new frame with the server's source timestamp", async () => {
    const at = new Date(Date.now() - 5000);
    vars.Temp!.setValueFromSource(new Variant({ dataType: DataType.Double, value: 33.25 }), StatusCodes.Good, at);
    const f = await waitFor(() => latest("ext/temp")?.value === 33.25 && latest("ext/temp"), "the new value in the log", 15_000);
    expect(f.ts).toBe(at.getTime() * 1000);
  }, 30_000);

  it("turns a Bad status from the server into the frame's quality", async () => {
    vars.Count!.setValueFromSource(new Variant({ dataType: DataType.Int32, value: 8 }), StatusCodes.BadSensorFailure);
    const f = await waitFor(() => latest("ext/count")?.quality === StatusCodes.BadSensorFailure.value && latest("ext/count"), "Bad_SensorFailure in the log", 15_000);
    expect(f.value).toBe(8);
  }, 30_000);

  it("polls the server when the driver's mode is poll", async () => {
    vars.Temp!.setValueFromSource(new Variant({ dataType: DataType.Double, value: 44.5 }));
    const f = await waitFor(() => latest("polled/temp")?.value === 44.5 && latest("polled/temp"), "the polled value", 15_000);
    expect(f.source).toBe("uapoll");
  }, 30_000);

  it("writes a command back to the server's node and acknowledges it", async () => {
    const { ack } = await t.gw.ctx.commands.execute({ tag: "ext/setpoint", value: 42.5, origin: "rest", actor: "test", tenant: "default" }, 10_000);
    expect(ack).toMatchObject({ ok: true, status: "ok", source: "ua" });
    expect(vars.Setpoint!.readValue().value.value).toBe(42.5);
    await waitFor(() => latest("ext/setpoint")?.value === 42.5, "the written value read back by the subscription", 15_000);
  }, 30_000);

  // last: it stops the server
  it("marks every tag Bad_NotConnected when the connection to the server is lost", async () => {
    await server.shutdown(0);
    await waitFor(() => ["ext/temp", "ext/name", "polled/temp"].every((x) => latest(x)?.quality === Quality.Bad_NotConnected || latest(x)?.quality === Quality.Bad_CommunicationError), "Bad qualities after the server stopped", 20_000);
    expect(latest("ext/temp")).toMatchObject({ value: null, quality: Quality.Bad_NotConnected, source: "ua" });
  }, 30_000);
});
