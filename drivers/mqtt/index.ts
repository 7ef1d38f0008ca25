// The MQTT source driver: subscribes to device topics on a broker and turns JSON or MessagePack payloads
// into data frames by the mappings of its config (topic filter + dot path -> tag, timestamp, quality).
// A message that cannot be handled (not decodable, no value at the path, wrong type, out of range, or any
// error while mapping it) is refused: acknowledged (a redelivery would fail the same way forever),
// counted per message and recorded as `mqtt.bad_payload` events (refusals.ts); one bad device, or one
// hostile payload, never stops the others. Only a failed commit leaves a message unacknowledged.
// Nothing is acknowledged before it is committed: a QoS 1/2 message is PUBACKed (PUBREC at QoS 2) only
// once its frames are committed to the log (FrameSink.commit). If the commit fails or the gateway dies
// first, the broker still holds the message in our persistent session (stable client id, clean: false)
// and sends it again when we reconnect.
// Pipelined: mqtt.js handles incoming packets one at a time and takes the next only when the current one
// is acknowledged, which would make every message wait for a commit of its own (~60 messages/s with
// log.maxDelayMs 10). So the driver releases mqtt.js's packet loop as soon as a message's frames are
// queued for the log, keeps up to `receiveMaximum` messages waiting for their commits at once (they share
// group commits), and sends their PUBACKs/PUBRECs itself, in arrival order, as the commits resolve. The
// broker sends at most `receiveMaximum` unacknowledged messages (MQTT 5 Receive Maximum, announced in
// CONNECT); past it, or while the log pauses producers, mqtt.js's loop waits (TCP backpressure).
import { decode } from "@msgpack/msgpack";
import { hostname } from "node:os";
import mqtt, { type IPublishPacket, type MqttClient } from "mqtt";
import { Quality, redactUrl, type DataFrame, type Variable } from "../../schemas/index.ts";
import { DRIVER_API_VERSION, type Driver, type DriverInit, type FrameSink } from "../contract.ts";
import type { Endpoint } from "../endpoint.ts";
import { DriverConfigError, DriverError } from "../errors.ts";
import { explainTlsError, isTlsError, readTlsMaterial, type TlsMaterial } from "../../storage/tls.ts";
import { toEngineering } from "../mapping.ts";
import { parseDriverConfig } from "../validate.ts";
import { MqttSourceConfig } from "./config.ts";
import { DecodeBatcher, PayloadUndecodable, type DecoderResolver } from "./decoder.ts";
import { BadPayload, extract, fillTag, matchTopic } from "./mapping.ts";
import { Refusals } from "./refusals.ts";

export { matchTopic, extract, BadPayload } from "./mapping.ts";
export type { DecoderResolver, PayloadDecoder } from "./decoder.ts";

export interface MqttSourceOptions {
  /** decoder plugins by name, for mappings with `decoder:` (the gateway's plugin host) */
  decoders?: DecoderResolver;
}

/** A commit failed: this message and the ones after it stay unacknowledged until we reconnect. */
export class MqttCommitError extends DriverError {
  override name = "MqttCommitError";
}

/**
 * Given to mqtt.js's ack callbacks to release its packet loop without it sending an acknowledgement:
 * the driver sends it after the commit. Not a failure (mqtt.js reports it as an "error" event at QoS 2,
 * which the driver ignores).
 */
class AckDeferred extends Error {
  override name = "AckDeferred";
}
const ACK_DEFERRED = new AckDeferred("acknowledged by the driver after the commit");

/** A QoS 1/2 message waiting for its commit, in arrival order. */
interface InFlight {
  messageId: number;
  ack: "puback" | "pubrec";
  /** the connection it came on: an ack never goes out on a later connection (the broker resends instead) */
  conn: number;
  state: "waiting" | "committed" | "failed";
}

