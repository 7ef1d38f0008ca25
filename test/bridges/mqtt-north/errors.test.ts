// A broker that refuses us (bad credentials, a certificate we do not trust) or a message (over its
// message_size_limit): a clear log line, a metric, the cursor kept, nothing committed lost.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Mosquitto } from "../../helpers/mosquitto.ts";
import { waitFor } from "../../helpers/index.ts";
import { frames, metric, range, startRig, subscriber } from "./harness.ts";

let broker: Mosquitto;
beforeAll(async () => {
  broker = await Mosquitto.start({ users: { edge: "right-password", cloud: "cloud-pw" }, tls: true, messageSizeLimit: 4000 });
});
afterAll(async () => {
  await broker.close();
});

describe("mqtt-north refused by the broker", () => {
  it("logs bad credentials clearly, counts them and keeps the cursor", async () => {
    const rig = await startRig({ url: broker.url, username: "edge", password: "wrong", reconnectMinMs: 100, reconnectMaxMs: 200 });
    try {
      await rig.log.append(frames(10));
      await waitFor(async () => (await metric(rig.registry, "edge_mqtt_connect_errors_total")) >= 2, "connect errors counted");
      expect(rig.logs.join("")).toMatch(/connection to mqtt:\/\/127\.0\.0\.1:\d+ failed: Connection refused: Not authorized/);
      expect(rig.log.cursor("mqtt-north")).toBe(0);
      expect(rig.bridge.publisher.acked).toBe(0);
    } finally {
      await rig.close();
    }
  });

  it("refuses a broker certificate signed by an unknown CA with a clear log line, and connects over TLS with the right CA", async () => {
    const bad = await startRig({ url: broker.tlsUrl, username: "edge", password: "right-password", ca: broker.tlsFiles!.otherCa, reconnectMinMs: 100, reconnectMaxMs: 200 });
    try {
      await bad.log.append(frames(5));
      await waitFor(async () => (await metric(bad.registry, "edge_mqtt_connect_errors_total")) >= 1, "TLS error counted");
      expect(bad.logs.join("")).toMatch(/connection to mqtts:\/\/localhost:\d+ failed: .*(certificate|self.signed|verify)/i);
      expect(bad.log.cursor("mqtt-north")).toBe(0);
    } finally {
      await bad.close();
    }
    const sub = await subscriber(broker.url, "default/gw1/batch", { username: "cloud", password: "cloud-pw" });
    const good = await startRig({ url: broker.tlsUrl, username: "edge", password: "right-password", ca: broker.tlsFiles!.ca });
    try {
      await good.log.append(frames(5));
      await waitFor(() => sub.offsets().length >= 5, "frames over TLS");
      expect(sub.offsets()).toEqual(range(1, 5));
    } finally {
      await good.close();
      await sub.close();
    }
  });

  it("splits batches the broker refuses as too large, counts the error, and loses nothing", async () => {
    const sub = await subscriber(broker.url, "default/gw1/batch", { username: "cloud", password: "cloud-pw" });
    // batches of 200 frames are ~16 kB of JSON, over the broker's 4000-byte message_size_limit
    const rig = await startRig({ url: broker.url, username: "edge", password: "right-password", qos: 1, batch: { maxFrames: 200, maxDelayMs: 5 }, reconnectMinMs: 50 });
    try {
      await rig.log.append(frames(600));
      await waitFor(() => new Set(sub.offsets()).size >= 600, "all 600 frames", 30_000).catch((e) => {
        console.log(rig.logs.join("").slice(-3000), broker.log.slice(-2000));
        throw e;
      });
      expect([...new Set(sub.offsets())].sort((a, b) => a - b)).toEqual(range(1, 600));
      expect(await metric(rig.registry, "edge_mqtt_publish_errors_total")).toBeGreaterThanOrEqual(1);
      expect(rig.logs.join("")).toMatch(/publish of offsets 1-\d+ \(\d+ bytes\) failed: .*cursor kept at 0/);
      for (const m of sub.got) expect(JSON.stringify(m.payload).length).toBeLessThan(4000);
      await waitFor(() => rig.log.cursor("mqtt-north") === 600, "cursor at 600");
    } finally {
      await rig.close();
      await sub.close();
    }
  }, 60_000);
});
