// The MQTT source driver in a gateway, against a real mosquitto: device payloads become frames by the
// mapping; bad payloads are counted and reported as events, and nothing stops; a device message is
// acknowledged to the broker only after its frame is committed, so a failed commit or a gateway crash
// before the commit makes the broker deliver it again.
import { afterAll, beforeAll, describe, expect, it, spyOn } from "bun:test";
import { join } from "node:path";
import { encode } from "@msgpack/msgpack";
import mqtt, { MqttClient, type Packet } from "mqtt";
import { Quality, type DataFrame, type Variable } from "../../schemas/index.ts";
import { createMqttSource, matchTopic, MqttCommitError } from "../../drivers/mqtt/index.ts";
import type { MqttSourceDriver } from "../../drivers/mqtt/index.ts";
import type { FrameSink } from "../../drivers/contract.ts";
import { EventLog } from "../../storage/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { spawnGateway, type GatewayProcess } from "../helpers/gateway-process.ts";
import { tempDir, waitFor, writeConfig } from "../helpers/index.ts";
import { Mosquitto } from "../helpers/mosquitto.ts";

let broker: Mosquitto;
let t: TestGateway;
let device: MqttClient;

beforeAll(async () => {
  broker = await Mosquitto.start();
  t = await startGateway({
    "endpoints.yml": `endpoints:\n  broker: { url: "${broker.url}" }\n`,
    "drivers.yml": `drivers:
  - id: devices
    type: mqtt
    endpoint: broker
    config:
      mappings:
        - { topic: "plant/+/temp", tag: "plant/{1}/temp", path: "data.value", timestamp: "ts", quality: "q" }
        - { topic: "plant/+/on", tag: "plant/{1}/on", path: "" }
        - { topic: "packed/#", tag: "packed/{1}", path: "v", payload: msgpack }
        - { topic: "plant/+/count", tag: "plant/{1}/count", path: "v" }
`,
    "variables.yml": `tags:
  - { tag: plant/boiler/temp, driver: devices, type: float64, unit: degC }
  - { tag: plant/pump/on, driver: devices, type: bool }
  - { tag: packed/line/count, driver: devices, type: int64 }
  - { tag: plant/line/count, driver: devices, type: int16 }
`,
  });
  await waitFor(() => ["Connected", "Active"].includes(t.gw.ctx.drivers.driver("devices")?.state ?? ""), "driver connected", 15_000);
  device = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
});

afterAll(async () => {
  await device?.endAsync(true);
  await t?.stop();
  await broker?.close();
});

const latest = (tag: string) => t.gw.ctx.log.latest().get(tag);

/** The mqtt.bad_payload events of one reason in the log. */
async function refusedEvents(reason: string): Promise<{ reason: string; refused: number; topic: string; message: string }[]> {
  const out: { reason: string; refused: number; topic: string; message: string }[] = [];
  for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["event"] })) {
    if (f.kind === "event" && f.type === "mqtt.bad_payload" && (f.data as { reason?: string }).reason === reason) out.push(f.data as never);
  }
  return out;
}

/** edge_mqtt_source_refused_total{reason} of the gateway. */
async function refusedCount(reason: string): Promise<number> {
  const m = await t.gw.ctx.metrics.registry.getSingleMetric("edge_mqtt_source_refused_total")?.get();
  return m ? m.values.filter((v) => v.labels.reason === reason).reduce((n, v) => n + v.value, 0) : 0;
}

/** A JSON document nested `depth` levels deep at `path` (200 KB for 100,000 levels). */
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