export class MqttSourceDriver implements Driver {
  private id = "";
  private cfg!: MqttSourceConfig;
  private tags = new Map<string, Variable>();
  private url = "";
  private client: MqttClient | null = null;
  /** refused messages, counted by reason and recorded as mqtt.bad_payload events */
  private readonly refusals = new Refusals();
  /** the sink of the running read loop; messages that arrive before it wait (a resumed session delivers at once) */
  private sink: FrameSink | null = null;
  private sinkReady: Promise<FrameSink> = Promise.resolve(null as never);
  private setSink: (tx: FrameSink) => void = () => undefined;
  /** set when a commit failed: nothing more is acknowledged on this connection, the read loop ends */
  private failed: Error | null = null;
  private wakeLoop: (() => void) | null = null;
  /** a connection error since connect() (not our deferred acks) */
  private lost: Error | null = null;
  /** messages waiting for their commits, oldest first; acks go out from the front */
  private inFlight: InFlight[] = [];
  /** mqtt.js's packet loop, held while the window is full or the log pauses producers */
  private held: { entry: InFlight; release: () => void }[] = [];
  private conn = 0;
  private flushScheduled = false;
  /** wakes the read loop when a failed message reached the front of the window (all before it acked) */
  private onFailureFront: (() => void) | null = null;
  /** one batcher per decoder plugin named by a mapping */
  private batchers = new Map<string, DecodeBatcher>();

  constructor(private readonly opts: MqttSourceOptions = {}) {}

  meta() {
    return { name: "mqtt", kind: "source" as const, apiVersion: DRIVER_API_VERSION, features: ["read", "subscribe"] };
  }

  init(init: DriverInit): void {
    this.id = init.id;
    this.cfg = parseDriverConfig(init.id, MqttSourceConfig, init.config);
    this.tags = new Map(init.tags.map((t) => [t.tag, t]));
    this.batchers = new Map();
    this.cfg.mappings.forEach((m, i) => {
      if (!m.decoder || this.batchers.has(m.decoder)) return;
      if (!m.tag.includes("{tag}")) throw new DriverConfigError(init.id, `mappings[${i}].tag`, `a mapping with a decoder needs {tag} in its tag template (the decoded tag), e.g. "{tag}"`);
      // without a resolver (the config check: plugins are checked there on their own) only the shape is checked
      if (!this.opts.decoders) return;
      const decoder = this.opts.decoders(m.decoder);
      if (!decoder) throw new DriverConfigError(init.id, `mappings[${i}].decoder`, `no decoder plugin '${m.decoder}' is loaded`);
      this.batchers.set(m.decoder, new DecodeBatcher(decoder));
    });
  }

