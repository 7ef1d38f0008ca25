// The uplink's reader is a supervised log consumer: a failed log read is retried from the acknowledged
// offset and every frame still reaches the broker in order; its lag counts from the first unacknowledged
// frame even when the broker has never been reachable; its status says connected or not, lag and in-flight.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Mosquitto } from "../../helpers/mosquitto.ts";
import { freePort, waitFor } from "../../helpers/index.ts";
import { failLogReads } from "../../helpers/faults.ts";
import { frames, metric, range, startRig, subscriber, tag } from "./harness.ts";

let broker: Mosquitto;
beforeAll(async () => {
  broker = await Mosquitto.start();
});
afterAll(async () => {
  await broker.close();
});

describe("mqtt-north reader (log consumer)", () => {
  it("delivers every frame in offset order when a log read fails, and counts the retried error", async () => {
    const sub = await subscriber(broker.url, "default/gw1/batch");
    const rig = await startRig({ url: broker.url, qos: 1, batch: { maxFrames: 50, maxDelayMs: 5 }, reconnectMinMs: 50 });
    try {
      await rig.log.append(frames(500));
      await waitFor(() => sub.offsets().length >= 500, "the first 500 frames", 15_000);
      const fault = failLogReads(rig.log, 1);
      await rig.log.append(frames(500, 500));
      await waitFor(() => fault.thrown === 1, "the injected read failure");
      await rig.log.append(frames(500, 1000));
      await waitFor(() => new Set(sub.offsets()).size >= 1500, "all 1500 frames", 15_000);
      // in order and none twice: the retry starts after the acknowledged offset, once the window settled
      expect(sub.offsets()).toEqual(range(1, 1500));
      await waitFor(() => rig.log.cursor("mqtt-north") === 1500, "cursor at 1500");
      const s = rig.bridge.publisher.status();
      expect(s.errors).toBe(1);
      expect(s.lastError).toContain("injected read failure");
      expect(rig.bridge.status()).toMatchObject({ state: "ok", connected: true, lagFrames: 0, inflight: 0, cursor: 1500 });
    } finally {
      await rig.close();
      await sub.close();
    }
  });

  it("reports degraded with the reason while the log reads keep failing", async () => {
    const rig = await startRig({ url: broker.url, qos: 1, reconnectMinMs: 50, reconnectMaxMs: 100 });
    try {
      await waitFor(() => rig.bridge.client?.connected, "connected");
      const fault = failLogReads(rig.log, 1_000_000);
      await rig.log.append(frames(10));
      await waitFor(() => rig.bridge.status().state === "degraded", "degraded");
      expect(rig.bridge.status().reasons.join()).toContain("reading the log failed, retrying: Error: injected read failure");
      fault.restore();
      await waitFor(() => rig.bridge.status().state === "ok" && rig.bridge.publisher.acked === 10, "ok again, every frame acknowledged", 15_000);
    } finally {
      await rig.close();
    }
  });

  it("counts edge_bus_lag_seconds from the first unacknowledged frame while the broker has never been reachable", async () => {
    const rig = await startRig({ url: `mqtt://127.0.0.1:${await freePort()}`, reconnectMinMs: 100, reconnectMaxMs: 200 });
    try {
      await rig.log.append(frames(10));
      await waitFor(async () => (await metric(rig.registry, "edge_bus_lag_seconds")) >= 1, "lag seconds growing", 10_000);
      expect(await metric(rig.registry, "edge_bus_lag")).toBe(10);
      const s = rig.bridge.status();
      expect(s).toMatchObject({ state: "degraded", connected: false, lagFrames: 10, cursor: 0 });
      expect(s.lagSeconds).toBeGreaterThanOrEqual(1);
      expect(s.reasons[0]).toMatch(/not connected since .*: 10 frames wait in the log/);
    } finally {
      await rig.close();
    }
  });

  it("publishes a tag on its new tenant's topic after a reload moves it to another tenant", async () => {
    const sub = await subscriber(broker.url, "+/gw1/a/x");
    const rig = await startRig({ url: broker.url, qos: 1, batch: { maxFrames: 1 } }, { tags: [tag("a/x", "t1")] });
    try {
      await rig.log.append(frames(1));
      await waitFor(() => sub.got.length >= 1, "the first message");
      rig.catalog.replace([tag("a/x", "t2")]);
      await rig.log.append(frames(1, 1));
      await waitFor(() => sub.got.length >= 2, "the second message");
      expect(sub.got.map((m) => m.topic)).toEqual(["t1/gw1/a/x", "t2/gw1/a/x"]);
    } finally {
      await rig.close();
      await sub.close();
    }
  });
});
