// NATS JetStream bridge benchmark: drain of a backlog into a single-node stream (acknowledged publishes,
// batches of 1000 frames, window 64) against the MQTT uplink's QoS 1 drain of the same backlog from the
// same log, measured in the same run; projected drain of a one-hour backlog at 5k frames/s; and a leader
// failover in a three-node cluster (stream with 3 replicas) under a steady 20k frames/s: the longest
// pause of the acknowledged offset, the failed attempts retried, and the stream read back (lost, duplicated).
import pino from "pino";
import { Registry } from "prom-client";
import { jetstreamManager } from "@nats-io/jetstream";
import { createMqttNorth } from "../../bridges/mqtt-north/index.ts";
import { createNatsBridge, parseNatsConfig, provisionStream } from "../../bridges/nats/index.ts";
import { Catalog } from "../../schemas/catalog.ts";
import type { DataFrame } from "../../schemas/frames.ts";
import { EventLog } from "../../storage/index.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { Mosquitto } from "../helpers/mosquitto.ts";
import { exactlyOnce, NatsCluster, readStream } from "../helpers/nats.ts";
import { report, type BenchRow } from "./report.ts";

const BACKLOG = Number(process.env.BENCH_NATS_BACKLOG ?? 500_000);
const BATCH = 1000;
const INFLIGHT = 64;
const tags = Array.from({ length: 100 }, (_, i) => `line${i % 10}/machine${i}/value`);
const catalog = new Catalog(tags.map((tag) => ({ tag, driver: "sim", type: "float64" as const, group: "default", scale: 1, offset: 0, deadband: 0, access: "R" as const, tenant: "default" })));
const silent = pino({ level: "silent" });
const mkFrames = (n: number, from: number): DataFrame[] =>
  Array.from({ length: n }, (_, i) => ({ kind: "data" as const, tag: tags[(from + i) % tags.length]!, value: Math.sin(from + i) * 100, ts: Date.now() * 1000, quality: 0, source: "sim" }));

const tmp = tempDir("edge-bench-nats-");
const single = await NatsCluster.single();
const broker = await Mosquitto.start();
const log = await EventLog.open({ path: `${tmp.path}/log.duckdb`, tailFrames: 50_000, maxDelayMs: 2 });
const rows: BenchRow[] = [];

function natsBridge(servers: string[], cursor: string, payload: "json" | "msgpack", registry = new Registry(), over: Record<string, unknown> = {}) {
  return createNatsBridge({
    log, catalog, registry, logger: silent, gatewayId: cursor,
    section: { enabled: true, servers, cursor, payload, maxInflight: INFLIGHT, batch: { maxFrames: BATCH, maxBytes: 1 << 20, maxDelayMs: 5 }, streamConfig: { provision: true }, ...over },
  })!;
}

async function timed(start: () => Promise<void>, acked: () => number, head: number, what: string): Promise<number> {
  const t0 = performance.now();
  await start();
  await waitFor(() => acked() >= head, what, 600_000, 5);
  return head / ((performance.now() - t0) / 1000);
}

async function drainNats(cursor: string, payload: "json" | "msgpack"): Promise<number> {
  const b = natsBridge(single.servers, cursor, payload);
  const rate = await timed(() => b.start(), () => b.publisher.acked, log.head, `nats drain (${payload})`);
  await b.stop();
  return rate;
}

async function drainMqtt(cursor: string): Promise<number> {
  const b = createMqttNorth({
    log, catalog, registry: new Registry(), logger: silent, gatewayId: "bench", configDir: tmp.path,
    section: { enabled: true, url: broker.url, qos: 1, cursor, clientId: `bench-${cursor}`, maxInflight: INFLIGHT, batch: { maxFrames: BATCH, maxBytes: 1 << 20, maxDelayMs: 5 } },
  })!;
  const rate = await timed(() => b.start(), () => b.publisher.acked, log.head, "mqtt drain");
  await b.stop();
  return rate;
}

