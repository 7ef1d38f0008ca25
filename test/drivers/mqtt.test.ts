// The MQTT source driver in a gateway, against a real mosquitto: device payloads become frames by the
// mapping; bad payloads are counted and reported as events, and nothing stops.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { encode } from "@msgpack/msgpack";
import mqtt, { type MqttClient } from "mqtt";
import { Quality } from "../../schemas/index.ts";
import { matchTopic } from "../../drivers/mqtt/index.ts";
import type { MqttSourceDriver } from "../../drivers/mqtt/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { waitFor } from "../helpers/index.ts";
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
`,
    "variables.yml": `tags:
  - { tag: plant/boiler/temp, driver: devices, type: float64, unit: degC }
  - { tag: plant/pump/on, driver: devices, type: bool }
  - { tag: packed/line/count, driver: devices, type: int64 }
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
    await device.publishAsync("plant/boiler/temp", "not json {", { qos: 1 });
    await device.publishAsync("plant/boiler/temp", JSON.stringify({ other: 1 }), { qos: 1 });
    await device.publishAsync("plant/boiler/temp", JSON.stringify({ data: { value: "hot" }, ts: 1 }), { qos: 1 });
    await device.publishAsync("plant/unknown/temp", JSON.stringify({ data: { value: 1 }, ts: 1 }), { qos: 1 });
    await waitFor(() => (drv.badPayloads.get("not_decodable") ?? 0) >= 1 && (drv.badPayloads.get("missing_path") ?? 0) >= 2 && (drv.badPayloads.get("wrong_type") ?? 0) >= 1, "bad payloads counted");
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
  });
});
