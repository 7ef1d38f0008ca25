// The MQTT source driver: subscribes to device topics on a broker and turns JSON or MessagePack payloads
// into data frames by the mappings of its config (topic filter + dot path -> tag, timestamp, quality).
// A payload that cannot be decoded or does not match its mapping is counted, reported as a
// `mqtt.bad_payload` event and a log line (at most one per topic and reason every 10 s), and skipped:
// one bad device never stops the others. Backpressure: the next message is taken from the broker only
// after the frames of this one are queued for the log (PUBACK follows), so a paused log slows the broker.
import { decode } from "@msgpack/msgpack";
import mqtt, { type IPublishPacket, type MqttClient } from "mqtt";
import { Quality, type DataFrame, type Variable } from "../../schemas/index.ts";
import { DRIVER_API_VERSION, type Driver, type DriverInit, type FrameSink } from "../contract.ts";
import type { Endpoint } from "../endpoint.ts";
import { DriverConfigError, DriverError } from "../errors.ts";
import { toEngineering } from "../mapping.ts";
import { parseDriverConfig } from "../validate.ts";
import { MqttSourceConfig } from "./config.ts";
import { BadPayload, extract, fillTag, matchTopic } from "./mapping.ts";

export { matchTopic, extract, BadPayload } from "./mapping.ts";

export class MqttSourceDriver implements Driver {
  private id = "";
  private cfg!: MqttSourceConfig;
  private tags = new Map<string, Variable>();
  private url = "";
  private client: MqttClient | null = null;
  /** bad payloads by reason (also in the log as mqtt.bad_payload events) */
  readonly badPayloads = new Map<string, number>();
  private lastReport = new Map<string, number>();

  meta() {
    return { name: "mqtt", kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read", "subscribe"] };
  }

  init(init: DriverInit): void {
    this.id = init.id;
    this.cfg = parseDriverConfig(init.id, MqttSourceConfig, init.config);
    this.tags = new Map(init.tags.map((t) => [t.tag, t]));
  }

  async connect(endpoint: Endpoint | undefined, signal: AbortSignal): Promise<void> {
    const url = endpoint?.url ?? this.cfg.url;
    if (!url) throw new DriverConfigError(this.id, "endpoint", "the mqtt driver needs an endpoint (mqtt://host:1883) or config.url");
    if (endpoint && endpoint.scheme !== "mqtt" && endpoint.scheme !== "mqtts") throw new DriverConfigError(this.id, "endpoint", `expected mqtt:// or mqtts://, got ${endpoint.scheme}://`);
    this.url = url;
    const client = mqtt.connect(url, {
      protocolVersion: this.cfg.protocolVersion,
      clientId: this.cfg.clientId ?? `edge-src-${this.id}-${crypto.randomUUID().slice(0, 8)}`,
      username: this.cfg.username,
      password: this.cfg.password,
      reconnectPeriod: 1000,
      connectTimeout: endpoint?.timeoutMs ? Math.max(endpoint.timeoutMs, 3000) : 10_000,
      manualConnect: false,
    });
    this.client = client;
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new DriverError(this.id, "connect aborted"));
        signal.addEventListener("abort", onAbort, { once: true });
        client.once("connect", () => (signal.removeEventListener("abort", onAbort), resolve()));
        client.once("error", (e) => (signal.removeEventListener("abort", onAbort), reject(new DriverError(this.id, `broker ${url}: ${e.message}`, { cause: e }))));
      });
    } catch (e) {
      await client.endAsync(true).catch(() => undefined);
      this.client = null;
      throw e;
    }
  }

  async readLoop(tx: FrameSink, signal: AbortSignal): Promise<void> {
    const client = this.client;
    if (!client) throw new DriverError(this.id, "not connected");
    // mqtt.js sends the PUBACK and takes the next packet only after this callback
    client.handleMessage = (packet, done) => {
      this.onMessage(tx, packet as IPublishPacket).then(
        () => done(),
        () => done(),
      );
    };
    let lost: Error | null = null;
    client.on("error", (e) => (lost = e));
    const filters = Object.fromEntries(this.cfg.mappings.map((m) => [m.topic, { qos: this.cfg.qos }]));
    await client.subscribeAsync(filters);
    while (!signal.aborted) {
      tx.heartbeat(); // a quiet device is not a hung driver
      await new Promise((r) => setTimeout(r, 1000));
      if (lost && !client.connected) {
        // the broker went away: Bad frames for our tags would need last values; let the manager restart us
        const err: Error = lost;
        throw new DriverError(this.id, `lost the broker ${this.url}: ${err.message}`);
      }
    }
  }

  private async onMessage(tx: FrameSink, packet: IPublishPacket): Promise<void> {
    const topic = packet.topic;
    const now = Date.now() * 1000;
    const frames: DataFrame[] = [];
    for (const m of this.cfg.mappings) {
      const caps = matchTopic(m.topic, topic);
      if (!caps) continue;
      const tagName = fillTag(m.tag, caps);
      const tag = this.tags.get(tagName);
      try {
        if (!tag) throw new BadPayload("missing_path", `topic maps to tag '${tagName}', which is not in variables.yml for driver '${this.id}'`);
        const body = this.decode(packet.payload as Buffer, m.payload ?? this.cfg.payload);
        const x = extract(m, tag, body, now);
        frames.push({ kind: "data", tag: tagName, value: toEngineering(tag, x.value), ts: x.ts, quality: x.quality, source: this.id });
      } catch (e) {
        if (!(e instanceof BadPayload)) throw e;
        this.report(tx, topic, e);
        if (tag && e.reason !== "not_decodable") continue;
      }
    }
    if (frames.length) await tx.send(frames);
  }

  private decode(payload: Buffer, format: "json" | "msgpack"): unknown {
    try {
      return format === "json" ? JSON.parse(payload.toString("utf8")) : decode(payload, { useBigInt64: true });
    } catch (e) {
      throw new BadPayload("not_decodable", `payload is not ${format === "json" ? "JSON" : "MessagePack"} (${(e as Error).message.slice(0, 80)})`);
    }
  }

  private report(tx: FrameSink, topic: string, e: BadPayload): void {
    this.badPayloads.set(e.reason, (this.badPayloads.get(e.reason) ?? 0) + 1);
    const key = `${topic}\u0000${e.reason}`;
    const now = Date.now();
    if ((this.lastReport.get(key) ?? 0) > now - 10_000) return;
    this.lastReport.set(key, now);
    if (this.lastReport.size > 10_000) this.lastReport.clear();
    const count = this.badPayloads.get(e.reason);
    tx.event("mqtt.bad_payload", { topic, reason: e.reason, message: e.message, count, quality: Quality.Bad });
    console.warn(`driver '${this.id}': bad payload on ${topic}: ${e.message} (${e.reason}, ${count} so far)`);
  }

  async shutdown(): Promise<void> {
    const c = this.client;
    this.client = null;
    await c?.endAsync(true).catch(() => undefined);
  }
}

export const createMqttSource = () => new MqttSourceDriver();
