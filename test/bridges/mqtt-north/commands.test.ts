// MQTT commands with static tenant tokens (mqtt.commands.staticTokens: true; JWTs are tested end to end
// in commands-auth.test.ts): a JSON command on {tenant}/cmd/{tag} (or a custom command topic) with the
// tenant's token becomes a CmdFrame (origin mqtt), and the sink's acknowledgement comes back on {tenant}/ack/{tag}
// with its code. The sink here is a small fake executor that follows the log's cmd frames and appends
// an AckFrame for each (except for tags it is told to leave unanswered).
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import mqtt, { type MqttClient } from "mqtt";
import type { AckFrame, CmdFrame, Logged } from "../../../schemas/frames.ts";
import { CommandBus } from "../../../storage/commands.ts";
import { Mosquitto } from "../../helpers/mosquitto.ts";
import { waitFor } from "../../helpers/index.ts";
import { startRig, tag, type Rig } from "./harness.ts";
import { parseMqttNorthConfig } from "../../../bridges/mqtt-north/config.ts";

let broker: Mosquitto;
let rig: Rig;
let bus: CommandBus;
let cloud: MqttClient;
const acks: { topic: string; body: Record<string, unknown> }[] = [];
const executed: Logged<CmdFrame>[] = [];
const stopSink = new AbortController();

beforeAll(async () => {
  broker = await Mosquitto.start();
  const setpoint = { ...tag("line/setpoint", "acme"), access: "RW" as const, min: 0, max: 100 };
  rig = await startRig(
    { url: broker.url, commands: { enabled: true, staticTokens: true, tenants: ["acme", "globex"], tokens: { acme: "acme-secret-token", globex: "globex-secret-token" }, timeoutMs: 5000 } },
    { tags: [setpoint, tag("line/temp", "acme")], commands: (log) => ((bus = new CommandBus(log)), bus.start(), bus) },
  );
  fakeSink(rig, executed);
  cloud = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  cloud.on("message", (topic, payload) => acks.push({ topic, body: JSON.parse(payload.toString()) }));
  await cloud.subscribeAsync("acme/ack/#", { qos: 1 });
  await waitFor(() => rig.bridge.client?.connected, "bridge connected");
});

/** Executes every command (records it) and acknowledges it ok, except on the tags in `silent`. */
function fakeSink(r: Rig, into: Logged<CmdFrame>[], silent: ReadonlySet<string> = new Set()) {
  void (async () => {
    for await (const page of r.log.follow({ from: r.log.head + 1, kinds: ["cmd"], signal: stopSink.signal })) {
      for (const c of page as Logged<CmdFrame>[]) {
        into.push(c);
        if (silent.has(c.tag)) continue;
        const ack: AckFrame = { kind: "ack", cmd: c.id, tag: c.tag, ok: true, status: "ok", code: "ok", ts: Date.now() * 1000, source: "fake-sink" };
        await r.log.append([ack]);
      }
    }
  })();
}

afterAll(async () => {
  stopSink.abort();
  await cloud.endAsync(true);
  await rig.close();
  await bus.stop();
  await broker.close();
});

const ackFor = (id: string) => acks.find((a) => a.body.id === id);

describe("mqtt-north commands", () => {
  it("executes a command from {tenant}/cmd/{tag} with origin mqtt, the tenant token's actor, and publishes the ack on {tenant}/ack/{tag}", async () => {
    const send = () => cloud.publishAsync("acme/cmd/line/setpoint", JSON.stringify({ ts: Date.now(), id: "c-1", value: 42, token: "acme-secret-token" }), { qos: 1, properties: { userProperties: { actor: "scada-7" } } });
    await send();
    const a = await waitFor(() => ackFor("c-1"), "the ack of c-1", 15_000);
    expect(a.topic).toBe("acme/ack/line/setpoint");
    expect(typeof a.body.offset).toBe("number");
    expect(a.body).toMatchObject({ id: "c-1", ok: true, status: "ok", code: "ok" });
    expect(executed).toHaveLength(1);
    // the client-sent actor is ignored: a static token says only which tenant it is
    expect(executed[0]).toMatchObject({ id: a.body.command, tag: "line/setpoint", value: 42, origin: "mqtt", actor: "mqtt:tenant-token:acme", tenant: "acme" });
    // the same id again (a QoS 1 redelivery) is not executed twice
    await send();
    await waitFor(() => acks.filter((x) => x.body.id === "c-1").length >= 2, "the second ack of c-1");
    expect(executed).toHaveLength(1);
  });

  it("refuses commands without the tenant's token, out of range, or on a read-only tag, with the reason", async () => {
    await cloud.publishAsync("acme/cmd/line/setpoint", JSON.stringify({ ts: Date.now(), id: "c-2", value: 1, token: "wrong-token-xx" }), { qos: 1 });
    await cloud.publishAsync("acme/cmd/line/setpoint", JSON.stringify({ ts: Date.now(), id: "c-3", value: 500, token: "acme-secret-token" }), { qos: 1 });
    await cloud.publishAsync("acme/cmd/line/temp", JSON.stringify({ ts: Date.now(), id: "c-4", value: 1, token: "acme-secret-token" }), { qos: 1 });
    await cloud.publishAsync("acme/cmd/line/setpoint", "{not json", { qos: 1 });
    await waitFor(() => ackFor("c-2") && ackFor("c-3") && ackFor("c-4") && acks.some((a) => a.body.code === "invalid_payload"), "four refusals");
    expect(ackFor("c-2")!.body).toMatchObject({ ok: false, status: "refused", code: "unauthorized" });
    expect(ackFor("c-3")!.body).toMatchObject({ ok: false, status: "refused", code: "refused_out_of_range" });
    expect(ackFor("c-4")!.body).toMatchObject({ ok: false, status: "refused", code: "refused_not_writable" });
    expect(executed).toHaveLength(1);
  });

  it("refuses another tenant's static token, or one that only starts like the right one, compared in constant time", async () => {
    await cloud.publishAsync("acme/cmd/line/setpoint", JSON.stringify({ ts: Date.now(), id: "s-1", value: 1, token: "globex-secret-token" }), { qos: 1 });
    await cloud.publishAsync("acme/cmd/line/setpoint", JSON.stringify({ ts: Date.now(), id: "s-2", value: 1, token: "acme-secret-token-and-more" }), { qos: 1 });
    await cloud.publishAsync("acme/cmd/line/setpoint", JSON.stringify({ ts: Date.now(), id: "s-3", value: 1, token: "acme-secret-toke" }), { qos: 1 });
    await waitFor(() => ackFor("s-1") && ackFor("s-2") && ackFor("s-3"), "three refusals");
    for (const id of ["s-1", "s-2", "s-3"]) expect(ackFor(id)!.body).toMatchObject({ ok: false, status: "refused", code: "unauthorized" });
    expect(executed).toHaveLength(1);
  });
});

