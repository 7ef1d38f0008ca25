// The uplink delivers committed frames to a real mosquitto in offset order, with the documented topics,
// payloads and MQTT 5 properties, and moves its cursor only over acknowledged offsets.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Mosquitto } from "../../helpers/mosquitto.ts";
import { tempDir, waitFor } from "../../helpers/index.ts";
import { frames, metric, range, startRig, subscriber, tag } from "./harness.ts";
import { parseMqttNorthConfig } from "../../../bridges/mqtt-north/config.ts";
import { ConfigError } from "../../../schemas/errors.ts";

let broker: Mosquitto;
beforeAll(async () => {
  broker = await Mosquitto.start();
});
afterAll(async () => {
  await broker.close();
});

describe("mqtt-north delivery", () => {
  it("publishes single frames on {tenant}/{device}/{tag} in offset order with JSON payload and MQTT 5 properties", async () => {
    const sub = await subscriber(broker.url, "t1/gw1/#");
    const rig = await startRig({ url: broker.url, qos: 1, batch: { maxFrames: 1 } }, { tags: [tag("a/x", "t1"), tag("a/y", "t1")] });
    try {
      await rig.log.append(frames(50, 0, ["a/x", "a/y"]));
      await waitFor(() => sub.offsets().length >= 50, "50 messages", 15_000);
      expect(sub.offsets()).toEqual(range(1, 50));
      const first = sub.got[0]!;
      expect(first.topic).toBe("t1/gw1/a/x");
      expect(sub.got[1]!.topic).toBe("t1/gw1/a/y");
      expect(first.payload).toEqual({ offset: 1, tag: "a/x", value: 0, ts: expect.any(Number), quality: 0 });
      expect(first.contentType).toBe("application/json");
      expect(first.userProperties).toEqual({ gatewayId: "gw1", offsets: "1-1" });
      await waitFor(() => rig.log.cursor("mqtt-north") === 50, "cursor at 50");
      expect(await metric(rig.registry, "edge_mqtt_messages_published_total")).toBe(50);
      expect(await metric(rig.registry, "edge_mqtt_frames_published_total")).toBe(50);
      expect(await metric(rig.registry, "edge_mqtt_bytes_published_total")).toBeGreaterThan(50 * 40);
      // one latency observation per frame, in the Prometheus text format
      const text = await rig.registry.metrics();
      expect(text).toContain("# TYPE edge_frame_latency_ms histogram");
      expect(text).toContain("edge_frame_latency_ms_count 50");
      expect(text).toContain('edge_frame_latency_ms_bucket{le="+Inf"} 50');
    } finally {
      await rig.close();
      await sub.close();
    }
  });

  it("batches frames into MessagePack messages on {tenant}/{device}/batch, bounded by maxFrames, in offset order", async () => {
    const sub = await subscriber(broker.url, "default/gw1/batch", { format: "msgpack", qos: 2 });
    const rig = await startRig({ url: broker.url, qos: 2, payload: "msgpack", batch: { maxFrames: 100, maxDelayMs: 10 } });
    try {
      const big = frames(1000);
      big[3]!.value = 2n ** 60n + 1n; // 64-bit integers stay exact
      await rig.log.append(big);
      await waitFor(() => sub.offsets().length >= 1000, "1000 frames", 15_000);
      expect(sub.offsets()).toEqual(range(1, 1000));
      for (const m of sub.got) {
        expect(m.offsets.length).toBeLessThanOrEqual(100);
        expect(m.contentType).toBe("application/msgpack");
        expect(m.userProperties!.offsets).toBe(`${m.offsets[0]}-${m.offsets.at(-1)}`);
      }
      const withBig = sub.got.flatMap((m) => (m.payload as { frames: { offset: number; value: unknown }[] }).frames).find((f) => f.offset === 4);
      expect(withBig!.value).toBe(2n ** 60n + 1n);
      expect(sub.got[0]!.payload).toMatchObject({ gateway: "gw1", first: 1 });
      await waitFor(() => rig.log.cursor("mqtt-north") === 1000, "cursor at 1000");
    } finally {
      await rig.close();
      await sub.close();
    }
  });

  it("sends a partial batch after maxDelayMs and moves the cursor over non-data frames", async () => {
    const sub = await subscriber(broker.url, "default/gw1/batch");
    const rig = await startRig({ url: broker.url, batch: { maxFrames: 500, maxDelayMs: 30 } });
    try {
      await rig.log.append(frames(3));
      await rig.log.append([{ kind: "event", type: "driver.state", source: "sim", ts: Date.now() * 1000 }]);
      await waitFor(() => sub.offsets().length >= 3, "a partial batch", 10_000);
      expect(sub.offsets()).toEqual([1, 2, 3]);
      await waitFor(() => rig.log.cursor("mqtt-north") === 4, "cursor over the event at 4");
    } finally {
      await rig.close();
      await sub.close();
    }
  });

  it("publishes a retained birth message and leaves a retained 'offline' on stop", async () => {
    const rig = await startRig({ url: broker.url });
    const sub = await subscriber(broker.url, "gw1/status");
    try {
      await waitFor(() => sub.got.some((m) => (m.payload as { status: string }).status === "online"), "online status");
      await rig.close();
      await waitFor(() => sub.got.some((m) => (m.payload as { status: string }).status === "offline"), "offline status");
      const late = await subscriber(broker.url, "gw1/status");
      await waitFor(() => late.got.length > 0, "the retained status");
      expect((late.got[0]!.payload as { status: string }).status).toBe("offline");
      await late.close();
    } finally {
      await sub.close();
    }
  });

  it("waits at stop for the in-flight messages to be acknowledged, so a clean restart sends no frame twice", async () => {
    const tmp = tempDir();
    const sub = await subscriber(broker.url, "default/gw1/batch");
    const section = { url: broker.url, qos: 1, maxInflight: 64, batch: { maxFrames: 5, maxDelayMs: 5 } };
    try {
      let rig = await startRig(section, { dir: tmp.path });
      await rig.log.append(frames(4000));
      // stop in mid-stream, with the window full of unacknowledged messages
      await waitFor(() => sub.offsets().length >= 500, "the first frames", 15_000, 1);
      expect(rig.bridge.publisher.inflight).toBeGreaterThan(0);
      await rig.close();
      rig = await startRig(section, { dir: tmp.path });
      expect(rig.log.cursor("mqtt-north")).toBeGreaterThanOrEqual(500);
      await waitFor(() => sub.offsets().length >= 4000, "all 4000 frames", 30_000);
      await waitFor(() => rig.log.cursor("mqtt-north") === 4000, "cursor at 4000");
      await rig.close();
      const got = sub.offsets();
      expect(got).toEqual(range(1, 4000)); // in order, nothing twice
    } finally {
      await sub.close();
      tmp.cleanup();
    }
  }, 60_000);

  it("refuses a bad mqtt section naming gateway.yml and the path", () => {
    expect(() => parseMqttNorthConfig({ enabled: true, qos: 3 }, "/x/gateway.yml")).toThrow(ConfigError);
    expect(() => parseMqttNorthConfig({ enabled: true, qos: 3 }, "/x/gateway.yml")).toThrow(/\/x\/gateway\.yml at mqtt\.qos/);
    expect(() => parseMqttNorthConfig({ url: "http://x" }, "gateway.yml")).toThrow(/at mqtt\.url/);
    expect(() => parseMqttNorthConfig({ batch: { maxFrames: 0 } }, "gateway.yml")).toThrow(/at mqtt\.batch\.maxFrames/);
  });
});

