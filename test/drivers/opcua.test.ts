// The OPC UA client driver against a real node-opcua server started in the test: values land in
// the log (subscription and polling), Bad statuses become qualities, commands are written back;
// Basic256Sha256 Sign/SignAndEncrypt with a user and trusted certificates, untrusted certificates
// refused with a clear error; drivers sharing one session; the server stopped and started again.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  DataType,
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAServer,
  SecurityPolicy,
  StatusCodes,
  Variant,
  VariantArrayType,
  coerceInt64,
  type UAVariable,
  type UserNameIdentityToken,
} from "node-opcua";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { OpcuaClientConfig } from "../../drivers/opcua/config.ts";
import { clientCertificateFile, clientPkiDir, ensureClientCertificate, sessionKey } from "../../drivers/opcua/session.ts";
import { isBad, Quality } from "../../schemas/quality.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { freePort, tempDir, waitFor } from "../helpers/index.ts";

// One plant server for the whole file: None, Basic256Sha256 Sign and SignAndEncrypt endpoints, a
// user "operator", and a PKI that trusts only the client certificate of `clientPki`. It is stopped
// and started again on the same port (same PKI folder, so the same certificate) by the last test.
let server: OPCUAServer;
let port = 0;
let t: TestGateway;
let vars: Record<string, UAVariable> = {};
const dir = tempDir("edge-opcua-driver-");
const clientPki = join(dir.path, "client-pki");
const strangerPki = join(dir.path, "stranger-pki");
const serverPki = join(dir.path, "server-pki");
/** a client the server trusts but which does not trust the server */
const waryPki = join(dir.path, "wary-pki");
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);

/** PEM -> DER: the base64 body between the BEGIN/END lines */
const pemToDer = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");

async function startPlant(): Promise<OPCUAServer> {
  const cm = new OPCUACertificateManager({ rootFolder: serverPki, automaticallyAcceptUnknownCertificate: false });
  await cm.initialize();
  // what the server's operator does once: trust the gateway's client certificate (not the stranger's)
  for (const pki of [clientPki, waryPki]) await cm.trustCertificate(pemToDer(readFileSync(await ensureClientCertificate(pki), "utf8")));
  const s = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    resourcePath: "/UA/plant",
    serverCertificateManager: cm,
    securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256],
    securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
    allowAnonymous: true,
    userManager: { isValidUser: (user: string, password: string) => user === "operator" && password === "op-secret" },
    isAuditing: false,
  });
  await s.initialize();
  const addressSpace = s.engine.addressSpace!; // created by initialize()
  const ns = addressSpace.getOwnNamespace();
  vars = {};
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
  await s.start();
  return s;
}

const setTemp = (value: number) => vars.Temp!.setValueFromSource(new Variant({ dataType: DataType.Double, value }));

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  port = await freePort();
  server = await startPlant();
  // the gateway's operator trusts the plant server's certificate (trustServerCertificate stays false)
  const ccm = new OPCUACertificateManager({ rootFolder: clientPki });
  await ccm.initialize();
  await ccm.trustCertificate(pemToDer(readFileSync(join(serverPki, "own", "certs", "certificate.pem"), "utf8")));
  await ccm.dispose();
  process.env.EDGE_TEST_UA_PASSWORD = "op-secret";
  const url = `opc.tcp://127.0.0.1:${port}/UA/plant`;
  // reconnectMaxDelayMs: a restarted server is found again within a second
  const common = `pkiDir: "${clientPki}", reconnectMaxDelayMs: 1000`;
  const secure = `securityPolicy: Basic256Sha256, samplingIntervalMs: 0, publishingIntervalMs: 50, ${common}`;
  t = await startGateway({
    "endpoints.yml": `endpoints:\n  plant: { url: "${url}", timeoutMs: 2000 }\n`,
    "drivers.yml": [
      "drivers:",
      `  - { id: ua, type: opcua, endpoint: plant, config: { samplingIntervalMs: 0, publishingIntervalMs: 50, ${common} } }`,
      `  - { id: uapoll, type: opcua, endpoint: plant, config: { mode: poll, intervalMs: 50, ${common} } }`,
      `  - { id: sign, type: opcua, endpoint: plant, config: { securityMode: Sign, user: { name: operator, passwordEnv: EDGE_TEST_UA_PASSWORD }, ${secure} } }`,
      `  - { id: enc, type: opcua, endpoint: plant, config: { securityMode: SignAndEncrypt, user: { name: operator, password: op-secret }, ${secure} } }`,
      `  - { id: enc2, type: opcua, endpoint: plant, config: { securityMode: SignAndEncrypt, user: { name: operator, password: op-secret }, ${secure} } }`,
      // no node-opcua reconnection: a connection loss ends the read loop and the manager restarts the driver
      `  - { id: norecon, type: opcua, endpoint: plant, config: { reconnect: false, samplingIntervalMs: 0, publishingIntervalMs: 50, ${common} } }`,
      `  - { id: wary, type: opcua, endpoint: plant, config: { securityMode: Sign, ${secure.replace(clientPki, waryPki)} } }`,
      `  - { id: stranger, type: opcua, endpoint: plant, config: { securityMode: SignAndEncrypt, user: { name: operator, password: op-secret }, trustServerCertificate: true, ${secure.replace(clientPki, strangerPki)} } }`,
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
      '  - { tag: sign/temp, driver: sign, type: float64, address: { nodeId: "ns=1;s=Temp" } }',
      '  - { tag: enc/temp, driver: enc, type: float64, address: { nodeId: "ns=1;s=Temp" } }',
      '  - { tag: enc2/count, driver: enc2, type: int32, address: { nodeId: "ns=1;s=Count" } }',
      '  - { tag: norecon/temp, driver: norecon, type: float64, address: { nodeId: "ns=1;s=Temp" } }',
      '  - { tag: wary/temp, driver: wary, type: float64, address: { nodeId: "ns=1;s=Temp" } }',
      '  - { tag: stranger/temp, driver: stranger, type: float64, address: { nodeId: "ns=1;s=Temp" } }',
    ].join("\n"),
  });
}, 60_000);

