// Store and forward: a durable log consumer (storage/consumer.ts) with manual progress that publishes
// batches and reports as handled only the offsets whose messages the broker acknowledged (PUBACK at QoS 1,
// PUBCOMP at QoS 2, the socket write at QoS 0): the consumer's position is the contiguous acknowledged
// offset, and it is stored as the cursor. At most `maxInflight` messages are unacknowledged; while the
// broker is away the handler waits and nothing more is read from the log (the log is the buffer, memory
// stays flat), and mqtt.js resends the in-flight ones from its session store when the connection comes
// back, so at QoS 2 the broker sees each message once. A failed publish rewinds the consumer: the next
// pass starts after the in-flight window settled, from the acknowledged offset. The window's bookkeeping
// (in-flight ranges, the acknowledged prefix, the cursor) and the batching loop are storage/ack-window.ts
// and storage/window-publisher.ts, shared with NATS.
import type { MqttClient, IClientPublishOptions } from "mqtt";
import type { Logger } from "pino";
import type { Catalog } from "../../schemas/catalog.ts";
import type { DataFrame, EventFrame, Logged } from "../../schemas/frames.ts";
import { AlarmTransition } from "../../schemas/alarms.ts";
import { Rewind, type ConsumerContext } from "../../storage/consumer.ts";
import { WindowPublisher, type OpenBatch as Batch } from "../../storage/window-publisher.ts";
import type { EventLog } from "../../storage/log.ts";
import { delay } from "../../storage/time.ts";
import type { MqttNorthConfig } from "./config.ts";
import type { UplinkMetrics } from "./metrics.ts";
import { PayloadEncoder } from "../../schemas/wire.ts";
import { fillTopic } from "./topics.ts";

/** A message published and not yet acknowledged, or a run of frames with nothing to publish. */
interface Inflight {
  first: number;
  last: number;
  frames: Logged<DataFrame>[];
  bytes: number;
  settled: boolean;
  error: Error | null;
  /** mqtt.js packet id (QoS 1/2), to take the message out of its session store when the broker refuses it */
  messageId?: number;
}

const ALARM_TRANSITIONS = new Set<string>(Object.values(AlarmTransition));

interface OpenBatch extends Batch {
  /** an alarm transition, published alone on `alarmTopic` (a batch holds either data frames or this) */
  alarm?: Logged<EventFrame>;
}

export interface PublisherDeps {
  log: EventLog;
  catalog: Catalog;
  logger: Logger;
  metrics: UplinkMetrics;
  gatewayId: string;
  config: MqttNorthConfig;
}

export class Publisher extends WindowPublisher<Inflight, OpenBatch> {
  /** highest offset ever handed to mqtt.js in this process: a later publish up to it is a resend */
  private sentHigh = 0;
  private limit: number;
  private okStreak = 0;
  private retryDelayMs: number;
  private client: MqttClient | null = null;
  private readonly encoder: PayloadEncoder;
  /** topics of single-frame messages by tenant, then tag (a reload may move a tag to another tenant) */
  private readonly topics = new Map<string, Map<string, string>>();
  private topicCount = 0;

  constructor(private readonly d: PublisherDeps) {
    const cfg = d.config;
    super(d.log, { config: cfg, retry: { initialMs: cfg.reconnectMinMs, maxMs: cfg.reconnectMaxMs }, logger: d.logger });
    this.limit = cfg.batch.maxFrames;
    this.retryDelayMs = cfg.reconnectMinMs;
    this.encoder = new PayloadEncoder(cfg.payload);
  }

  /** Starts the consumer, publishing with `client`. */
  start(client: MqttClient): void {
    this.client = client;
    this.window.start();
  }

  /** Drains the window (while connected, at most `timeoutMs`) and stores the acknowledged offset as the cursor. */
  stop(timeoutMs: number): Promise<void> {
    return this.drainAndStop(timeoutMs, () => this.client?.connected === true, "mqtt uplink: stopping with unacknowledged messages; they are sent again after the restart");
  }

