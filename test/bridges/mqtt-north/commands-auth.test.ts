// MQTT commands as safe as REST, end to end: a real gateway (MQTT bridge wired by server/services.ts,
// executor, Modbus driver) on Debian's mosquitto, and a real Modbus TCP server that counts the writes
// it receives. Commands carry JWTs checked as REST checks them, their life counts from publication
// (also across a gateway outage, while the broker keeps them in the session), retained commands are
// refused, and ids are scoped by tenant and actor.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import mqtt, { type IClientPublishOptions, type MqttClient } from "mqtt";
import type { ModbusTcpServer } from "../../../server/demo/modbus-server.ts";
import type { CmdFrame, Logged } from "../../../schemas/frames.ts";
import { delay } from "../../../storage/time.ts";
import { startGateway, type TestGateway } from "../../helpers/gateway.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { Mosquitto } from "../../helpers/mosquitto.ts";
import { configFiles, makeKeys, startPlc, token, unsignedToken, type Keys } from "../../server/commands-fixture.ts";

let broker: Mosquitto;
let keys: Keys;
let plc: ModbusTcpServer;
let writes: Map<number, number>;
let dir: ReturnType<typeof tempDir>;
let t: TestGateway | null = null;
let cloud: MqttClient;
const answers: { topic: string; body: Record<string, unknown> }[] = [];

const mqttSection = () => `mqtt: { enabled: true, url: "${broker.url}", reconnectMinMs: 100, commands: { enabled: true, tenants: [acme, globex], timeoutMs: 5000, ttlMs: 30000, maxTtlMs: 60000 } }`;
const files = () => configFiles(dir.path, plc.port, keys, mqttSection());

async function startGw(): Promise<TestGateway> {
  t = await startGateway(files(), { keepDir: dir.path });
  await waitFor(() => t!.gw.ctx.drivers.status()[0]?.state === "Active", "the Modbus driver to be Active", 20_000);
  return t;
}

beforeAll(async () => {
  broker = await Mosquitto.start();
  keys = await makeKeys();
  ({ plc, writes } = await startPlc());
  dir = tempDir();
  await startGw();
}, 60_000);
beforeAll(async () => {
  cloud = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  cloud.on("message", (topic, payload) => answers.push({ topic, body: JSON.parse(payload.toString()) }));
  await cloud.subscribeAsync("+/ack/#", { qos: 1 });
});

afterAll(async () => {
  await cloud?.endAsync(true);
  await t?.stop();
  await plc?.stop();
  await broker?.close();
  dir?.cleanup();
});

const totalWrites = () => [...writes.values()].reduce((a, b) => a + b, 0);
const answerOf = (id: string, timeoutMs = 15_000) => waitFor(() => answers.find((a) => a.body.id === id), `the answer to ${id}`, timeoutMs);
let n = 0;
const nextId = (what: string) => `${what}-${++n}`;

/** Publishes a command (with ts = now unless the body says otherwise) and returns its answer. */
async function send(topic: string, body: Record<string, unknown>, opts: IClientPublishOptions = {}) {
  const id = (body.id as string | undefined) ?? nextId("c");
  await cloud.publishAsync(topic, JSON.stringify({ id, ts: Date.now(), ...body }), { qos: 1, ...opts });
  return (await answerOf(id)).body;
}

async function commandFrame(logId: string): Promise<Logged<CmdFrame>> {
  return await waitFor(async () => {
    for await (const f of t!.gw.ctx.log.read({ from: 1, kinds: ["cmd"] })) if (f.kind === "cmd" && f.id === logId) return f as Logged<CmdFrame>;
    return null;
  }, `the cmd frame ${logId}`);
}

/** Waits until the bridge has subscribed: a refused command is answered once the subscription is in place. */
async function bridgeSubscribed(): Promise<void> {
  await waitFor(async () => {
    const id = nextId("probe");
    await cloud.publishAsync("acme/cmd/line1/sp/temp", JSON.stringify({ id, value: 1, ts: Date.now() }), { qos: 1 });
    await delay(100);
    return answers.some((a) => a.body.id === id);
  }, "the bridge's command subscription", 15_000, 0);
}

