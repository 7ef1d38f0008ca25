// MQTT uplink benchmark against a local mosquitto: drain of a backlog at QoS 0 and QoS 1 with batching
// (projected to one hour at 5k frames/s = 18M frames), end-to-end latency at a steady 20k frames/s, and
// a baseline: a bare mqtt.js publish loop of the same payloads with the same in-flight window. The
// measuring subscriber runs in its own process (mqtt-subscriber.ts), as the cloud consumer would.
import { join } from "node:path";
import mqtt from "mqtt";
import pino from "pino";
import { Registry } from "prom-client";
import { createMqttNorth } from "../../bridges/mqtt-north/index.ts";
import { PayloadEncoder } from "../../bridges/mqtt-north/payload.ts";
import { Catalog } from "../../schemas/catalog.ts";
import type { DataFrame, Logged } from "../../schemas/frames.ts";
import { EventLog } from "../../storage/index.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { Mosquitto } from "../helpers/mosquitto.ts";
import { percentile, report, type BenchRow } from "./report.ts";

const BACKLOG = Number(process.env.BENCH_MQTT_BACKLOG ?? 500_000);
const MEM_BACKLOG = 200_000; // the log's default tailFrames
const BATCH = 1000;
const INFLIGHT = 64;
const STEADY_DELAY_MS = Number(process.env.BENCH_MQTT_DELAY_MS ?? 5);
const tags = Array.from({ length: 100 }, (_, i) => `line${i % 10}/machine${i}/value`);
const catalog = new Catalog(tags.map((tag) => ({ tag, driver: "sim", type: "float64" as const, group: "default", scale: 1, offset: 0, deadband: 0, access: "R" as const, tenant: "default" })));
const silent = pino({ level: "silent" });
const mkFrames = (n: number, from: number): DataFrame[] =>
  Array.from({ length: n }, (_, i) => ({ kind: "data" as const, tag: tags[(from + i) % tags.length]!, value: Math.sin(from + i) * 100, ts: Date.now() * 1000, quality: 0, source: "sim" }));

const broker = await Mosquitto.start();
const tmp = tempDir("edge-bench-mqtt-");
const log = await EventLog.open({ path: `${tmp.path}/log.duckdb`, tailFrames: 50_000, maxDelayMs: 2 });
const rows: BenchRow[] = [];