describe("mqtt source driver", () => {
  it("matches + and # wildcards and captures their levels", () => {
    expect(matchTopic("plant/+/temp", "plant/boiler/temp")).toEqual(["boiler"]);
    expect(matchTopic("plant/+/temp", "plant/boiler/x/temp")).toBeNull();
    expect(matchTopic("a/#", "a/b/c")).toEqual(["b/c"]);
    expect(matchTopic("a/b", "a/b/c")).toBeNull();
  });

  it("turns a JSON payload into a frame with the mapped value, source timestamp and quality", async () => {
    await waitFor(async () => {
      await device.publishAsync("plant/boiler/temp", JSON.stringify({ data: { value: 81.5 }, ts: 1_700_000_000_123, q: "Uncertain" }), { qos: 1 });
      return latest("plant/boiler/temp");
    }, "the boiler temperature", 15_000, 200);
    const f = latest("plant/boiler/temp")!;
    expect(f.value).toBe(81.5);
    expect(f.ts).toBe(1_700_000_000_123_000);
    expect(f.quality).toBe(Quality.Uncertain);
    expect(f.source).toBe("devices");
    await device.publishAsync("plant/pump/on", "true", { qos: 1 });
    await waitFor(() => latest("plant/pump/on")?.value === true, "the pump state");
  });

  it("decodes MessagePack payloads and keeps 64-bit integers exact", async () => {
    await device.publishAsync("packed/line/count", Buffer.from(encode({ v: 2n ** 62n + 3n }, { useBigInt64: true })), { qos: 1 });
    await waitFor(() => latest("packed/line/count")?.value === 2n ** 62n + 3n, "the 64-bit counter");
  });

  it("counts and reports payloads that are not JSON, miss the path or have the wrong type, and keeps running", async () => {
    const drv = (t.gw.ctx.drivers.driver("devices")!.driver as MqttSourceDriver);
    const before = latest("plant/boiler/temp")!.offset;
    // the event frame is the report (the gateway logs driver events through pino): nothing on the console
    const warn = spyOn(console, "warn");
    const error = spyOn(console, "error");
    await device.publishAsync("plant/boiler/temp", "not json {", { qos: 1 });
    await device.publishAsync("plant/boiler/temp", "still not json {", { qos: 1 });
    await device.publishAsync("plant/boiler/temp", JSON.stringify({ other: 1 }), { qos: 1 });
    await device.publishAsync("plant/boiler/temp", JSON.stringify({ data: { value: "hot" }, ts: 1 }), { qos: 1 });
    await device.publishAsync("plant/unknown/temp", JSON.stringify({ data: { value: 1 }, ts: 1 }), { qos: 1 });
    await waitFor(() => (drv.badPayloads.get("not_decodable") ?? 0) >= 2 && (drv.badPayloads.get("missing_path") ?? 0) >= 2 && (drv.badPayloads.get("wrong_type") ?? 0) >= 1, "bad payloads counted");
    // each is an event in the log with the reason
    const events: unknown[] = [];
    await waitFor(async () => {
      events.length = 0;
      for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["event"] })) if (f.kind === "event" && f.type === "mqtt.bad_payload") events.push(f.data);
      return events.length >= 4;
    }, "bad payload events");
    expect(events).toContainEqual(expect.objectContaining({ topic: "plant/boiler/temp", reason: "not_decodable", message: expect.stringContaining("not JSON") }));
    expect(events).toContainEqual(expect.objectContaining({ reason: "wrong_type", message: expect.stringContaining("tag 'plant/boiler/temp' is float64") }));

    // and the driver still works
    await device.publishAsync("plant/boiler/temp", JSON.stringify({ data: { value: 90 }, ts: Date.now() }), { qos: 1 });
    await waitFor(() => latest("plant/boiler/temp")!.offset > before && latest("plant/boiler/temp")!.value === 90, "a good value after the bad ones");
    // the first refusal of a reason is recorded at once, the next ones grouped (at most one event per
    // reason a second), each event saying how many messages it covers: together they count every message
    expect(drv.badPayloads.get("not_decodable")).toBe(2);
    await waitFor(async () => (await refusedEvents("not_decodable")).reduce((n, e) => n + e.refused, 0) === 2, "both undecodable messages recorded");
    expect((await refusedEvents("not_decodable")).length).toBeLessThanOrEqual(2);
    expect(warn).not.toHaveBeenCalled();
    expect(error).not.toHaveBeenCalled();
    warn.mockRestore();
    error.mockRestore();
  });
});

