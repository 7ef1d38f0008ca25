// The MQTT source with a decoder plugin: payloads on a mapped topic go to a WebAssembly decoder in its own
// child process, in batches (one call for a burst of QoS 1 messages), and its frames reach the log under
// the mapping's tag template; a decoded tag outside variables.yml, a trapping payload and a dead decoder
// are refused like any bad payload, and the driver goes on.
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { Value as TypeValue } from "@sinclair/typebox/value";
import mqtt, { type MqttClient } from "mqtt";
import type { DriverFactory } from "../../drivers/contract.ts";
import { DriverManager } from "../../drivers/manager.ts";
import { MqttSourceDriver, type PayloadDecoder } from "../../drivers/mqtt/index.ts";
import { Variable, type DriverEntry } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { Mosquitto } from "../helpers/mosquitto.ts";
import { WasmChild } from "./plugins/wasm/child.ts";
import { FIXED_FRAMES, testDecoder } from "./plugins/wasm/fixtures.ts";

const dir = tempDir();
let broker: Mosquitto;
let log: EventLog;
let mgr: DriverManager;
let device: MqttClient;
let child: WasmChild;
/** sizes of the batches the driver sent to the decoder */
const batches: number[] = [];
const decoder: PayloadDecoder = {
  decode: async (batch) => {
    batches.push(batch.length);
    return await child.decodePacked(batch, 2000);
  },
};
const payload = (mode: number, n = 0) => Buffer.from([mode, n & 0xff, n >> 8, 0]);
// every decoded frame logged (the decoder answers the same values for every payload: report by exception would drop them)
const variable = (tag: string, type: string) => TypeValue.Default(Variable, { tag, driver: "meters", type, reportByException: false }) as Variable;

beforeAll(async () => {
  broker = await Mosquitto.start();
  log = await EventLog.open({ path: join(dir.path, "log.duckdb"), maxDelayMs: 2 });
  child = await WasmChild.start(testDecoder(), { memoryMaxPages: 8 });
  const factories = new Map<string, DriverFactory>([["mqtt", () => new MqttSourceDriver({ decoders: (name) => (name === "meter" ? decoder : undefined) })]]);
  mgr = new DriverManager({ log, factories, settings: { watchdogMs: 0, backoffBaseMs: 50 } });
  const entry: DriverEntry = { id: "meters", type: "mqtt", enabled: true, config: { url: broker.url, mappings: [{ topic: "meters/+/telegram", tag: "site/{1}/{tag}", decoder: "meter" }] } };
  // meter/name is left out of variables.yml on purpose
  mgr.add(entry, undefined, [variable("site/m1/meter/energy", "float64"), variable("site/m1/meter/on", "bool"), variable("site/m1/meter/serial", "int64")]);
  await waitFor(() => ["Connected", "Active"].includes(mgr.driver("meters")?.state ?? ""), "the mqtt driver connected", 15_000);
  device = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
}, 30_000);

afterAll(async () => {
  await device?.endAsync(true);
  child?.kill();
  await mgr?.stop();
  await log?.close();
  await broker?.close();
  dir.cleanup();
});

async function dataFrames(): Promise<{ tag: string; value: unknown; ts: number }[]> {
  const out: { tag: string; value: unknown; ts: number }[] = [];
  for await (const f of log.read({ from: 1, kinds: ["data"] })) if (f.kind === "data" && f.source === "meters") out.push({ tag: f.tag, value: f.value, ts: f.ts });
  return out;
}

async function refusals(reason: string): Promise<string[]> {
  const out: string[] = [];
  for await (const f of log.read({ from: 1, kinds: ["event"] })) {
    const d = f.kind === "event" && f.type === "mqtt.bad_payload" ? (f.data as { reason: string; message: string }) : null;
    if (d?.reason === reason) out.push(d.message);
  }
  return out;
}

