// The MQTT source driver in a gateway, against a real mosquitto: device payloads become frames by the
// mapping; bad payloads are counted and reported as events, and nothing stops; a device message is
// acknowledged to the broker only after its frame is committed, so a failed commit or a gateway crash
// before the commit makes the broker deliver it again.
import { afterAll, beforeAll, describe, expect, it, spyOn } from "bun:test";
import { join } from "node:path";
import { encode } from "@msgpack/msgpack";
import type { Subprocess } from "bun";
import mqtt, { type MqttClient, type Packet } from "mqtt";
import { Quality, type DataFrame, type Variable } from "../../schemas/index.ts";
import { createMqttSource, matchTopic, MqttCommitError } from "../../drivers/mqtt/index.ts";
import type { MqttSourceDriver } from "../../drivers/mqtt/index.ts";
import type { FrameSink } from "../../drivers/contract.ts";
import { EventLog } from "../../storage/index.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
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
    // at most one event per topic and reason every 10 s (the log is in order: the good value is committed
    // after any event queued before it)
    expect(drv.badPayloads.get("not_decodable")).toBeGreaterThanOrEqual(2);
    const undecodable: unknown[] = [];
    for await (const f of t.gw.ctx.log.read({ from: 1, kinds: ["event"] })) {
      if (f.kind === "event" && f.type === "mqtt.bad_payload" && (f.data as { reason?: string }).reason === "not_decodable") undecodable.push(f.data);
    }
    expect(undecodable).toHaveLength(1);
    expect(warn).not.toHaveBeenCalled();
    expect(error).not.toHaveBeenCalled();
    warn.mockRestore();
    error.mockRestore();
  });
});

// ---- acknowledgement after commit ---------------------------------------------------------------

const ackTag: Variable = { tag: "acks/m1", driver: "acks", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "default" };

/** The driver's FrameSink seam, with a commit the test controls (the log itself is tested in test/storage). */
function sinkWith(commit: (frames: DataFrame[]) => Promise<void>): FrameSink {
  return { send: async () => undefined, commit, event: () => undefined, isPaused: false, heartbeat: () => undefined };
}

async function startAcksDriver(tx: FrameSink) {
  const drv = createMqttSource();
  drv.init({ id: "acks", config: { url: broker.url, clientId: "edge-src-acks-test", qos: 1, mappings: [{ topic: "acks/+", tag: "acks/{1}" }] }, tags: [ackTag] });
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

// ---- a gateway killed before the commit --------------------------------------------------------

const root = join(import.meta.dir, "..", "..");

async function spawnGateway(configDir: string, cwd: string): Promise<Subprocess> {
  const p = Bun.spawn([process.execPath, join(root, "server", "main.ts"), "--config", configDir], {
    cwd,
    env: { ...process.env, EDGE_READY_FD: "stdout", EDGE_LOG_LEVEL: "warn" },
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
  let out = "";
  const ready = await waitFor(async () => {
    const { value, done } = await reader.read();
    if (done) throw new Error(`gateway exited: ${out}`);
    out += new TextDecoder().decode(value);
    const line = out.split("\n").find((l) => l.includes('"ready":true'));
    return line && (JSON.parse(line) as { http: number });
  }, "the gateway ready line", 30_000, 1);
  reader.releaseLock();
  (p as Subprocess & { http?: number }).http = ready.http;
  return p;
}

const httpOf = (p: Subprocess) => `http://127.0.0.1:${(p as Subprocess & { http: number }).http}`;

async function driverState(p: Subprocess): Promise<string | undefined> {
  const h = (await (await fetch(`${httpOf(p)}/healthz`)).json()) as { drivers: { id: string; state: string }[] };
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
    let gw: Subprocess | null = null;
    try {
      // run 1: the driver's session and subscription exist at the broker (it keeps them while we are away)
      gw = await spawnGateway(config(""), tmp.path);
      await waitFor(async () => {
        await device.publishAsync("crash/v", "1", { qos: 1 });
        return (await driverState(gw!)) === "Active";
      }, "a first message through the driver", 20_000, 300);
      gw.kill("SIGTERM");
      await gw.exited;
      // run 2: commits wait 10 s, so the gateway dies with the message received and not committed
      gw = await spawnGateway(config("log: { maxDelayMs: 10000 }"), tmp.path);
      await device.publishAsync("crash/v", "42", { qos: 1 });
      await waitFor(async () => (await driverState(gw!)) === "Active", "the driver to receive the message", 8_000, 50);
      gw.kill("SIGKILL");
      await gw.exited;
      expect(await valuesInLog(dataDir, "crash/v")).not.toContain(42); // killed before the commit
      // run 3: the broker sends the unacknowledged message again and it is committed
      gw = await spawnGateway(config(""), tmp.path);
      await waitFor(async () => {
        const tags = (await (await fetch(`${httpOf(gw!)}/api/tags`)).json()) as { tag: string; value: unknown }[];
        return tags.find((t) => t.tag === "crash/v")?.value === 42;
      }, "the redelivered message committed", 20_000, 100);
      gw.kill("SIGTERM");
      await gw.exited;
      gw = null;
      expect(await valuesInLog(dataDir, "crash/v")).toContain(42);
    } finally {
      gw?.kill("SIGKILL");
      await gw?.exited;
      tmp.cleanup();
    }
  }, 60_000);
});