describe("mqtt source driver refusing messages it cannot handle", () => {
  it("refuses a 200 KB deeply nested payload and an out-of-range int16, counts each, and takes the good messages after them", async () => {
    const wrongType0 = await refusedCount("wrong_type");
    const range0 = await refusedCount("out_of_range");
    const deep = `{"v":${nested(100_000)}}`;
    expect(deep.length).toBeGreaterThan(200_000);
    await device.publishAsync("plant/line/count", deep, { qos: 1 });
    await device.publishAsync("plant/boiler/temp", `{"data":{"value":${nested(100_000)}},"ts":1}`, { qos: 1 });
    await device.publishAsync("plant/line/count", JSON.stringify({ v: 1_000_000 }), { qos: 1 });
    await device.publishAsync("plant/line/count", JSON.stringify({ v: -32_769 }), { qos: 1 });
    await device.publishAsync("plant/line/count", JSON.stringify({ v: 42 }), { qos: 1 });
    await waitFor(() => latest("plant/line/count")?.value === 42, "the good value after the refused ones", 15_000);
    expect(latest("plant/line/count")!.quality).toBe(Quality.Good);
    // the refused values never reached the log; the driver is still running
    for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === "plant/line/count") expect(f.value).toBe(42);
    expect(t.gw.ctx.drivers.driver("devices")!.state).toBe("Active");
    await waitFor(async () => (await refusedCount("wrong_type")) === wrongType0 + 2 && (await refusedCount("out_of_range")) === range0 + 2, "each refusal counted");
    // recorded in the log (driver events are appended without waiting: wait for their commit)
    const outOfRange = await waitFor(async () => ((await refusedEvents("out_of_range")).reduce((n, e) => n + e.refused, 0) === 2 ? refusedEvents("out_of_range") : null), "out-of-range refusals recorded");
    expect(outOfRange[0]).toMatchObject({ topic: "plant/line/count", message: expect.stringMatching(/^tag 'plant\/line\/count' is int16: (1000000|-32769) is outside \[-32768, 32767\]$/) });
    expect((await refusedEvents("wrong_type")).map((e) => e.message)).toContainEqual(expect.stringMatching(/^tag 'plant\/(line\/count|boiler\/temp)' is (int16|float64): got an array$/));
    // every refused message was acknowledged: nothing waits at the broker for a redelivery
    await device.publishAsync("plant/line/count", JSON.stringify({ v: 43 }), { qos: 1 });
    await waitFor(() => latest("plant/line/count")?.value === 43, "the next good value");
  }, 30_000);

  it("counts 10,000 bad payloads as 10,000 refusals, recorded in a few grouped events", async () => {
    const before = await refusedCount("not_decodable");
    const events0 = (await refusedEvents("not_decodable")).length;
    await Promise.all(Array.from({ length: 10_000 }, () => device.publishAsync("plant/boiler/temp", "not json {", { qos: 1 })));
    await waitFor(async () => (await refusedCount("not_decodable")) === before + 10_000, "10,000 refusals counted", 20_000);
    const recorded = async () => (await refusedEvents("not_decodable")).slice(events0);
    await waitFor(async () => (await recorded()).reduce((n, e) => n + e.refused, 0) === 10_000, "the events cover the 10,000 messages");
    const events = await recorded();
    expect(events.length).toBeLessThan(30);
    await device.publishAsync("plant/boiler/temp", JSON.stringify({ data: { value: 77 }, ts: Date.now() }), { qos: 1 });
    await waitFor(() => latest("plant/boiler/temp")?.value === 77, "a good value after the flood");
  }, 40_000);
});

// ---- acknowledgement after commit ---------------------------------------------------------------

const ackTag: Variable = { tag: "acks/m1", driver: "acks", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "default" };

/** The driver's FrameSink seam, with a commit the test controls (the log itself is tested in test/storage). */
function sinkWith(commit: (frames: DataFrame[], opts?: { urgent?: boolean }) => Promise<void>): FrameSink {
  return { send: async () => undefined, commit, event: () => undefined, isPaused: false, heartbeat: () => undefined };
}

async function startAcksDriver(tx: FrameSink, config: Record<string, unknown> = {}, tags: Variable[] = [ackTag]) {
  const drv = createMqttSource();
  drv.init({ id: "acks", config: { url: broker.url, clientId: "edge-src-acks-test", qos: 1, mappings: [{ topic: "acks/+", tag: "acks/{1}" }], ...config }, tags });
  const ctl = new AbortController();
  await drv.connect(undefined, ctl.signal);
  // the driver's own client: its outgoing packets are what the broker sees (private field, read for the test only)
  const client = (drv as unknown as { client: MqttClient }).client;
  const loop = drv.readLoop(tx, ctl.signal).then(
    () => null,
    (e: Error) => e,
  );
  await waitFor(() => client.connected, "the driver subscribed");
  return { drv, ctl, client, loop };
}