describe("MQTT commands with JWTs", () => {
  beforeAll(bridgeSubscribed, 30_000);

  it("executes a command with a good JWT once and records the token's subject as actor, never a client-sent one", async () => {
    const before = totalWrites();
    const jwt = await token(keys, { claims: { sub: "scada-7" } });
    const a = await send("acme/cmd/line1/sp/temp", { value: 77, token: jwt, actor: "someone-else" }, { properties: { userProperties: { actor: "forged" } } });
    // (bun's toMatchObject writes asymmetric matchers into the object it checks: types are checked apart)
    expect([typeof a.command, typeof a.offset]).toEqual(["string", "number"]);
    expect(a).toMatchObject({ ok: true, status: "ok", code: "ok" });
    expect(plc.holding[10]).toBe(77);
    expect(totalWrites()).toBe(before + 1);
    expect(await commandFrame(a.command as string)).toMatchObject({ tag: "line1/sp/temp", value: 77, origin: "mqtt", actor: "mqtt:scada-7", tenant: "acme" });
  }, 30_000);

  it("takes the JWT from the MQTT 5 user property authorization (Bearer) as well", async () => {
    const jwt = await token(keys, { alg: "RS256", claims: { sub: "rs-client" } });
    const a = await send("acme/cmd/line1/sp/temp", { value: 78 }, { properties: { userProperties: { authorization: `Bearer ${jwt}` } } });
    expect(a).toMatchObject({ ok: true, code: "ok" });
    expect(plc.holding[10]).toBe(78);
    expect(await commandFrame(a.command as string)).toMatchObject({ actor: "mqtt:rs-client" });
  }, 30_000);

  it("refuses a JWT of another tenant, without the write scope, or whose tags do not cover the tag, and writes nothing", async () => {
    const before = totalWrites();
    const cases = [
      ["another tenant", await token(keys, { claims: { tenant: "globex" } })],
      ["no write scope", await token(keys, { claims: { scope: "read" } })],
      ["tags claim not covering the tag", await token(keys, { claims: { tags: ["line1/pv/*"] } })],
    ] as const;
    for (const [what, jwt] of cases) {
      const a = await send("acme/cmd/line1/sp/temp", { value: 5, token: jwt });
      expect({ what, ...a }).toMatchObject({ what, ok: false, status: "refused", code: "forbidden" });
    }
    expect(totalWrites()).toBe(before);
  }, 30_000);

  it("refuses alg none, HS/RS confusion, an expired token and no token on MQTT as REST does", async () => {
    const before = totalWrites();
    const cases = [
      ["alg none", unsignedToken({ sub: "alice", tenant: "acme", scope: "write" })],
      ["HS256 signed with the RSA public key", await token(keys, { key: new TextEncoder().encode(keys.rsaPublicPem) })],
      ["expired", await token(keys, { expiresIn: -120 })],
      ["a static-looking secret", "acme-secret-token-of-old"],
    ] as const;
    for (const [what, jwt] of cases) {
      const a = await send("acme/cmd/line1/sp/temp", { value: 6, token: jwt });
      expect({ what, ...a }).toMatchObject({ what, ok: false, status: "refused", code: "unauthorized" });
      const rest = await fetch(`${t!.url}/api/tags/line1/sp/temp`, { method: "PUT", headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" }, body: '{"value":6}' });
      expect({ what, status: rest.status }).toEqual({ what, status: 401 });
    }
    const none = await send("acme/cmd/line1/sp/temp", { value: 6 });
    expect(none).toMatchObject({ ok: false, code: "unauthorized" });
    expect(totalWrites()).toBe(before);
  }, 30_000);

  it("refuses a retained command with refused_retained and never executes it", async () => {
    const before = totalWrites();
    const a = await send("acme/cmd/line1/sp/temp", { id: "retained-1", value: 9, token: await token(keys) }, { retain: true });
    expect(a).toMatchObject({ ok: false, status: "refused", code: "refused_retained" });
    expect(totalWrites()).toBe(before);
    // the broker keeps it and delivers it to every new subscription (the gateway's at each start: see below)
    const probe = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const kept = await new Promise<boolean>((resolve) => {
      probe.on("message", (_topic, _payload, packet) => resolve(packet.retain));
      void probe.subscribeAsync("acme/cmd/line1/sp/temp", { qos: 1 });
    });
    await probe.endAsync(true);
    expect(kept).toBe(true);
    expect(plc.holding[10]).not.toBe(9);
  }, 30_000);

  it("scopes ids by tenant: another tenant's use of an id is refused on this tenant's topic and does not block this tenant's command", async () => {
    const before = totalWrites();
    const globex = await token(keys, { claims: { sub: "mallory", tenant: "globex" } });
    // globex uses the id first, on its own tag (executed there) and on acme's topic (refused)
    expect(await send("globex/cmd/other/sp", { id: "shared-1", value: 3, token: globex })).toMatchObject({ ok: true, code: "ok" });
    answers.length = 0;
    expect(await send("acme/cmd/line1/sp/temp", { id: "shared-1", value: 4, token: globex })).toMatchObject({ ok: false, code: "forbidden" });
    answers.length = 0;
    const a = await send("acme/cmd/line1/sp/temp", { id: "shared-1", value: 41, token: await token(keys) });
    expect(a).toMatchObject({ ok: true, code: "ok" });
    expect(plc.holding[10]).toBe(41);
    expect(plc.holding[30]).toBe(3);
    expect(totalWrites()).toBe(before + 2);
  }, 30_000);

  it("answers a redelivered id with the first result and a reused id with another value with idempotency_conflict, writing once", async () => {
    const jwt = await token(keys);
    const before = totalWrites();
    const first = await send("acme/cmd/line1/sp/temp", { id: "idem-1", value: 50, token: jwt });
    expect(first).toMatchObject({ ok: true, code: "ok" });
    answers.length = 0;
    const again = await send("acme/cmd/line1/sp/temp", { id: "idem-1", value: 50, token: jwt });
    expect(again).toMatchObject({ ok: true, code: "ok", command: first.command, offset: first.offset });
    answers.length = 0;
    const other = await send("acme/cmd/line1/sp/temp", { id: "idem-1", value: 51, token: jwt });
    expect(other).toMatchObject({ ok: false, status: "refused", code: "idempotency_conflict" });
    expect(plc.holding[10]).toBe(50);
    expect(totalWrites()).toBe(before + 1);
  }, 30_000);

  it("refuses a command without a publication time or with a non-finite or negative life, naming the field", async () => {
    const jwt = await token(keys);
    const raw = async (id: string, json: string) => {
      await cloud.publishAsync("acme/cmd/line1/sp/temp", json, { qos: 1 });
      return (await answerOf(id)).body;
    };
    expect(await raw("p-1", JSON.stringify({ id: "p-1", value: 1, token: jwt }))).toMatchObject({ code: "invalid_payload", error: expect.stringContaining("ts") });
    expect(await raw("p-2", `{"id":"p-2","value":1,"ts":${Date.now()},"ttlMs":1e400,"token":"${jwt}"}`)).toMatchObject({ code: "invalid_payload", error: expect.stringContaining("ttlMs") });
    expect(await raw("p-3", `{"id":"p-3","value":1,"expiresAt":1e400,"token":"${jwt}"}`)).toMatchObject({ code: "invalid_payload", error: expect.stringContaining("expiresAt") });
    expect(await raw("p-4", JSON.stringify({ id: "p-4", value: 1, ts: Date.now(), ttlMs: -5, token: jwt }))).toMatchObject({ code: "invalid_payload", error: expect.stringContaining("ttlMs") });
  }, 30_000);

  it("bounds a command's life by maxTtlMs: the CmdFrame expires at publication + maxTtlMs whatever ttlMs asks", async () => {
    const ts = Date.now();
    const a = await send("acme/cmd/line1/sp/temp", { value: 12, ts, ttlMs: 86_400_000, token: await token(keys) });
    expect(a).toMatchObject({ ok: true });
    const cmd = await commandFrame(a.command as string);
    expect(Math.abs(cmd.expiresAt / 1000 - (ts + 60_000))).toBeLessThan(500); // ttlMs is handed to the bus, which counts it from its own clock a moment later
  }, 30_000);
});

describe("MQTT commands published while the gateway is down", () => {
  it("acks expired and leaves the PLC untouched for a command older than its life when the gateway returns, and executes one still alive", async () => {
    await bridgeSubscribed();
    await t!.stop();
    t = null;
    const before = totalWrites();
    const jwt = await token(keys);
    const publishedAt = Date.now();
    // the broker keeps both in the gateway's session (QoS 1, persistent session)
    await cloud.publishAsync("acme/cmd/line1/sp/temp", JSON.stringify({ id: "late-1", value: 111, ts: publishedAt, ttlMs: 1000, token: jwt }), { qos: 1 });
    await cloud.publishAsync("acme/cmd/line1/sp/temp", JSON.stringify({ id: "alive-1", value: 222, ts: publishedAt, ttlMs: 30_000, token: jwt }), { qos: 1 });
    // the outage lasts longer than the first command's life
    await delay(publishedAt + 1500 - Date.now());
    await startGw();
    const late = (await answerOf("late-1", 20_000)).body;
    expect(late).toMatchObject({ ok: false, status: "expired", code: "expired" });
    const cmd = await commandFrame(late.command as string);
    expect(Math.abs(cmd.expiresAt / 1000 - (publishedAt + 1000))).toBeLessThan(500); // ttlMs is handed to the bus, which counts it from its own clock a moment later
    const alive = (await answerOf("alive-1", 20_000)).body;
    expect(alive).toMatchObject({ ok: true, code: "ok" });
    expect(plc.holding[10]).toBe(222);
    expect(totalWrites()).toBe(before + 1);
    // the retained command of the earlier test was delivered again at this start, and refused again
    expect((await answerOf("retained-1")).body).toMatchObject({ ok: false, code: "refused_retained" });
    expect(plc.holding[10]).toBe(222);
  }, 30_000);
});