afterAll(async () => {
  await t?.stop();
  await server?.shutdown(0).catch(() => undefined);
  process.off("unhandledRejection", onUnhandled);
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

});

const status = (id: string) => t.gw.ctx.drivers.status().find((d) => d.id === id);
/** the plant server's sessions by security mode (None, Sign, SignAndEncrypt) */
const sessionsIn = (mode: MessageSecurityMode) => server.engine.getSessions().filter((s) => s.channel?.securityMode === mode);

describe("opcua client driver security", () => {
  it("reads over Basic256Sha256 Sign as user 'operator' with a client certificate the server trusts", async () => {
    const f = await waitFor(() => latest("sign/temp"), "a value through the Sign session", 20_000);
    expect(f).toMatchObject({ quality: Quality.Good, source: "sign" });
    const sessions = await waitFor(() => sessionsIn(MessageSecurityMode.Sign).length > 0 && sessionsIn(MessageSecurityMode.Sign), "the Sign session on the server");
    for (const session of sessions) {
      expect(session.channel!.securityPolicy).toBe(SecurityPolicy.Basic256Sha256);
      expect((session.userIdentityToken as UserNameIdentityToken).userName).toBe("operator");
    }
  }, 30_000);

  it("reads over Basic256Sha256 SignAndEncrypt as user 'operator'", async () => {
    const f = await waitFor(() => latest("enc/temp"), "a value through the SignAndEncrypt session", 20_000);
    expect(f).toMatchObject({ quality: Quality.Good, source: "enc" });
    const sessions = await waitFor(() => sessionsIn(MessageSecurityMode.SignAndEncrypt).length > 0 && sessionsIn(MessageSecurityMode.SignAndEncrypt), "the SignAndEncrypt session on the server");
    for (const session of sessions) {
      expect(session.channel!.securityPolicy).toBe(SecurityPolicy.Basic256Sha256);
      expect((session.userIdentityToken as UserNameIdentityToken).userName).toBe("operator");
    }
  }, 30_000);

  it("reports a client certificate the server does not trust as a clear error and retries with backoff, without a crash", async () => {
    const s = await waitFor(() => status("stranger")?.lastError && status("stranger"), "the stranger driver's error", 20_000);
    expect(s.lastError).toContain("refused the client certificate");
    expect(s.lastError).toContain(clientCertificateFile(strangerPki));
    expect(["Error", "Backoff", "Connected"]).toContain(s.state);
    // never a value: at most the Bad frame the manager writes when the driver fails
    expect(isBad(latest("stranger/temp")?.quality ?? Quality.Bad)).toBe(true);
    expect(latest("stranger/temp")?.value ?? null).toBeNull();
    // the others are unaffected
    expect(status("enc")!.state).toBe("Active");
  }, 30_000);

  it("reports a server certificate the driver does not trust as a clear error", async () => {
    const s = await waitFor(() => status("wary")?.lastError && status("wary"), "the wary driver's error", 20_000);
    expect(s.lastError).toContain("certificate is not trusted");
    expect(s.lastError).toContain(join(waryPki, "trusted", "certs"));
    expect(readdirSync(join(waryPki, "rejected")).some((f) => f.endsWith(".pem") || f.endsWith(".der"))).toBe(true);
    // never a value: at most the Bad frame the manager writes when the driver fails
    expect(isBad(latest("wary/temp")?.quality ?? Quality.Bad)).toBe(true);
    expect(latest("wary/temp")?.value ?? null).toBeNull();
  }, 30_000);
});