  /**
   * Before every read pass (the first, after a failed publish, after a read error): the open batch is
   * dropped (it is read again), every in-flight message settles, the contiguous acknowledged prefix is
   * kept and the rest dropped (read again from the log); the batches shrink if the broker refused one.
   */
  protected async recover(ctx: ConsumerContext): Promise<void> {
    const from = this.acked;
    if (!(await this.window.settled(ctx.signal))) return;
    this.window.clear();
    // the pass was planned from the offset before the window settled: start again after what was acked
    if (this.acked !== from) throw new Rewind();
    const failed = this.window.takeFailure();
    if (!failed) return;
    const n = failed.frames.length;
    if (n > 1) {
      // a batch refused as a whole (e.g. over the broker's message_size_limit): retry it in halves
      this.limit = Math.max(1, Math.floor(n / 2));
    } else {
      // a single frame refused: it stays the next to send; retry with growing delay, never skip it
      await delay(this.retryDelayMs, ctx.signal);
      this.retryDelayMs = Math.min(this.d.config.reconnectMaxMs, this.retryDelayMs * 2);
    }
  }

  private tenantOf(tag: string): string {
    return this.d.catalog.get(tag)?.tenant ?? "default";
  }

  /** Adds a frame to the open batch; true when the batch is full (or must close) and is flushed now. */
  protected add(f: Logged): boolean {
    let b = this.batch;
    if (f.kind === "event" && this.d.config.alarmTopic !== "" && ALARM_TRANSITIONS.has(f.type)) {
      // alarm transitions reach the cloud too, each as its own message, in offset order with the data
      if (b && (b.frames.length > 0 || b.alarm)) {
        this.pendingFrame = f;
        return true;
      }
      const tenant = f.tag === undefined ? "default" : this.tenantOf(f.tag);
      const first = b ? b.first : f.offset;
      this.batch = { frames: [], first, last: f.offset, tenant, bytes: 0, since: performance.now(), alarm: f };
      return true;
    }
    if (f.kind !== "data") {
      // nothing to publish, but the cursor moves over it together with the batch that holds it
      if (!b) b = this.batch = { frames: [], first: f.offset, last: f.offset, tenant: "", bytes: 0, since: performance.now() };
      b.last = f.offset;
      return false;
    }
    const tenant = this.tenantOf(f.tag);
    if (b && b.frames.length > 0 && b.tenant !== tenant) {
      // a batch never mixes tenants (their topics, and the broker's ACLs, differ): close it first
      this.pendingFrame = f;
      return true;
    }
    if (!b) b = this.batch = { frames: [], first: f.offset, last: f.offset, tenant, bytes: 0, since: performance.now() };
    b.tenant = tenant;
    b.frames.push(f as Logged<DataFrame>);
    b.last = f.offset;
    b.bytes += f.tag.length + (typeof f.value === "string" ? f.value.length : 24) + 64;
    return b.frames.length >= this.limit || b.bytes >= this.d.config.batch.maxBytes;
  }

  private room(client: MqttClient): number {
    return Math.min(this.d.config.maxInflight, client.connected ? (client.serverProperties?.receiveMaximum ?? 65535) : 0);
  }

  /** Publishes the batch (waiting for room in the window, and for the connection). */
  protected async send(b: OpenBatch, signal: AbortSignal): Promise<void> {
    const cfg = this.d.config;
    const m: Inflight = { first: b.first, last: b.last, frames: b.frames, bytes: 0, settled: false, error: null };
    if (b.frames.length === 0 && !b.alarm) return this.window.skip(m);
    // the client is set before the consumer starts (start(client))
    const client = this.client!;
    // a failed publish (the consumer is rewinding) or a stop: this batch is read again from the log
    if (!(await this.window.waitForRoom(signal, b.last, () => this.room(client)))) throw new Rewind();
    const { topic, payload } = this.encode(b);
    m.bytes = payload.length;
    const opts: IClientPublishOptions = { qos: cfg.qos, retain: cfg.retain };
    // a message we are sending again after a failure; brokers do not pass DUP on, the offsets tell the cloud
    if (b.last <= this.sentHigh) opts.dup = true;
    if (cfg.protocolVersion === 5) {
      opts.properties = {
        contentType: b.alarm ? "application/json" : this.encoder.contentType,
        ...(cfg.messageExpirySec ? { messageExpiryInterval: cfg.messageExpirySec } : {}),
        userProperties: { gatewayId: this.d.gatewayId, offsets: `${b.first}-${b.last}` },
      };
    }
    this.sentHigh = Math.max(this.sentHigh, b.last);
    this.window.push(m);
    client.publish(topic, payload, opts, (err, packet) => {
      // mqtt.js reports a refusal (reason code >= 0x80 in PUBACK/PUBREC) as an error here
      const rc = (packet as { reasonCode?: number } | undefined)?.reasonCode;
      this.window.settle(m, err ?? (rc !== undefined && rc >= 0x80 ? new Error(`reason code 0x${rc.toString(16)}`) : null));
    });
    if (cfg.qos > 0) m.messageId = client.getLastMessageId();
  }