try {
  for (let i = 0; i < BACKLOG; i += 5000) await log.append(mkFrames(Math.min(5000, BACKLOG - i), i));

  async function drain(qos: 0 | 1, cursor: string, from = log): Promise<number> {
    const head = from.head;
    const bridge = createMqttNorth({
      log: from, catalog, registry: new Registry(), logger: silent, gatewayId: "bench", configDir: tmp.path,
      section: { enabled: true, url: broker.url, qos, cursor, clientId: `bench-${cursor}`, maxInflight: INFLIGHT, batch: { maxFrames: BATCH, maxBytes: 1 << 20, maxDelayMs: 5 } },
    })!;
    const t0 = performance.now();
    await bridge.start();
    await waitFor(() => bridge.publisher.acked >= head, `drain at QoS ${qos}`, 600_000, 5);
    const s = (performance.now() - t0) / 1000;
    await bridge.stop();
    return head / s;
  }

  // baseline: the same payloads (batches of 1000 frames, JSON), published by a bare loop with the same window
  async function bareLoop(qos: 0 | 1): Promise<number> {
    const enc = new PayloadEncoder("json");
    const page = mkFrames(BATCH, 0).map((f, i) => ({ ...f, offset: i + 1, loggedAt: 0 })) as Logged<DataFrame>[];
    const payload = enc.batch("bench", page, 1, BATCH);
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `bare-${qos}` });
    const messages = Math.ceil(BACKLOG / BATCH);
    const t0 = performance.now();
    let sent = 0;
    let done = 0;
    await new Promise<void>((resolve) => {
      const pump = () => {
        while (sent < messages && sent - done < INFLIGHT) {
          sent++;
          client.publish("default/bench/batch", payload, { qos }, () => {
            done++;
            if (done === messages) resolve();
            else pump();
          });
        }
      };
      pump();
    });
    const rate = (messages * BATCH) / ((performance.now() - t0) / 1000);
    await client.endAsync();
    return rate;
  }

  const q0 = await drain(0, "bench-q0");
  const bare0 = await bareLoop(0);
  rows.push({ metric: "drain QoS 0, batches of 1000 (JSON)", value: q0, unit: "frames/s", baseline: bare0, ratio: q0 / bare0 });
  const q1 = await drain(1, "bench-q1");
  const bare1 = await bareLoop(1);
  rows.push({ metric: "drain QoS 1, batches of 1000 (JSON)", value: q1, unit: "frames/s", baseline: bare1, ratio: q1 / bare1 });
  rows.push({ metric: `projected drain of 18M frames (1 h at 5k/s), QoS 1 (measured on ${BACKLOG.toLocaleString("en-US")})`, value: 18e6 / q1, unit: "s" });

  // the bridge's own hot path: a backlog that is still in the log's memory tail (no DuckDB reads)
  const memLog = await EventLog.open({ path: `${tmp.path}/mem.duckdb`, tailFrames: MEM_BACKLOG, maxDelayMs: 2 });
  try {
    for (let i = 0; i < MEM_BACKLOG; i += 5000) await memLog.append(mkFrames(Math.min(5000, MEM_BACKLOG - i), i));
    await drain(1, "bench-mem-warm", memLog); // warm-up: JIT and broker
    const mem = await drain(1, "bench-mem", memLog);
    rows.push({ metric: `drain QoS 1 from the memory tail (${MEM_BACKLOG.toLocaleString("en-US")} frames, no DuckDB reads)`, value: mem, unit: "frames/s", baseline: bare1, ratio: mem / bare1 });
  } finally {
    await memLog.close();
  }

  // steady 20k frames/s, QoS 1, end to end = subscriber receipt - frame ts (the frame is made just before
  // its append, so this includes the log commit). The subscriber runs in its own process.
  const sub = Bun.spawn([process.execPath, join(import.meta.dir, "mqtt-subscriber.ts"), broker.url, "default/steady/batch"], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const lines = (async function* () {
    let buf = "";
    const reader = (sub.stdout as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buf += new TextDecoder().decode(value);
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        yield buf.slice(0, i);
        buf = buf.slice(i + 1);
      }
    }
  })();
  await lines.next(); // {"ready":true}: subscribed
  await log.commitCursor("bench-steady", log.head);
  const bridge = createMqttNorth({
    log, catalog, registry: new Registry(), logger: silent, gatewayId: "steady", configDir: tmp.path,
    section: { enabled: true, url: broker.url, qos: 1, cursor: "bench-steady", clientId: "bench-steady", maxInflight: INFLIGHT, batch: { maxFrames: 500, maxDelayMs: STEADY_DELAY_MS } },
  })!;
  await bridge.start();
  const seconds = 8;
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < seconds * 1000) {
    const due = Math.floor(((performance.now() - t0) / 1000) * 20_000);
    if (due > n) {
      void log.append(mkFrames(due - n, n));
      n = due;
    }
    await Bun.sleep(5);
  }
  sub.stdin.write(`${n}\n`);
  sub.stdin.end();
  const result = await Promise.race([lines.next(), Bun.sleep(60_000).then(() => null)]);
  if (!result || result.done) throw new Error("the subscriber did not receive every steady frame within 60 s");
  const lat = (JSON.parse(result.value) as { latencies: number[] }).latencies;
  await bridge.stop();
  const warm = lat.slice(Math.floor(lat.length * 0.1));
  rows.push({ metric: "offered load (steady)", value: n / seconds, unit: "frames/s" });
  rows.push({ metric: `end-to-end latency p50 at 20k frames/s, QoS 1, maxDelayMs ${STEADY_DELAY_MS}`, value: percentile(warm, 50), unit: "ms" });
  rows.push({ metric: `end-to-end latency p99 at 20k frames/s, QoS 1, maxDelayMs ${STEADY_DELAY_MS}`, value: percentile(warm, 99), unit: "ms" });
  report("mqtt", rows);
} finally {
  await log.close();
  await broker.close();
  tmp.cleanup();
}
process.exit(0);