/** Steady 20k frames/s into a replicas-3 stream; the stream leader is SIGKILLed after 3 s. */
async function failover(): Promise<void> {
  const cluster = await NatsCluster.three();
  try {
    const nc = await cluster.connect();
    const jsm = await cluster.ready(nc);
    const over = { streamConfig: { provision: false, replicas: 3 }, ackTimeoutMs: 1000, retryMinMs: 50, retryMaxMs: 500 };
    await provisionStream(jsm, parseNatsConfig({ enabled: true, servers: cluster.servers, ...over }));
    const leader = await waitFor(async () => (await jsm.streams.info("EDGE")).cluster?.leader, "stream leader", 20_000, 100);
    await log.commitCursor("failover", log.head);
    const startAt = log.head;
    const registry = new Registry();
    const b = natsBridge(cluster.servers, "failover", "json", registry, over);
    await b.start();
    let longestPauseMs = 0;
    let lastAcked = b.publisher.acked;
    let lastMove = performance.now();
    const t0 = performance.now();
    let n = 0;
    let killed = false;
    while (performance.now() - t0 < 12_000) {
      const due = Math.floor(((performance.now() - t0) / 1000) * 20_000);
      if (due > n) (void log.append(mkFrames(due - n, n)), (n = due));
      if (!killed && performance.now() - t0 > 3000) (await cluster.node(leader).stop("SIGKILL"), (killed = true));
      const a = b.publisher.acked;
      const now = performance.now();
      if (a !== lastAcked) (lastAcked = a, lastMove = now);
      else if (a < log.head) longestPauseMs = Math.max(longestPauseMs, now - lastMove);
      await Bun.sleep(5);
    }
    await log.append(mkFrames(1, n));
    await waitFor(() => b.publisher.acked >= log.head, "failover backlog acknowledged", 60_000, 10);
    const errors = (await registry.getSingleMetricAsString("edge_nats_publish_errors_total")).split("\n").filter((l) => !l.startsWith("#")).reduce((s, l) => s + Number(l.split(" ").pop() ?? 0), 0);
    await b.stop();
    const got = await readStream(nc, "EDGE", 60_000);
    const expected = log.head - startAt;
    const offsets = got.offsets.map((o) => o - startAt);
    const distinct = new Set(offsets).size;
    rows.push({ metric: "leader failover (3 nodes, R3, 20k frames/s): longest pause of the acknowledged offset", value: longestPauseMs, unit: "ms" });
    rows.push({ metric: "leader failover: failed publish attempts (retried with the same ids)", value: errors, unit: "attempts" });
    rows.push({ metric: `leader failover: frames lost (of ${expected.toLocaleString("en-US")})`, value: expected - distinct, unit: "frames" });
    rows.push({ metric: "leader failover: frames duplicated in the stream", value: offsets.length - distinct, unit: "frames" });
    const problem = exactlyOnce(offsets, expected);
    if (problem) console.error(`failover: ${problem}`);
    await nc.close();
  } finally {
    await cluster.close();
  }
}

try {
  for (let i = 0; i < BACKLOG; i += 5000) await log.append(mkFrames(Math.min(5000, BACKLOG - i), i));
  // the machine is shared: the two bridges alternate, twice each, and each keeps its best run
  const nc = await single.connect();
  const purge = async () => void (await (await jetstreamManager(nc)).streams.purge("EDGE").catch(() => undefined));
  let mqtt = 0;
  let json = 0;
  for (const round of [1, 2]) {
    mqtt = Math.max(mqtt, await drainMqtt(`bench-mqtt-${round}`));
    await purge();
    json = Math.max(json, await drainNats(`bench-nats-json-${round}`, "json"));
  }
  await purge();
  const packed = await drainNats("bench-nats-msgpack", "msgpack");
  await purge();
  await nc.close();
  rows.push({ metric: `MQTT uplink drain, QoS 1, batches of ${BATCH} (JSON), same backlog (best of 2)`, value: mqtt, unit: "frames/s" });
  rows.push({ metric: `NATS drain into a single-node stream, acknowledged, batches of ${BATCH} (JSON, default; best of 2)`, value: json, unit: "frames/s", baseline: mqtt, ratio: json / mqtt });
  rows.push({ metric: `NATS drain, batches of ${BATCH} (msgpack)`, value: packed, unit: "frames/s", baseline: mqtt, ratio: packed / mqtt });
  rows.push({ metric: `projected NATS drain of 18M frames (1 h at 5k/s), JSON (measured on ${BACKLOG.toLocaleString("en-US")})`, value: 18e6 / json, unit: "s" });
  await failover();
  report("nats", rows);
} finally {
  await log.close();
  await broker.close();
  await single.close();
  tmp.cleanup();
}
process.exit(0);