describe("mqtt source driver acknowledgements", () => {
  it("sends the PUBACK of a QoS 1 device message only after its frame is committed", async () => {
    const order: string[] = [];
    let release!: () => void;
    const committed = new Promise<void>((r) => (release = r));
    const { drv, ctl, client, loop } = await startAcksDriver(
      sinkWith(async (frames) => {
        order.push(`commit ${frames[0]!.value}`);
        await committed;
        order.push("committed");
      }),
    );
    client.on("packetsend", (p: Packet) => void (p.cmd === "puback" && order.push("puback")));
    try {
      await waitFor(async () => {
        // until the subscription is in place the broker drops what it cannot route
        if (order.length === 0) await device.publishAsync("acks/m1", "7.5", { qos: 1 });
        return order.length > 0;
      }, "the commit of the device message", 15_000, 300);
      // the commit is held: mqtt.js must not have acknowledged the message
      await Bun.sleep(300); // nothing to await: we check that something does NOT happen while the commit is held
      expect(order).toEqual(["commit 7.5"]);
      release();
      await waitFor(() => order.includes("puback"), "the PUBACK after the commit");
      expect(order.slice(0, 3)).toEqual(["commit 7.5", "committed", "puback"]);
    } finally {
      ctl.abort();
      await loop;
      await drv.shutdown();
    }
  });

  it("does not acknowledge a message whose commit failed: the broker delivers it again after the driver restarts", async () => {
    const seen: { value: unknown; failed: boolean }[] = [];
    const first = await startAcksDriver(
      sinkWith(async (frames) => {
        seen.push({ value: frames[0]!.value, failed: true });
        throw new Error("disk full");
      }),
    );
    const puback: number[] = [];
    first.client.on("packetsend", (p: Packet) => void (p.cmd === "puback" && puback.push((p as Packet & { messageId?: number }).messageId ?? 0)));
    await waitFor(async () => {
      if (seen.length === 0) await device.publishAsync("acks/m1", "41", { qos: 1 });
      return seen.length > 0;
    }, "the failed commit", 15_000, 300);
    // the read loop ends with the commit error (the manager would restart the driver)
    const err = await first.loop;
    expect(err).toBeInstanceOf(MqttCommitError);
    expect(err!.message).toContain("disk full");
    expect(puback).toEqual([]);
    first.ctl.abort();
    await first.drv.shutdown();
    // restarted: the same session, and the broker sends the unacknowledged message again
    const second = await startAcksDriver(
      sinkWith(async (frames) => void seen.push({ value: frames[0]!.value, failed: false })),
    );
    try {
      await waitFor(() => seen.some((s) => !s.failed), "the message delivered again", 15_000);
      expect(seen.find((s) => !s.failed)!.value).toBe(41);
    } finally {
      second.ctl.abort();
      await second.loop;
      await second.drv.shutdown();
    }
  });
});

// ---- many messages waiting for their commits at once ----------------------------------------------

type Traced = { ev: "publish" | "ack" | "pubcomp"; messageId: number; value?: number; committed?: boolean };

/**
 * Records the packets of the driver's client with id `clientId` from its first byte on (a resumed session
 * delivers right after CONNACK, before the test could add a listener): each PUBLISH received with its
 * value, and each PUBACK/PUBREC sent with whether the frame of that message was committed at that moment
 * (the log sets `offset` on a frame object when it commits it).
 */
function traceDriverPackets(clientId: string, frameOf: (value: number) => DataFrame | undefined) {
  const trace: Traced[] = [];
  const valueById = new Map<number, number>();
  const emit = MqttClient.prototype.emit as (this: MqttClient, ev: string | symbol, ...args: unknown[]) => boolean;
  const spy = spyOn(MqttClient.prototype, "emit").mockImplementation(function (this: MqttClient, ev: string | symbol, ...args: unknown[]) {
    if (this.options.clientId === clientId) {
      const p = args[0] as Packet & { messageId?: number; payload?: Buffer };
      if (ev === "packetreceive" && p.cmd === "publish" && p.messageId) {
        const value = Number(p.payload!.toString());
        valueById.set(p.messageId, value);
        trace.push({ ev: "publish", messageId: p.messageId, value });
      } else if (ev === "packetsend" && (p.cmd === "puback" || p.cmd === "pubrec")) {
        const value = valueById.get(p.messageId!);
        const frame = value === undefined ? undefined : frameOf(value);
        trace.push({ ev: "ack", messageId: p.messageId!, value, committed: (frame as { offset?: number } | undefined)?.offset !== undefined });
      } else if (ev === "packetsend" && p.cmd === "pubcomp") trace.push({ ev: "pubcomp", messageId: p.messageId! });
    }
    return emit.call(this, ev, ...args);
  } as never);
  return { trace, restore: () => spy.mockRestore() };
}

