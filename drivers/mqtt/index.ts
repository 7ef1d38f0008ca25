// The MQTT source driver: subscribes to device topics on a broker and turns JSON or MessagePack payloads
// into data frames by the mappings of its config (topic filter + dot path -> tag, timestamp, quality).
// A payload that cannot be decoded or does not match its mapping is counted, reported as a
// `mqtt.bad_payload` event (at most one per topic and reason every 10 s; the gateway logs every driver
// event) and skipped: one bad device never stops the others.
// Nothing is acknowledged before it is committed: a QoS 1/2 message is PUBACKed (PUBREC at QoS 2) only
// once its frames are committed to the log (FrameSink.commit). If the commit fails or the gateway dies
// first, the broker still holds the message in our persistent session (stable client id, clean: false)
// and sends it again when we reconnect. mqtt.js takes the next message only after this one is
// acknowledged, so a paused or slow log slows the broker (backpressure), never drops.
import { decode } from "@msgpack/msgpack";
import { hostname } from "node:os";
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

/** A commit failed: this message and the ones after it stay unacknowledged until we reconnect. */
export class MqttCommitError extends DriverError {
  override name = "MqttCommitError";
}

export class MqttSourceDriver implements Driver {
  private id = "";
  private cfg!: MqttSourceConfig;
  private tags = new Map<string, Variable>();
  private url = "";
  private client: MqttClient | null = null;
  /** bad payloads by reason (also in the log as mqtt.bad_payload events) */
  readonly badPayloads = new Map<string, number>();
  private lastReport = new Map<string, number>();
  /** the sink of the running read loop; messages that arrive before it wait (a resumed session delivers at once) */
  private sink: FrameSink | null = null;
  private sinkReady: Promise<FrameSink> = Promise.resolve(null as never);
  private setSink: (tx: FrameSink) => void = () => undefined;
  /** set when a commit failed: nothing more is acknowledged on this connection, the read loop ends */
  private failed: Error | null = null;
  private wakeLoop: (() => void) | null = null;

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
    this.failed = null;
    this.sinkReady = new Promise((resolve) => (this.setSink = resolve));
    const v5 = this.cfg.protocolVersion === 5;
    const persistent = this.cfg.sessionExpirySec > 0;
    const client = mqtt.connect(url, {
      protocolVersion: this.cfg.protocolVersion,
      // stable across restarts: the broker keeps the session (subscriptions and unacknowledged messages)
      clientId: this.cfg.clientId ?? `edge-src-${hostname()}-${this.id}`,
      clean: !persistent,
      ...(v5 && persistent ? { properties: { sessionExpiryInterval: this.cfg.sessionExpirySec } } : {}),
      username: this.cfg.username,
      password: this.cfg.password,
      reconnectPeriod: 1000,
      connectTimeout: endpoint?.timeoutMs ? Math.max(endpoint.timeoutMs, 3000) : 10_000,
      manualConnect: false,
      // MQTT 5: PUBACK (QoS 1) and PUBREC (QoS 2) go out when this callback answers, so we answer
      // after the commit. Installed before connecting: a resumed session delivers right after CONNACK.
      customHandleAcks: (_topic, _payload, packet: IPublishPacket, ack) => {
        this.take(packet).then(
          () => ack(0),
          (e: Error) => ack(e),
        );
      },
    });
    // MQTT 3.1.1 (no customHandleAcks) and QoS 0: mqtt.js sends the PUBACK after this callback. At QoS 2
    // in 3.1.1 it is called at PUBREL, after the PUBREC: use QoS 1 with 3.1.1 for the commit guarantee.
    client.handleMessage = (packet, done) => {
      if (v5 && packet.qos > 0) return done(); // taken (and committed) in customHandleAcks already
      this.take(packet).then(
        () => done(),
        (e: Error) => done(e),
      );
    };
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
    this.sink = tx;
    this.setSink(tx);
    let lost: Error | null = null;
    client.on("error", (e) => {
      if (!(e instanceof MqttCommitError)) lost = e;
    });
    const filters = Object.fromEntries(this.cfg.mappings.map((m) => [m.topic, { qos: this.cfg.qos }]));
    await client.subscribeAsync(filters);
    while (!signal.aborted) {
      tx.heartbeat(); // a quiet device is not a hung driver
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 1000);
        function done() {
          clearTimeout(t);
          signal.removeEventListener("abort", done);
          resolve();
        }
        this.wakeLoop = done;
        signal.addEventListener("abort", done, { once: true });
      });
      this.wakeLoop = null;
      if (signal.aborted) break;
      // the manager restarts us (shutdown, then a new connection): the broker sends the unacknowledged again
      if (this.failed) throw this.failed;
      if (lost && !client.connected) {
        // the broker went away: Bad frames for our tags would need last values; let the manager restart us
        const err: Error = lost;
        throw new DriverError(this.id, `lost the broker ${this.url}: ${err.message}`);
      }
    }
  }

  /** Maps one message to frames and commits them; rejects (nothing acknowledged) when the commit fails. */
  private async take(packet: IPublishPacket): Promise<void> {
    if (this.failed) throw this.failed; // keep the order: nothing after a failed message is acknowledged
    const tx = this.sink ?? (await this.sinkReady);
    try {
      await this.onMessage(tx, packet);
    } catch (e) {
      this.failed ??= new MqttCommitError(this.id, `commit of a message on ${packet.topic} failed, not acknowledged; the broker sends it again after reconnecting: ${(e as Error).message}`, { cause: e });
      this.wakeLoop?.();
      throw this.failed;
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
    if (!frames.length) return;
    // QoS 0 is never acknowledged: queue it with backpressure; otherwise the ack waits for the commit
    if (packet.qos === 0) await tx.send(frames);
    else await tx.commit(frames);
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
  }

  async shutdown(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.sink = null;
    this.wakeLoop?.();
    await c?.endAsync(true).catch(() => undefined);
  }
}

export const createMqttSource = () => new MqttSourceDriver();