describe("mqtt-north alarm transitions", () => {
  it("publishes each alarm transition as one JSON message on {tenant}/{device}/alarms, in offset order with the data, and moves the cursor over it", async () => {
    const sub = await subscriber(broker.url, "t1/gw1/#");
    const rig = await startRig({ url: broker.url, qos: 1, batch: { maxFrames: 1 } }, { tags: [tag("a/x", "t1")] });
    try {
      const ts = Date.now() * 1000;
      const state = { id: "a/x:H", tag: "a/x", kind: "H", priority: "high", active: true, acked: false, message: "a/x above 90", value: 95, since: ts };
      await rig.log.append([
        ...frames(2, 0, ["a/x"]),
        { kind: "event", type: "alarm.active", source: "alarms", tag: "a/x", ts, data: state },
        { kind: "event", type: "driver.state", source: "plc", ts, data: { state: "Active" } }, // not an alarm: not published
        { kind: "event", type: "alarm.acked", source: "alarms", tag: "a/x", ts, data: { ...state, acked: true, actor: "alice" } },
        ...frames(1, 2, ["a/x"]),
      ]);
      await waitFor(() => sub.got.length >= 5, "3 data messages and 2 alarm transitions", 15_000);
      await waitFor(() => rig.log.cursor("mqtt-north") === 6, "cursor at 6");
      expect(sub.got.map((m) => m.topic)).toEqual(["t1/gw1/a/x", "t1/gw1/a/x", "t1/gw1/alarms", "t1/gw1/alarms", "t1/gw1/a/x"]);
      const alarms = sub.got.filter((m) => m.topic === "t1/gw1/alarms").map((m) => m.payload as Record<string, unknown>);
      expect(alarms[0]).toMatchObject({ offset: 3, type: "alarm.active", tag: "a/x", id: "a/x:H", active: true, acked: false, priority: "high" });
      expect(alarms[1]).toMatchObject({ offset: 5, type: "alarm.acked", id: "a/x:H", acked: true, actor: "alice" });
      expect(sub.got.find((m) => m.topic === "t1/gw1/alarms")!.contentType).toBe("application/json");
    } finally {
      await rig.close();
      await sub.close();
    }
  });
});