const pipeTags: Variable[] = Array.from({ length: 10 }, (_, i) => ({ ...ackTag, tag: `pipe/t${i}`, driver: "acks" }));

describe("mqtt source driver with many messages in flight", () => {
  const cases = [
    { qos: 1, protocolVersion: 5 },
    { qos: 2, protocolVersion: 5 },
    { qos: 1, protocolVersion: 4 }, // MQTT 3.1.1: no Receive Maximum, the broker's in-flight limit applies
  ] as const;
  for (const { qos, protocolVersion } of cases) {
    it(`takes 500 queued QoS ${qos} messages (MQTT ${protocolVersion === 5 ? "5" : "3.1.1"}) in a few shared commits and sends every ${qos === 1 ? "PUBACK" : "PUBREC"} after its commit, in arrival order`, async () => {
      const tmp = tempDir();
      const log = await EventLog.open({ path: join(tmp.path, "log.duckdb"), maxDelayMs: 10 });
      const frames = new Map<number, DataFrame>();
      // what the driver manager's sink does for commit (drivers/manager.ts), remembering each frame object
      const sink = sinkWith(async (fs) => {
        for (const f of fs) frames.set(f.value as number, f);
        await log.append(fs);
      });
      const clientId = `edge-src-pipe-qos${qos}-v${protocolVersion}`;
      const config = { clientId, qos, protocolVersion, mappings: [{ topic: "pipe/+", tag: "pipe/{1}" }] };
      try {
        // run 1: the session and its subscription exist at the broker
        const first = await startAcksDriver(sink, config, pipeTags);
        const probeAcked = new Promise<void>((r) => first.client.on("packetsend", (p: Packet) => void ((p.cmd === "puback" || p.cmd === "pubrec") && r())));
        await waitFor(async () => {
          if (!frames.has(-1)) await device.publishAsync("pipe/t0", "-1", { qos });
          return frames.has(-1);
        }, "the driver subscribed", 15_000, 300);
        await probeAcked;
        first.ctl.abort();
        await first.loop;
        await first.drv.shutdown();
        // 500 messages wait at the broker, then the driver takes them all at once
        for (let i = 0; i < 500; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => device.publishAsync(`pipe/t${(i + k) % 10}`, String(i + k), { qos })));
        let commits = 0;
        log.on("commit", () => void commits++);
        const { trace, restore } = traceDriverPackets(clientId, (v) => frames.get(v));
        const second = await startAcksDriver(sink, config, pipeTags);
        try {
          await waitFor(() => trace.filter((e) => e.ev === "ack" && e.value! >= 0).length >= 500, "500 acks", 30_000);
          if (qos === 2) await waitFor(() => trace.filter((e) => e.ev === "pubcomp").length >= 500, "the QoS 2 handshakes completed (PUBCOMP)", 30_000);
        } finally {
          restore();
          second.ctl.abort();
          expect(await second.loop).toBeNull();
          await second.drv.shutdown();
        }
        const acks = trace.filter((e) => e.ev === "ack");
        const received = trace.filter((e) => e.ev === "publish");
        // never before the commit
        expect(acks.filter((a) => !a.committed)).toEqual([]);
        // in arrival order, one ack per message
        expect(acks.map((a) => a.value)).toEqual(received.map((r) => r.value));
        expect(received.filter((r) => r.value! >= 0).map((r) => r.value)).toEqual(Array.from({ length: 500 }, (_, i) => i));
        // one message per commit (the old serial handling) would be 500 commits
        expect(commits).toBeLessThan(50);
        // committed in arrival order
        const offsets = Array.from({ length: 500 }, (_, i) => (frames.get(i) as { offset?: number }).offset!);
        expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      } finally {
        await log.close();
        tmp.cleanup();
      }
    }, 60_000);
  }

  it("keeps at most receiveMaximum messages waiting for their commits: the broker holds the rest until acks free the window", async () => {
    const pending: { value: number; release: () => void }[] = [];
    let hold = true;
    const taken: number[] = [];
    const { drv, ctl, loop } = await startAcksDriver(
      sinkWith(async (fs) => {
        taken.push(fs[0]!.value as number);
        if (hold) await new Promise<void>((release) => pending.push({ value: fs[0]!.value as number, release }));
      }),
      { clientId: "edge-src-window-test", receiveMaximum: 10, mappings: [{ topic: "window/+", tag: "pipe/{1}" }] },
      pipeTags,
    );
    try {
      await waitFor(async () => {
        if (taken.length === 0) await device.publishAsync("window/t0", "-1", { qos: 1 });
        return taken.length > 0;
      }, "the driver subscribed", 15_000, 300);
      for (let i = 0; i < 30; i++) await device.publishAsync(`window/t${i % 10}`, String(i), { qos: 1 });
      // the probe and the first 9: ten commits wait at once (serial handling would show one)
      await waitFor(() => taken.length >= 10, "ten commits in flight");
      await Bun.sleep(300); // nothing to await: we check that no 11th message arrives while ten are unacknowledged
      expect(taken).toEqual([-1, ...Array.from({ length: 9 }, (_, i) => i)]);
      hold = false;
      for (const p of pending.splice(0)) p.release();
      await waitFor(() => taken.length >= 31, "the rest after the acks");
      expect(taken).toEqual([-1, ...Array.from({ length: 30 }, (_, i) => i)]);
    } finally {
      hold = false;
      for (const p of pending.splice(0)) p.release();
      ctl.abort();
      await loop;
      await drv.shutdown();
    }
  });

  it("commits the message that fills the window at once (urgent), not after log.maxDelayMs: the broker sends nothing more until then", async () => {
    const tmp = tempDir();
    // a long group-commit delay: waiting it out would show as seconds per window
    const log = await EventLog.open({ path: join(tmp.path, "log.duckdb"), maxDelayMs: 3000 });
    const urgent: boolean[] = [];
    const sink = sinkWith(async (fs, opts) => {
      urgent.push(opts?.urgent === true);
      await log.append(fs, opts?.urgent ? { urgent: true } : undefined);
    });
    const { drv, ctl, loop } = await startAcksDriver(sink, { clientId: "edge-src-urgent-test", receiveMaximum: 5, mappings: [{ topic: "urgent/+", tag: "pipe/{1}" }] }, pipeTags);
    try {
      await waitFor(async () => {
        if (urgent.length === 0) await device.publishAsync("urgent/t0", "-1", { qos: 1 });
        return log.head > 0;
      }, "the driver subscribed and its probe committed", 15_000, 500);
      const head = log.head;
      urgent.length = 0;
      const t0 = performance.now();
      // a publisher with its own window: 15 messages, three windows of 5
      await Promise.all(Array.from({ length: 15 }, (_, i) => device.publishAsync(`urgent/t${i % 10}`, String(i), { qos: 1 })));
      await waitFor(() => log.head >= head + 15, "15 messages committed", 10_000, 5);
      // three windows waiting out 3 s each would take 9 s
      expect(performance.now() - t0).toBeLessThan(2500);
      expect(urgent.filter(Boolean).length).toBeGreaterThanOrEqual(1);
    } finally {
      ctl.abort();
      await loop;
      await drv.shutdown();
      await log.close();
      tmp.cleanup();
    }
  }, 30_000);

  it("acknowledges the messages before a failed commit and none from it on, and the broker delivers those again", async () => {
    const clientId = "edge-src-pipe-fail";
    const seen: number[] = [];
    const frames = new Map<number, DataFrame>();
    const config = { clientId, mappings: [{ topic: "pfail/+", tag: "pipe/{1}" }] };
    // commits take 50 ms and run concurrently; the commit of message 5 fails
    const failing = sinkWith(async (fs) => {
      const v = fs[0]!.value as number;
      frames.set(v, fs[0]!);
      seen.push(v);
      await Bun.sleep(50);
      if (v === 5) throw new Error("disk full");
      (fs[0] as { offset?: number }).offset = v; // committed (what the log does)
    });
    const first = await startAcksDriver(failing, config, pipeTags);
    await waitFor(async () => {
      if (!seen.includes(-1)) await device.publishAsync("pfail/t0", "-1", { qos: 1 });
      return seen.includes(-1);
    }, "the driver subscribed", 15_000, 300);
    await waitFor(() => (frames.get(-1) as { offset?: number } | undefined)?.offset !== undefined, "the probe committed");
    const { trace, restore } = traceDriverPackets(clientId, (v) => frames.get(v));
    let err: Error | null;
    try {
      await Promise.all(Array.from({ length: 20 }, (_, i) => device.publishAsync(`pfail/t${i % 10}`, String(i), { qos: 1 })));
      err = await first.loop;
    } finally {
      restore();
      first.ctl.abort();
      await first.drv.shutdown();
    }
    expect(err).toBeInstanceOf(MqttCommitError);
    const acked = trace.filter((e) => e.ev === "ack").map((e) => e.value);
    expect(trace.filter((e) => e.ev === "ack" && !e.committed)).toEqual([]);
    // in order up to the failed one, nothing after it (whatever the order the commits ended in)
    expect(acked.filter((v) => v! >= 0)).toEqual([0, 1, 2, 3, 4]);
    // restarted: 5..19 come again
    const again: number[] = [];
    const second = await startAcksDriver(sinkWith(async (fs) => void again.push(fs[0]!.value as number)), config, pipeTags);
    try {
      await waitFor(() => Array.from({ length: 15 }, (_, i) => i + 5).every((v) => again.includes(v)), "5..19 delivered again", 15_000);
    } finally {
      second.ctl.abort();
      await second.loop;
      await second.drv.shutdown();
    }
  });
});

