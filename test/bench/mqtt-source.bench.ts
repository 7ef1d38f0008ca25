// MQTT source driver benchmark against a local mosquitto: how many QoS 1 (and QoS 2) device messages per
// second one driver takes into the log, each acknowledged only after its frame is committed. The device
// messages are queued at the broker first (the consumer's persistent session), then the consumer connects
// and drains them, so the device publisher does not compete for the event loop. Baseline in the same run:
// a bare mqtt.js subscriber (same session settings, acks at once) counting the same messages.
// `bun run bench mqtt-source`; BENCH_MQTT_SOURCE_MESSAGES sets the message count (default 20,000).
import mqtt, { type MqttClient } from "mqtt";
import { Value as TypeValue } from "@sinclair/typebox/value";
import { createMqttSource } from "../../drivers/mqtt/index.ts";
import { LogTuning } from "../../schemas/config.ts";
import type { FrameSink } from "../../drivers/contract.ts";
import type { DataFrame, Variable } from "../../schemas/index.ts";
import { EventLog } from "../../storage/index.ts";
import { tempDir, waitFor } from "../helpers/index.ts";
import { Mosquitto } from "../helpers/mosquitto.ts";
import { report, type BenchRow } from "./report.ts";

const N = Number(process.env.BENCH_MQTT_SOURCE_MESSAGES ?? 20_000);
/** receiveMaximum 1 is the old one-message-at-a-time behaviour: fewer messages, or it takes minutes */
const SERIAL_N = Math.min(N, 300);
/** the log's default (schemas/config.ts LogTuning) */
const MAX_DELAY_MS = (TypeValue.Default(LogTuning, {}) as LogTuning).maxDelayMs;
const TAGS = 100;
const tags: Variable[] = Array.from({ length: TAGS }, (_, i) => ({ tag: `bench/m${i}/v`, driver: "bench", type: "float64", group: "default", scale: 1, offset: 0, deadband: 0, access: "R", tenant: "default" }));

const broker = await Mosquitto.start();
const tmp = tempDir("edge-bench-mqtt-source-");
const device = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: "bench-device" });
const rows: BenchRow[] = [];

/** Publishes n device messages (64 in flight) on topics bench/m<i>/v. */
async function publish(n: number, qos: 1 | 2): Promise<void> {
  let sent = 0;
  const worker = async () => {
    while (sent < n) {
      const i = sent++;
      await device.publishAsync(`bench/m${i % TAGS}/v`, JSON.stringify({ v: i, ts: Date.now() }), { qos });
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
}

/** A consumer that can be started, stopped (its session stays at the broker) and counts what it took. */
interface Consumer {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly count: number;
}

function bareSubscriber(clientId: string, qos: 1 | 2): Consumer {
  let client: MqttClient | null = null;
  let count = 0;
  return {
    get count() {
      return count;
    },
    async start() {
      // the listener before the connection: a resumed session delivers right after CONNACK
      client = mqtt.connect(broker.url, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 3600 } });
      client.on("message", () => void count++);
      const c = client;
      await new Promise<void>((resolve, reject) => (c.once("connect", () => resolve()), c.once("error", reject)));
      await client.subscribeAsync("bench/+/v", { qos });
    },
    async stop() {
      await client?.endAsync(true);
    },
  };
}

function driverConsumer(clientId: string, qos: 1 | 2, receiveMaximum: number, log: EventLog): Consumer {
  let count = 0;
  let run: { stop(): Promise<void> } | null = null;
  // what the driver manager's FrameSink does for commit (drivers/manager.ts), without the bookkeeping
  const sink: FrameSink = {
    send: async (frames: DataFrame[]) => void log.append(frames),
    commit: async (frames: DataFrame[], opts?: { urgent?: boolean }) => {
      if (log.isPaused) await log.waitForCapacity();
      await log.append(frames, opts?.urgent ? { urgent: true } : undefined);
      count += frames.length;
    },
    event: () => undefined,
    isPaused: false,
    heartbeat: () => undefined,
  };
  return {
    get count() {
      return count;
    },
    async start() {
      const drv = createMqttSource();
      const config = { url: broker.url, clientId, qos, receiveMaximum, mappings: [{ topic: "bench/+/v", tag: "bench/{1}/v", path: "v" }] };
      drv.init({ id: "bench", config, tags });
      const ctl = new AbortController();
      await drv.connect(undefined, ctl.signal);
      const loop = drv.readLoop(sink, ctl.signal).catch((e: Error) => console.error(`read loop ended: ${e.message}`));
      run = {
        async stop() {
          ctl.abort();
          await loop;
          await drv.shutdown();
        },
      };
    },
    async stop() {
      await run?.stop();
    },
  };
}

/** Messages per second: the consumer's session exists, n messages wait at the broker, then it drains them. */
async function drain(c: Consumer, n: number, qos: 1 | 2, log?: EventLog): Promise<{ rate: number; commits: number }> {
  // first connection: the session and its subscription exist; a probe message shows the subscription works
  await c.start();
  await waitFor(async () => {
    await device.publishAsync("bench/m0/v", JSON.stringify({ v: -1, ts: Date.now() }), { qos });
    return c.count > 0;
  }, "the consumer's subscription", 15_000, 200);
  await c.stop();
  await publish(n, qos);
  const before = c.count;
  let commits = 0;
  const onCommit = () => void commits++;
  log?.on("commit", onCommit);
  const t0 = performance.now();
  await c.start();
  await waitFor(() => c.count - before >= n, `${n} messages drained`, 300_000, 2).catch((e: Error) => {
    throw new Error(`${e.message}: ${c.count - before} arrived`);
  });
  const s = (performance.now() - t0) / 1000;
  log?.off("commit", onCommit);
  await c.stop();
  return { rate: n / s, commits };
}

try {
  const variants: { qos: 1 | 2; rm: number; n: number }[] = [
    { qos: 1, rm: 1, n: SERIAL_N },
    { qos: 1, rm: 100, n: N },
    { qos: 1, rm: 1000, n: N },
    { qos: 2, rm: 1000, n: N },
  ];
  const bare = new Map<1 | 2, number>();
  let k = 0;
  for (const v of variants) {
    if (!bare.has(v.qos)) {
      const rate = (await drain(bareSubscriber(`bench-bare-q${v.qos}`, v.qos), N, v.qos)).rate;
      bare.set(v.qos, rate);
      rows.push({ metric: `bare mqtt.js subscriber, QoS ${v.qos}, ${N.toLocaleString("en-US")} messages (baseline)`, value: rate, unit: "messages/s" });
    }
    const log = await EventLog.open({ path: `${tmp.path}/log${k}.duckdb`, maxDelayMs: MAX_DELAY_MS });
    try {
      const r = await drain(driverConsumer(`bench-drv-${k++}`, v.qos, v.rm, log), v.n, v.qos, log);
      const base = bare.get(v.qos)!;
      const what = v.rm === 1 ? "receiveMaximum 1 (one message per commit, as before)" : `receiveMaximum ${v.rm}${v.rm === 1000 ? " (default)" : ""}`;
      rows.push({ metric: `driver, QoS ${v.qos}, ${what}, ${v.n.toLocaleString("en-US")} messages`, value: r.rate, unit: "messages/s", baseline: base, ratio: r.rate / base });
      rows.push({ metric: `  messages per commit (log.maxDelayMs ${MAX_DELAY_MS})`, value: v.n / Math.max(1, r.commits), unit: "messages" });
    } finally {
      await log.close();
    }
  }
  report("mqtt-source", rows);
} finally {
  await device.endAsync(true);
  await broker.close();
  tmp.cleanup();
}
process.exit(0);