describe("opcua client driver endpoint sharing", () => {
  it("shares one session between drivers with the same URL, security and user, each with its own subscription", async () => {
    await waitFor(() => ["ext/temp", "polled/temp", "sign/temp", "enc/temp", "enc2/count", "norecon/temp"].every((x) => latest(x)), "a value from every connected driver", 20_000);
    // six connected drivers, four sessions: None/anonymous (ua and uapoll; norecon differs by its
    // reconnect setting), Sign (sign), SignAndEncrypt (enc and enc2)
    expect(server.currentSessionCount).toBe(4);
    expect(sessionsIn(MessageSecurityMode.SignAndEncrypt).map((s) => s.currentSubscriptionCount)).toEqual([2]);
    // ua subscribes and uapoll polls on one session, norecon subscribes on its own
    expect(sessionsIn(MessageSecurityMode.None).map((s) => s.currentSubscriptionCount)).toEqual([1, 1]);
  }, 30_000);

  it("keeps its PKI in the gateway's data directory unless pkiDir is set", () => {
    expect(clientPkiDir({}, "/srv/edge/data")).toBe("/srv/edge/data/pki/opcua-client");
    expect(clientPkiDir({ pkiDir: "/etc/edge/pki" }, "/srv/edge/data")).toBe("/etc/edge/pki");
  });

  it("keys a shared session by URL, security and user, without the password in clear", () => {
    const key = (cfg: Record<string, unknown>, url = "opc.tcp://plc:4840") => sessionKey({ url }, TypeValue.Default(OpcuaClientConfig, cfg) as OpcuaClientConfig);
    const op = { securityPolicy: "Basic256Sha256", securityMode: "Sign", user: { name: "operator", password: "op-secret" } };
    expect(key({ ...op, mode: "poll", intervalMs: 50 })).toBe(key(op));
    expect(key(op)).not.toBe(key(op, "opc.tcp://plc:4841"));
    expect(key(op)).not.toBe(key({ ...op, securityMode: "SignAndEncrypt" }));
    expect(key(op)).not.toBe(key({ ...op, user: { name: "operator", password: "other" } }));
    expect(key(op)).not.toBe(key({}));
    expect(key(op)).not.toContain("op-secret");
  });

  it("keeps the shared session working for one driver when the other is closed, and closes it with the last", async () => {
    await t.gw.ctx.drivers.remove("enc2");
    await waitFor(() => sessionsIn(MessageSecurityMode.SignAndEncrypt)[0]?.currentSubscriptionCount === 1, "enc2's subscription gone", 10_000);
    expect(server.currentSessionCount).toBe(4);
    setTemp(55.5);
    await waitFor(() => latest("enc/temp")?.value === 55.5, "enc still receiving changes", 15_000);
    await t.gw.ctx.drivers.remove("enc");
    await waitFor(() => server.currentSessionCount === 3, "the SignAndEncrypt session closed with its last driver", 10_000);
    setTemp(56.5);
    await waitFor(() => latest("sign/temp")?.value === 56.5 && latest("ext/temp")?.value === 56.5, "the other sessions still working", 15_000);
  }, 30_000);
});

describe("opcua client driver reconnection", () => {
  // last: it restarts the server
  it("marks the tags Bad_NotConnected while the server is down and logs values again after it restarts on the same port", async () => {
    const watched = ["ext/temp", "polled/temp", "sign/temp", "norecon/temp"];
    await server.shutdown(0);
    await waitFor(() => watched.every((x) => latest(x)?.quality === Quality.Bad_NotConnected), "Bad_NotConnected for every tag while the server is down", 20_000);
    expect(latest("ext/temp")).toMatchObject({ value: null, quality: Quality.Bad_NotConnected, source: "ua" });
    server = await startPlant();
    setTemp(77.25);
    const t0 = performance.now();
    await waitFor(() => watched.every((x) => latest(x)?.value === 77.25 && latest(x)?.quality === Quality.Good), "values from the restarted server", 30_000);
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(t.gw.ctx.drivers.status().filter((d) => d.state === "Fault")).toEqual([]);
    // node-opcua repaired ua's connection in place; norecon went through the manager's backoff restart
    expect(status("ua")!.restarts).toBe(0);
    expect(status("norecon")!.restarts).toBeGreaterThan(0);
    expect(unhandled).toEqual([]);
  }, 60_000);
});