  async connect(endpoint: Endpoint | undefined, signal: AbortSignal): Promise<void> {
    const url = endpoint?.url ?? this.cfg.url;
    if (!url) throw new DriverConfigError(this.id, "endpoint", "the mqtt driver needs an endpoint (mqtt://host:1883) or config.url");
    if (endpoint && endpoint.scheme !== "mqtt" && endpoint.scheme !== "mqtts") throw new DriverConfigError(this.id, "endpoint", `expected mqtt:// or mqtts://, got ${endpoint.scheme}://`);
    const unresolved = this.cfg.mappings.find((m) => m.decoder && !this.batchers.has(m.decoder));
    if (unresolved) throw new DriverConfigError(this.id, "mappings", `decoder '${unresolved.decoder}' cannot be used: this driver was created without the gateway's decoder plugins`);
    this.url = url;
    this.failed = null;
    this.lost = null;
    this.inFlight = [];
    this.held = [];
    this.sinkReady = new Promise((resolve) => (this.setSink = resolve));
    const v5 = this.cfg.protocolVersion === 5;
    const persistent = this.cfg.sessionExpirySec > 0;
    const tls = endpoint?.tls;
    // read at every connect (each restart of the driver): a certificate fixed on disk is used at the next try
    let material: TlsMaterial = {};
    try {
      if (tls) material = readTlsMaterial(tls);
    } catch (e) {
      throw new DriverError(this.id, `broker ${redactUrl(url)}: ${(e as Error).message}`, { cause: e });
    }
    const client = mqtt.connect(url, {
      ...material,
      ...(tls ? { rejectUnauthorized: tls.rejectUnauthorized, ...(tls.servername ? { servername: tls.servername } : {}) } : {}),
      protocolVersion: this.cfg.protocolVersion,
      // stable across restarts: the broker keeps the session (subscriptions and unacknowledged messages)
      clientId: this.cfg.clientId ?? `edge-src-${hostname()}-${this.id}`,
      clean: !persistent,
      // Receive Maximum: the broker sends at most this many unacknowledged QoS 1/2 messages (our window)
      ...(v5 ? { properties: { receiveMaximum: this.cfg.receiveMaximum, ...(persistent ? { sessionExpiryInterval: this.cfg.sessionExpirySec } : {}) } } : {}),
      username: this.cfg.username,
      password: this.cfg.password,
      reconnectPeriod: 1000,
      connectTimeout: endpoint?.timeoutMs ? Math.max(endpoint.timeoutMs, 3000) : 10_000,
      manualConnect: false,
      // MQTT 5 QoS 2: mqtt.js would send the PUBREC when this callback answers and take the next packet
      // only then. Answering with ACK_DEFERRED releases its loop without a PUBREC (it reports an "error"
      // event, ignored below; at the PUBREL it finds nothing stored and sends the PUBCOMP): the driver
      // sends the PUBREC after the commit. QoS 1 goes on to handleMessage. Installed before connecting:
      // a resumed session delivers right after CONNACK.
      customHandleAcks: (_topic, _payload, packet: IPublishPacket, ack) => {
        if (packet.qos === 2) this.admit(packet, "pubrec", () => ack(ACK_DEFERRED));
        else ack(0);
      },
    });
    client.on("error", (e) => {
      if (e !== ACK_DEFERRED && !(e instanceof MqttCommitError)) this.lost = e;
    });
    // unacknowledged messages of a closed connection are the broker's again: it resends them
    client.on("close", () => void this.conn++);
    // QoS 1 (MQTT 5 and 3.1.1): mqtt.js sends the PUBACK when this callback answers without an error and
    // waits for it before the next packet; answering ACK_DEFERRED moves on without a PUBACK (the driver
    // sends it after the commit). QoS 0 and 3.1.1 QoS 2 are taken one at a time: QoS 0 is queued with
    // backpressure; 3.1.1 QoS 2 comes here at the PUBREL, after mqtt.js's PUBREC (no hook before it in
    // 3.1.1: use QoS 1 with 3.1.1 for the commit guarantee).
    client.handleMessage = (packet, done) => {
      if (packet.qos === 1) return this.admit(packet, "puback", () => done(ACK_DEFERRED));
      this.take(packet).then(
        () => done(),
        (e: Error) => done(e),
      );
    };
    this.client = client;
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => (client.off("error", onError), reject(new DriverError(this.id, "connect aborted")));
        const onError = (e: Error) => {
          if (e === ACK_DEFERRED) return;
          signal.removeEventListener("abort", onAbort);
          client.off("error", onError);
          const why = isTlsError(e) ? explainTlsError(e, endpoint ? `${endpoint.host}:${endpoint.port ?? 8883}` : redactUrl(url), tls ?? { rejectUnauthorized: true }).message : e.message;
          reject(new DriverError(this.id, `broker ${redactUrl(url)}: ${why}`, { cause: e }));
        };
        signal.addEventListener("abort", onAbort, { once: true });
        client.on("error", onError);
        client.once("connect", () => (signal.removeEventListener("abort", onAbort), client.off("error", onError), resolve()));
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
    this.refusals.useSink(tx);
    this.lost = null;
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
      if (this.failed) {
        // the messages before the failed one still get their acks once committed (fewer duplicates)
        await this.ackedUpToFailure(5000);
        throw this.failed;
      }
      if (this.lost && !client.connected) {
        // the broker went away: Bad frames for our tags would need last values; let the manager restart us
        const err: Error = this.lost;
        throw new DriverError(this.id, `lost the broker ${redactUrl(this.url)}: ${err.message}`);
      }
    }
  }

  /**
   * Takes a QoS 1/2 message into the window: its frames go to the log now, its ack when they are
   * committed and every earlier message is acknowledged. `release` lets mqtt.js go on to the next packet
   * (without acknowledging this one): at once while the window has room and the log takes frames.
   */
  private admit(packet: IPublishPacket, ack: InFlight["ack"], release: () => void): void {
    const entry: InFlight = { messageId: packet.messageId!, ack, conn: this.conn, state: "waiting" };
    this.inFlight.push(entry);
    this.take(packet).then(
      () => this.settle(entry, "committed"),
      () => this.settle(entry, "failed"),
    );
    if (this.mayRelease(entry)) release();
    else this.held.push({ entry, release });
  }

  // Paused log: the message's frames wait for capacity inside commit(); the next message must not
  // overtake them (a QoS 0 one would be queued at once), so mqtt.js waits until this one is settled.
  private mayRelease(entry: InFlight): boolean {
    return entry.state !== "waiting" || (this.inFlight.length < this.cfg.receiveMaximum && !(this.sink?.isPaused ?? false));
  }

  private settle(entry: InFlight, state: InFlight["state"]): void {
    entry.state = state;
    // the messages of one commit settle in the same turn: one pass sends all their acks together
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushAcks();
    });
  }

  /** Sends the acks of the committed messages at the front of the window, in arrival order. */
  private flushAcks(): void {
    const client = this.client;
    const stream = client?.stream as { cork?: () => void; uncork?: () => void } | undefined;
    stream?.cork?.();
    try {
      while (this.inFlight.length && this.inFlight[0]!.state !== "waiting") {
        const e = this.inFlight[0]!;
        if (e.state === "failed") {
          // nothing from here on is acknowledged: the broker sends it again after we reconnect
          this.inFlight = [];
          this.onFailureFront?.();
          break;
        }
        this.inFlight.shift();
        // mqtt.js's own sender (private): PUBACK/PUBREC are written as they are, and 'packetsend' is emitted
        if (client && client.connected && e.conn === this.conn) (client as unknown as { _sendPacket(p: object): void })._sendPacket({ cmd: e.ack, messageId: e.messageId });
      }
    } finally {
      stream?.uncork?.();
    }
    while (this.held.length && this.mayRelease(this.held[0]!.entry)) this.held.shift()!.release();
  }

  /** Resolves when every message before the failed one is acknowledged (or after `ms`). */
  private ackedUpToFailure(ms: number): Promise<void> {
    if (this.inFlight.length === 0 || this.inFlight[0]!.state === "failed") return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.onFailureFront = null;
        resolve();
      }
      this.onFailureFront = done;
    });
  }

  /** Refused messages by reason since the driver was created (each also counted in the gateway's metrics). */
  get badPayloads(): ReadonlyMap<string, number> {
    return this.refusals.totals;
  }

  /**
   * Maps one message to frames and commits them. A message that cannot be mapped is refused (resolves:
   * it is acknowledged); rejects (nothing acknowledged) only when the commit fails.
   */
  private async take(packet: IPublishPacket): Promise<void> {
    if (this.failed) throw this.failed; // keep the order: nothing after a failed message is acknowledged
    const tx = this.sink ?? (await this.sinkReady);
    const frames = this.toFrames(tx, packet);
    if (this.batchers.size) frames.push(...(await this.decodedFrames(tx, packet)));
    if (!frames.length) return;
    try {
      // QoS 0 is never acknowledged: queue it with backpressure; otherwise the ack waits for the commit
      if (packet.qos === 0) await tx.send(frames);
      // a full window: the broker sends nothing more until this commit acknowledges, so it need not linger
      else await tx.commit(frames, this.inFlight.length >= this.cfg.receiveMaximum ? { urgent: true } : undefined);
    } catch (e) {
      this.failed ??= new MqttCommitError(this.id, `commit of a message on ${packet.topic} failed, not acknowledged; the broker sends it again after reconnecting: ${(e as Error).message}`, { cause: e });
      this.wakeLoop?.();
      throw this.failed;
    }
  }

  /** The frames of one message by the mappings its topic matches; every mapping that fails is a refusal. */
  private toFrames(tx: FrameSink, packet: IPublishPacket): DataFrame[] {
    const topic = packet.topic;
    const now = Date.now() * 1000;
    const frames: DataFrame[] = [];
    for (const m of this.cfg.mappings) {
      if (m.decoder) continue;
      const caps = matchTopic(m.topic, topic);
      if (!caps) continue;
      const tagName = fillTag(m.tag, caps);
      try {
        const tag = this.tags.get(tagName);
        if (!tag) throw new BadPayload("missing_path", `topic maps to tag '${tagName}', which is not in variables.yml for driver '${this.id}'`);
        const body = this.decode(packet.payload as Buffer, m.payload ?? this.cfg.payload);
        const x = extract(m, tag, body, now);
        frames.push({ kind: "data", tag: tagName, value: toEngineering(tag, x.value), ts: x.ts, quality: x.quality, source: this.id });
      } catch (e) {
        const bad = e instanceof BadPayload ? e : new BadPayload("unhandled", `mapping the message failed: ${errorText(e)}`);
        this.refusals.add(tx, bad.reason, topic, bad.message);
      }
    }
    return frames;
  }

  /**
   * The frames of one message from the decoder plugins its topic matches. A decoded tag not in
   * variables.yml, or a decoder that failed (timed out, crashed), is a refusal like any bad payload.
   */
  private async decodedFrames(tx: FrameSink, packet: IPublishPacket): Promise<DataFrame[]> {
    const frames: DataFrame[] = [];
    const now = Date.now() * 1000;
    for (const m of this.cfg.mappings) {
      const caps = m.decoder ? matchTopic(m.topic, packet.topic) : null;
      if (!caps) continue;
      let decoded;
      try {
        decoded = await this.batchers.get(m.decoder!)!.decode(packet.payload as Buffer);
      } catch (e) {
        if (e instanceof PayloadUndecodable) this.refusals.add(tx, "not_decodable", packet.topic, `decoder '${m.decoder}' could not decode the payload: ${e.message.slice(0, 200)}`);
        else this.refusals.add(tx, "unhandled", packet.topic, `decoder '${m.decoder}' failed: ${errorText(e, 300)}`);
        continue;
      }
      const template = fillTag(m.tag, caps);
      for (const d of decoded) {
        const tagName = template.replace("{tag}", d.tag);
        const tag = this.tags.get(tagName);
        if (!tag) {
          this.refusals.add(tx, "missing_path", packet.topic, `decoder '${m.decoder}' gave tag '${tagName}', which is not in variables.yml for driver '${this.id}'`);
          continue;
        }
        frames.push({ kind: "data", tag: tagName, value: toEngineering(tag, d.value), ts: d.ts ?? now, quality: d.quality ?? Quality.Good, source: this.id });
      }
    }
    return frames;
  }

  private decode(payload: Buffer, format: "json" | "msgpack"): unknown {
    try {
      return format === "json" ? JSON.parse(payload.toString("utf8")) : decode(payload, { useBigInt64: true });
    } catch (e) {
      throw new BadPayload("not_decodable", `payload is not ${format === "json" ? "JSON" : "MessagePack"} (${errorText(e)})`);
    }
  }

  async shutdown(): Promise<void> {
    this.refusals.close();
    const c = this.client;
    this.client = null;
    this.sink = null;
    this.wakeLoop?.();
    this.inFlight = [];
    this.held = [];
    await c?.endAsync(true).catch(() => undefined);
  }
}

/** An error's text for a refusal message, short, whatever was thrown (building it must not throw). */
function errorText(e: unknown, max = 120): string {
  try {
    return (e instanceof Error ? `${e.name}: ${e.message}` : typeof e).slice(0, max);
  } catch {
    return "unprintable error";
  }
}

export const createMqttSource = () => new MqttSourceDriver();