describe("mqtt-north commands on a custom topic", () => {
  let custom: Rig;
  let customBus: CommandBus;
  const seen: Logged<CmdFrame>[] = [];
  beforeAll(async () => {
    const setpoint = { ...tag("line/setpoint", "acme"), access: "RW" as const };
    const silent = { ...tag("line/silent", "acme"), access: "RW" as const };
    custom = await startRig(
      { url: broker.url, commands: { enabled: true, topic: "site/{device}/{tenant}/write/#", staticTokens: true, tenants: ["acme"], tokens: { acme: "acme-secret-token" }, timeoutMs: 300 } },
      { tags: [setpoint, silent], commands: (log) => ((customBus = new CommandBus(log)), customBus.start(), customBus) },
    );
    fakeSink(custom, seen, new Set(["line/silent"]));
    await waitFor(() => custom.bridge.client?.connected, "bridge connected");
  });
  afterAll(async () => {
    await custom.close();
    await customBus.stop();
  });

  it("executes commands published on the configured topic, the tag being what '#' matches", async () => {
    // sent again until answered (the subscription goes out after CONNACK); the same id is executed once
    const a = await waitFor(async () => {
      await cloud.publishAsync("site/gw1/acme/write/line/setpoint", JSON.stringify({ ts: Date.now(), id: "k-1", value: 7, token: "acme-secret-token" }), { qos: 1 });
      return ackFor("k-1");
    }, "the ack of k-1", 15_000, 100);
    expect(a.topic).toBe("acme/ack/line/setpoint");
    expect(a.body).toMatchObject({ ok: true, status: "ok", code: "ok" });
    expect(seen.filter((c) => c.id === a.body.command)).toHaveLength(1);
    expect(seen.find((c) => c.id === a.body.command)).toMatchObject({ tag: "line/setpoint", value: 7, origin: "mqtt", tenant: "acme" });
  });

  it("answers a command without an ack in time with timeout_outcome_unknown, saying the outcome is unknown", async () => {
    await cloud.publishAsync("site/gw1/acme/write/line/silent", JSON.stringify({ ts: Date.now(), id: "k-2", value: 1, token: "acme-secret-token" }), { qos: 1 });
    const a = await waitFor(() => ackFor("k-2"), "the answer of k-2", 15_000);
    expect(a.body).toMatchObject({ ok: false, status: "timeout", code: "timeout_outcome_unknown", offset: expect.any(Number) });
    expect(a.body.error).toContain("may or may not have been applied");
  });

  it("refuses a command topic template without {tenant} or not ending in '/#'", () => {
    expect(() => parseMqttNorthConfig({ enabled: true, commands: { topic: "cmd/#" } })).toThrow(/mqtt\.commands\.topic/);
    expect(() => parseMqttNorthConfig({ enabled: true, commands: { topic: "{tenant}/cmd/+" } })).toThrow(/mqtt\.commands\.topic/);
  });

  it("refuses static tokens unless staticTokens is true, and staticTokens without a token, naming the field", () => {
    expect(() => parseMqttNorthConfig({ enabled: true, commands: { tokens: { acme: "acme-secret-token" } } })).toThrow(/mqtt\.commands\.tokens.*staticTokens: true/);
    expect(() => parseMqttNorthConfig({ enabled: true, commands: { staticTokens: true } })).toThrow(/mqtt\.commands\.tokens/);
    expect(() => parseMqttNorthConfig({ enabled: true, commands: { ttlMs: 90_000, maxTtlMs: 60_000 } })).toThrow(/mqtt\.commands\.ttlMs/);
  });
});
