// MQTT uplink benchmark against a local mosquitto: drain of a backlog at QoS 0 and QoS 1 with batching
// (projected to one hour at 5k frames/s = 18M frames), end-to-end latency at a steady 20k frames/s, and
// a baseline: a bare mqtt.js publish loop of the same payloads with the same in-flight window; the
// memory a drain takes (peak RSS growth); and how many frames a SIGKILL of the gateway mid-drain makes
// it send again (frames the broker had acknowledged past the stored cursor). The measuring subscriber
// runs in its own process (mqtt-subscriber.ts), as the cloud consumer would.
import { join } from "node:path";
import mqtt from "mqtt";
import pino from "pino";
import { Registry } from "prom-client";
import { createMqttNorth } from "../../bridges/mqtt-north/index.ts";
import { PayloadEncoder } from "../../schemas/wire.ts";
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

  /** Peak RSS growth (MiB) while `work` runs, sampled every 20 ms. */
  async function rssGrowth<T>(work: Promise<T>): Promise<{ value: T; mib: number; baseMib: number }> {
    Bun.gc(true);
    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const value = await work;
      return { value, mib: (peak - base) / 2 ** 20, baseMib: base / 2 ** 20 };
    } finally {
      clearInterval(timer);
    }
  }

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

  /**
   * A gateway process drains a copy of the backlog and is SIGKILLed after 200k frames reached the broker:
   * the frames the broker had by then past the stored cursor are the ones a restart sends again. With
   * `storeDelayMs`, every cursor store of the gateway takes that much longer (a slow or busy disk).
   */
  async function resentAfterCrash(storeDelayMs = 0): Promise<number> {
    const path = `${tmp.path}/crash-${storeDelayMs}.duckdb`;
    const copy = await EventLog.open({ path, tailFrames: 0, maxDelayMs: 2 });
    for (let i = 0; i < BACKLOG; i += 5000) await copy.append(mkFrames(Math.min(5000, BACKLOG - i), i));
    await copy.close();
    let delivered = 0;
    const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `bench-crash-sub-${storeDelayMs}` });
    sub.on("message", (_t, _p, packet) => {
      const range = String(packet.properties?.userProperties?.offsets ?? "0-0");
      delivered = Math.max(delivered, Number(range.slice(range.indexOf("-") + 1)));
    });
    await sub.subscribeAsync("default/crash/batch", { qos: 1 });
    const child = Bun.spawn([process.execPath, join(import.meta.dir, "mqtt-crash-child.ts"), broker.url, path, String(storeDelayMs)], { stdout: "ignore", stderr: "inherit" });
    await waitFor(() => delivered >= 200_000, "200k frames delivered before the crash", 600_000, 5);
    child.kill("SIGKILL");
    await child.exited;
    await Bun.sleep(200); // messages already on their way from the broker
    await sub.endAsync(true);
    const after = await EventLog.open({ path, tailFrames: 0 });
    const cursor = after.cursor("crash");
    await after.close();
    return delivered - cursor;
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
  const { value: q1, mib, baseMib } = await rssGrowth(drain(1, "bench-q1"));
  const bare1 = await bareLoop(1);
  rows.push({ metric: "drain QoS 1, batches of 1000 (JSON)", value: q1, unit: "frames/s", baseline: bare1, ratio: q1 / bare1 });
  rows.push({ metric: `peak RSS growth during the QoS 1 drain of ${BACKLOG.toLocaleString("en-US")} frames (RSS before: ${Math.round(baseMib)} MiB)`, value: mib, unit: "MiB" });
  rows.push({ metric: "frames re-sent after a SIGKILL mid-drain (acked by the broker past the stored cursor; window 64 x 500)", value: await resentAfterCrash(), unit: "frames" });
  rows.push({ metric: "frames re-sent after a SIGKILL mid-drain, every cursor store 200 ms slower (bound: 40,000)", value: await resentAfterCrash(200), unit: "frames" });
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