describe("mqtt source with a decoder plugin", () => {
  it("decodes a burst of 200 QoS 1 messages through the plugin's process in batches, every frame in the log", async () => {
    const before = (await dataFrames()).length;
    batches.length = 0;
    await Promise.all(Array.from({ length: 200 }, (_, i) => device.publishAsync("meters/m1/telegram", payload(0, i), { qos: 1 })));
    await waitFor(async () => (await dataFrames()).length >= before + 600, "600 decoded frames", 20_000);
    const frames = (await dataFrames()).slice(before);
    expect(frames).toHaveLength(600);
    expect(frames.slice(0, 3)).toEqual([
      { tag: "site/m1/meter/energy", value: FIXED_FRAMES[0]!.value, ts: FIXED_FRAMES[0]!.ts! },
      { tag: "site/m1/meter/on", value: true, ts: expect.any(Number) },
      { tag: "site/m1/meter/serial", value: 9007199254740993n, ts: expect.any(Number) },
    ]);
    // the crossing is paid per batch: far fewer decode calls than messages
    expect(batches.reduce((a, b) => a + b, 0)).toBe(200);
    expect(batches.length).toBeLessThan(200);
    expect(Math.max(...batches)).toBeGreaterThan(1);
  }, 30_000);

  it("refuses a decoded tag that is not in variables.yml, naming it", async () => {
    await waitFor(async () => (await refusals("missing_path")).some((m) => m.includes("decoder 'meter' gave tag 'site/m1/meter/name'")), "a missing_path refusal");
  });

  it("gives no frames for a payload that traps the decoder, and decodes the next message", async () => {
    const before = (await dataFrames()).length;
    await device.publishAsync("meters/m1/telegram", payload(1), { qos: 1 });
    await device.publishAsync("meters/m1/telegram", payload(0), { qos: 1 });
    await waitFor(async () => (await dataFrames()).length >= before + 3, "the next message's frames");
    expect((await dataFrames()).length).toBe(before + 3);
    expect(child.lines.some((l) => l.includes("trapped in decode"))).toBe(true);
  });

  it("refuses the messages of a dead decoder process and stays Active; a restarted decoder decodes again", async () => {
    child.kill();
    await child.proc.exited;
    await device.publishAsync("meters/m1/telegram", payload(0), { qos: 1 });
    await waitFor(async () => (await refusals("unhandled")).some((m) => m.startsWith("decoder 'meter' failed")), "an unhandled refusal");
    expect(mgr.driver("meters")?.state).toBe("Active"); // its first frames made it Active; a refusal changes nothing
    child = await WasmChild.start(testDecoder(), { memoryMaxPages: 8 });
    const before = (await dataFrames()).length;
    await device.publishAsync("meters/m1/telegram", payload(0), { qos: 1 });
    await waitFor(async () => (await dataFrames()).length >= before + 3, "frames from the new decoder");
  }, 20_000);
});

describe("mqtt source decoder config", () => {
  it("refuses a mapping naming a decoder that is not loaded, and a decoder tag template without {tag}", () => {
    const init = (mapping: Record<string, unknown>) => () =>
      new MqttSourceDriver({ decoders: () => undefined }).init({ id: "d", config: { url: "mqtt://x", mappings: [mapping] }, tags: [] });
    expect(init({ topic: "a", tag: "{tag}", decoder: "nope" })).toThrow("driver 'd': mappings[0].decoder: no decoder plugin 'nope' is loaded");
    expect(init({ topic: "a", tag: "x", decoder: "nope" })).toThrow(/mappings\[0\]\.tag: a mapping with a decoder needs \{tag\}/);
  });

  it("checks a decoder mapping's shape without a resolver (the config check) but refuses to connect without the gateway's decoders", async () => {
    const drv = new MqttSourceDriver();
    drv.init({ id: "d", config: { url: "mqtt://127.0.0.1:1", mappings: [{ topic: "a", tag: "{tag}", decoder: "meter" }] }, tags: [] });
    await expect(drv.connect(undefined, new AbortController().signal)).rejects.toThrow("decoder 'meter' cannot be used: this driver was created without the gateway's decoder plugins");
  });
});