// ---- a gateway killed before the commit --------------------------------------------------------

async function driverState(p: GatewayProcess): Promise<string | undefined> {
  const h = (await (await fetch(`${p.url}/healthz`)).json()) as { drivers: { id: string; state: string }[] };
  return h.drivers.find((d) => d.id === "dev")?.state;
}

async function valuesInLog(dataDir: string, tagName: string): Promise<unknown[]> {
  const log = await EventLog.open({ path: join(dataDir, "log.duckdb"), tailFrames: 0 });
  try {
    const out: unknown[] = [];
    for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.tag === tagName) out.push(f.value);
    return out;
  } finally {
    await log.close();
  }
}

describe("mqtt source driver across a gateway crash", () => {
  it("gets a QoS 1 message again after a SIGKILL before its commit, and commits it after the restart", async () => {
    const tmp = tempDir();
    const dataDir = join(tmp.path, "data");
    const config = (logLine: string) =>
      writeConfig(join(tmp.path, "config"), {
        "gateway.yml": ["gatewayId: gwc", `dataDir: ${dataDir}`, "watchConfig: false", "http: { host: 127.0.0.1, port: 0 }", "opcua: { enabled: false }", "modbusSlave: { enabled: false }", logLine].join("\n"),
        "endpoints.yml": `endpoints:\n  broker: { url: "${broker.url}" }\n`,
        "drivers.yml": `drivers:\n  - id: dev\n    type: mqtt\n    endpoint: broker\n    config: { clientId: edge-src-crash-test, qos: 1, mappings: [{ topic: "crash/+", tag: "crash/{1}" }] }\n`,
        "variables.yml": "tags:\n  - { tag: crash/v, driver: dev, type: float64 }\n",
      });
    let gw: GatewayProcess | null = null;
    try {
      // run 1: the driver's session and subscription exist at the broker (it keeps them while we are away)
      gw = await spawnGateway(config(""), { cwd: tmp.path, stderr: "inherit" });
      await waitFor(async () => {
        await device.publishAsync("crash/v", "1", { qos: 1 });
        return (await driverState(gw!)) === "Active";
      }, "a first message through the driver", 20_000, 300);
      await gw.child.stop("SIGTERM");
      // run 2: commits wait 10 s, so the gateway dies with the message received and not committed
      gw = await spawnGateway(config("log: { maxDelayMs: 10000 }"), { cwd: tmp.path, stderr: "inherit" });
      await device.publishAsync("crash/v", "42", { qos: 1 });
      await waitFor(async () => (await driverState(gw!)) === "Active", "the driver to receive the message", 8_000, 50);
      await gw.child.stop("SIGKILL");
      expect(await valuesInLog(dataDir, "crash/v")).not.toContain(42); // killed before the commit
      // run 3: the broker sends the unacknowledged message again and it is committed
      gw = await spawnGateway(config(""), { cwd: tmp.path, stderr: "inherit" });
      await waitFor(async () => {
        const tags = (await (await fetch(`${gw!.url}/api/tags`)).json()) as { tag: string; value: unknown }[];
        return tags.find((t) => t.tag === "crash/v")?.value === 42;
      }, "the redelivered message committed", 20_000, 100);
      await gw.child.stop("SIGTERM");
      gw = null;
      expect(await valuesInLog(dataDir, "crash/v")).toContain(42);
    } finally {
      await gw?.child.stop("SIGKILL");
      tmp.cleanup();
    }
  }, 60_000);
});