  private encode(b: OpenBatch): { topic: string; payload: Buffer } {
    const cfg = this.d.config;
    if (b.alarm) {
      const a = b.alarm;
      const body = { offset: a.offset, type: a.type, ts: a.ts, tag: a.tag ?? null, ...(a.data ?? {}) };
      return { topic: fillTopic(cfg.alarmTopic, { tenant: b.tenant, device: this.d.gatewayId }), payload: Buffer.from(JSON.stringify(body, (_k, v) => (typeof v === "bigint" ? v.toString() : v))) };
    }
    if (cfg.batch.maxFrames === 1 && b.frames.length === 1) {
      const f = b.frames[0]!;
      return { topic: this.topicOf(f.tag, b.tenant), payload: this.encoder.frame(f) };
    }
    return { topic: fillTopic(cfg.batchTopic, { tenant: b.tenant, device: this.d.gatewayId }), payload: this.encoder.batch(this.d.gatewayId, b.frames, b.first, b.last) };
  }

  /**
   * The broker answered the oldest unacknowledged message with a reason code mqtt.js cannot parse
   * (mosquitto 2.0 answers an over-size publish with "packet too large" in PUBACK, which the MQTT 5
   * parser refuses, and the connection drops). Acks come in order, so it is the oldest one: take it out
   * of mqtt.js's session store, or it would be resent after every reconnect forever, and fail it.
   */
  refuseOldest(reason: string): void {
    const m = this.window.oldestInflight();
    if (!m || m.messageId === undefined || !this.client) return;
    this.window.settle(m, new Error(`refused by the broker (${reason})`));
    this.client.removeOutgoingMessage(m.messageId); // its callback finds the message settled already
  }

  private topicOf(tag: string, tenant: string): string {
    let byTag = this.topics.get(tenant);
    if (!byTag) this.topics.set(tenant, (byTag = new Map()));
    let t = byTag.get(tag);
    if (t === undefined) {
      t = fillTopic(this.d.config.topic, { tenant, device: this.d.gatewayId, tag });
      // bounded: a catalog of more tags than this rebuilds its topics now and then
      if (++this.topicCount > 100_000) (this.topics.clear(), (this.topicCount = 1), this.topics.set(tenant, (byTag = new Map())));
      byTag.set(tag, t);
    }
    return t;
  }

  protected failed(m: Inflight, err: Error): void {
    const code = (err as { code?: unknown }).code;
    this.d.metrics.publishErrors.inc({ reason: code !== undefined ? String(code) : err.message.slice(0, 60) });
    this.d.logger.error(
      { err: err.message, offsets: `${m.first}-${m.last}`, frames: m.frames.length, bytes: m.bytes },
      `mqtt uplink: publish of offsets ${m.first}-${m.last} (${m.bytes} bytes) failed: ${err.message}; cursor kept at ${this.acked}, will resend`,
    );
    this.okStreak = 0;
    // the handler may be waiting for room or for new frames: rewind now
    this.consumer.rewind();
  }

  protected succeeded(m: Inflight): void {
    const mt = this.d.metrics;
    mt.messages.inc();
    mt.frames.inc(m.frames.length);
    mt.bytes.inc(m.bytes);
    const nowMs = Date.now();
    for (const f of m.frames) mt.latency.observe(nowMs - f.ts / 1000);
    if (++this.okStreak >= 50 && this.limit < this.d.config.batch.maxFrames) {
      this.limit = Math.min(this.d.config.batch.maxFrames, this.limit * 2);
      this.okStreak = 0;
    }
    this.retryDelayMs = this.d.config.reconnectMinMs;
  }
}
