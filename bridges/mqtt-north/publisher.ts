// Store and forward: reads the log from the cursor, publishes batches, and moves the cursor only over
// offsets whose messages the broker acknowledged (PUBACK at QoS 1, PUBCOMP at QoS 2, the socket write at
// QoS 0). At most `maxInflight` messages are unacknowledged; while the broker is away nothing is read
// from the log (the log is the buffer, memory stays flat) and mqtt.js resends the in-flight ones from its
// session store when the connection comes back, so at QoS 2 the broker sees each message once.
import type { MqttClient, IClientPublishOptions } from "mqtt";
import type { Logger } from "pino";
import type { Catalog } from "../../schemas/catalog.ts";
import type { DataFrame, Logged } from "../../schemas/frames.ts";
import type { EventLog } from "../../storage/log.ts";
import type { MqttNorthConfig } from "./config.ts";
import type { UplinkMetrics } from "./metrics.ts";
import { fillTopic, PayloadEncoder } from "./payload.ts";

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

/** Thrown inside the read pass when a publish failed: the pass restarts from the acknowledged offset. */
class Rewind extends Error {
  override name = "Rewind";
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

export interface PublisherDeps {
  log: EventLog;
  catalog: Catalog;
  logger: Logger;
  metrics: UplinkMetrics;
  gatewayId: string;
  config: MqttNorthConfig;
}

export class Publisher {
  /** every frame up to here is acknowledged by the broker (contiguously) */
  acked: number;
  private committed: number;
  private ackedLoggedAt = 0;
  private window: Inflight[] = [];
  private failure: Inflight | null = null;
  private wakeUp: (() => void) | null = null;
  /** highest offset ever handed to mqtt.js in this process: a later publish up to it is a resend */
  private sentHigh = 0;
  private limit: number;
  private okStreak = 0;
  private retryDelayMs: number;
  private client: MqttClient | null = null;
  private readonly encoder: PayloadEncoder;
  private readonly topics = new Map<string, string>();
  private batch: { frames: Logged<DataFrame>[]; first: number; last: number; tenant: string; bytes: number; since: number } | null = null;
  private passCtl: AbortController | null = null;
  private commitTimer: ReturnType<typeof setInterval> | null = null;
  private committing: Promise<void> | null = null;

  constructor(private readonly d: PublisherDeps) {
    this.acked = d.log.cursor(d.config.cursor);
    this.committed = this.acked;
    this.limit = d.config.batch.maxFrames;
    this.retryDelayMs = d.config.reconnectMinMs;
    this.encoder = new PayloadEncoder(d.config.payload);
  }

  /** Wakes the reader (a message settled, the connection came back, a stop). */
  notify(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  /** Messages published and not yet acknowledged (bounded by maxInflight). */
  get inflight(): number {
    return this.window.length;
  }

  /** Lag in frames and seconds, for the gauges. */
  lag(): { frames: number; seconds: number } {
    const frames = Math.max(0, this.d.log.head - this.acked);
    const seconds = frames === 0 || this.ackedLoggedAt === 0 ? 0 : Math.max(0, Date.now() / 1000 - this.ackedLoggedAt / 1e6);
    return { frames, seconds };
  }

  /** Reads and publishes until the signal aborts. Never throws. */
  async run(client: MqttClient, signal: AbortSignal): Promise<void> {
    this.client = client;
    this.commitTimer = setInterval(() => void this.commitCursor(), this.d.config.commitEveryMs);
    try {
      while (!signal.aborted) {
        try {
          await this.pass(signal);
        } catch (e) {
          if (!(e instanceof Rewind)) {
            this.d.logger.error({ err: e }, "mqtt uplink: read pass failed; restarting from the cursor");
            await sleep(this.d.config.reconnectMinMs, signal);
          }
        }
        if (signal.aborted) break;
        await this.recover(signal);
      }
    } finally {
      clearInterval(this.commitTimer);
      this.commitTimer = null;
      await this.commitCursor();
    }
  }

  /**
   * After a failed publish: let every in-flight message settle, keep the contiguous acknowledged prefix,
   * drop the rest (it will be read again from the log), shrink the batches if the broker refused one.
   */
  private async recover(signal: AbortSignal): Promise<void> {
    this.batch = null;
    this.pendingFrame = null;
    while (!signal.aborted && this.window.some((m) => !m.settled)) await this.wait(signal);
    const failed = this.failure;
    this.window = [];
    this.failure = null;
    if (!failed) return;
    const n = failed.frames.length;
    if (n > 1) {
      // a batch refused as a whole (e.g. over the broker's message_size_limit): retry it in halves
      this.limit = Math.max(1, Math.floor(n / 2));
    } else {
      // a single frame refused: it stays the next to send; retry with growing delay, never skip it
      await sleep(this.retryDelayMs, signal);
      this.retryDelayMs = Math.min(this.d.config.reconnectMaxMs, this.retryDelayMs * 2);
    }
  }

  private wait(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        if (this.wakeUp === done) this.wakeUp = null;
        resolve();
      };
      const prev = this.wakeUp;
      this.wakeUp = prev ? () => (prev(), done()) : done;
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** One read pass from acked + 1 until a failure (Rewind) or the signal. */
  private async pass(outer: AbortSignal): Promise<void> {
    const ctl = new AbortController();
    this.passCtl = ctl;
    const onAbort = () => ctl.abort();
    outer.addEventListener("abort", onAbort, { once: true });
    const signal = ctl.signal;
    const it = this.d.log.follow({ from: this.acked + 1, signal, pageSize: 20_000 })[Symbol.asyncIterator]();
    const maxDelayMs = this.d.config.batch.maxDelayMs;
    try {
      let next = it.next();
      while (!signal.aborted) {
        let r: IteratorResult<Logged[]> | null;
        if (this.batch) {
          const wait = Math.max(0, this.batch.since + maxDelayMs - performance.now());
          let timer: ReturnType<typeof setTimeout> | undefined;
          r = await Promise.race([next, new Promise<null>((res) => (timer = setTimeout(res, wait, null)))]);
          clearTimeout(timer);
          if (r === null) {
            await this.flush(signal);
            continue;
          }
        } else {
          r = await next;
        }
        if (r.done) break;
        next = it.next();
        const page = r.value;
        for (let i = 0; i < page.length; i++) {
          if (this.add(page[i]!)) await this.flush(signal);
        }
        if (maxDelayMs === 0 && this.batch) await this.flush(signal);
      }
    } finally {
      outer.removeEventListener("abort", onAbort);
      ctl.abort();
      await it.return?.(undefined);
    }
  }

  private tenantOf(tag: string): string {
    return this.d.catalog.get(tag)?.tenant ?? "default";
  }

  /** Adds a frame to the open batch; true when the batch is full and must be flushed now. */
  private add(f: Logged): boolean {
    let b = this.batch;
    if (f.kind !== "data") {
      // nothing to publish, but the cursor moves over it together with the batch that holds it
      if (!b) b = this.batch = { frames: [], first: f.offset, last: f.offset, tenant: "", bytes: 0, since: performance.now() };
      b.last = f.offset;
      return false;
    }
    const tenant = this.tenantOf(f.tag);
    if (b && b.frames.length > 0 && b.tenant !== tenant) {
      // a batch never mixes tenants (their topics, and the broker's ACLs, differ): close it first
      return this.splitTenant(f, tenant);
    }
    if (!b) b = this.batch = { frames: [], first: f.offset, last: f.offset, tenant, bytes: 0, since: performance.now() };
    b.tenant = tenant;
    b.frames.push(f as Logged<DataFrame>);
    b.last = f.offset;
    b.bytes += f.tag.length + (typeof f.value === "string" ? f.value.length : 24) + 64;
    return b.frames.length >= this.limit || b.bytes >= this.d.config.batch.maxBytes;
  }

  private pendingFrame: { f: Logged; tenant: string } | null = null;

  private splitTenant(f: Logged, tenant: string): boolean {
    this.pendingFrame = { f, tenant };
    return true;
  }

  /** Publishes the open batch (waiting for room in the window, and for the connection). */
  private async flush(signal: AbortSignal): Promise<void> {
    const b = this.batch;
    this.batch = null;
    if (b) await this.send(b, signal);
    const p = this.pendingFrame;
    if (p) {
      this.pendingFrame = null;
      if (this.add(p.f)) await this.flush(signal);
    }
  }

  private async send(b: NonNullable<Publisher["batch"]>, signal: AbortSignal): Promise<void> {
    const cfg = this.d.config;
    const m: Inflight = { first: b.first, last: b.last, frames: b.frames, bytes: 0, settled: false, error: null };
    if (b.frames.length === 0) {
      m.settled = true;
      this.window.push(m);
      this.advance();
      return;
    }
    const client = this.client!;
    const room = () => Math.min(cfg.maxInflight, client.connected ? (client.serverProperties?.receiveMaximum ?? 65535) : 0);
    while (!signal.aborted && !this.failure && (!client.connected || this.window.length >= room())) await this.wait(signal);
    if (this.failure) throw new Rewind();
    if (signal.aborted) throw new Rewind();
    let topic: string;
    let payload: Buffer;
    if (cfg.batch.maxFrames === 1 && b.frames.length === 1) {
      const f = b.frames[0]!;
      topic = this.topicOf(f.tag, b.tenant);
      payload = this.encoder.frame(f);
    } else {
      topic = fillTopic(cfg.batchTopic, { tenant: b.tenant, device: this.d.gatewayId });
      payload = this.encoder.batch(this.d.gatewayId, b.frames, b.first, b.last);
    }
    m.bytes = payload.length;
    const opts: IClientPublishOptions = { qos: cfg.qos, retain: cfg.retain };
    // a message we are sending again after a failure; brokers do not pass DUP on, the offsets tell the cloud
    if (b.last <= this.sentHigh) opts.dup = true;
    if (cfg.protocolVersion === 5) {
      opts.properties = {
        contentType: this.encoder.contentType,
        ...(cfg.messageExpirySec ? { messageExpiryInterval: cfg.messageExpirySec } : {}),
        userProperties: { gatewayId: this.d.gatewayId, offsets: `${b.first}-${b.last}` },
      };
    }
    this.sentHigh = Math.max(this.sentHigh, b.last);
    this.window.push(m);
    client.publish(topic, payload, opts, (err, packet) => {
      // mqtt.js reports a refusal (reason code >= 0x80 in PUBACK/PUBREC) as an error here
      const rc = (packet as { reasonCode?: number } | undefined)?.reasonCode;
      this.settle(m, err ?? (rc !== undefined && rc >= 0x80 ? new Error(`reason code 0x${rc.toString(16)}`) : null));
    });
    if (cfg.qos > 0) m.messageId = client.getLastMessageId();
  }

  /**
   * The broker answered the oldest unacknowledged message with a reason code mqtt.js cannot parse
   * (mosquitto 2.0 answers an over-size publish with "packet too large" in PUBACK, which the MQTT 5
   * parser refuses, and the connection drops). Acks come in order, so it is the oldest one: take it out
   * of mqtt.js's session store, or it would be resent after every reconnect forever, and fail it.
   */
  refuseOldest(reason: string): void {
    const m = this.window.find((x) => !x.settled);
    if (!m || m.messageId === undefined || !this.client) return;
    this.settle(m, new Error(`refused by the broker (${reason})`));
    this.client.removeOutgoingMessage(m.messageId); // its callback finds the message settled already
  }

  private topicOf(tag: string, tenant: string): string {
    let t = this.topics.get(tag);
    if (t === undefined) {
      t = fillTopic(this.d.config.topic, { tenant, device: this.d.gatewayId, tag });
      if (this.topics.size > 100_000) this.topics.clear();
      this.topics.set(tag, t);
    }
    return t;
  }

  private settle(m: Inflight, err: Error | null): void {
    if (m.settled) return;
    m.settled = true;
    if (err) {
      m.error = err;
      const reason = (err as { code?: unknown }).code !== undefined ? String((err as { code?: unknown }).code) : err.message.slice(0, 60);
      this.d.metrics.publishErrors.inc({ reason });
      this.d.logger.error(
        { err: err.message, offsets: `${m.first}-${m.last}`, frames: m.frames.length, bytes: m.bytes },
        `mqtt uplink: publish of offsets ${m.first}-${m.last} (${m.bytes} bytes) failed: ${err.message}; cursor kept at ${this.acked}, will resend`,
      );
      this.failure ??= m;
      // the reader may be waiting for new frames: end its pass so that it rewinds now
      this.passCtl?.abort();
    } else {
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
    if (err) this.okStreak = 0;
    this.advance();
    this.notify();
  }

  /** Moves `acked` over the settled, successful head of the window (acknowledgements arrive in order). */
  private advance(): void {
    const w = this.window;
    let i = 0;
    while (i < w.length && w[i]!.settled && !w[i]!.error) {
      const m = w[i]!;
      this.acked = m.last;
      const lastFrame = m.frames[m.frames.length - 1];
      if (lastFrame) this.ackedLoggedAt = lastFrame.loggedAt;
      i++;
    }
    if (i > 0) w.splice(0, i);
  }

  /**
   * At stop, after the reader ended: waits (at most `timeoutMs`) for the messages still in flight to be
   * acknowledged, then stores the cursor, so that a clean restart does not send them again. What is not
   * acknowledged by then is sent again after the restart (at-least-once after the cursor).
   */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.window.some((m) => !m.settled) && this.client?.connected) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(), left);
      await this.wait(ctl.signal);
      clearTimeout(timer);
    }
    const inflight = this.window.filter((m) => !m.settled).length;
    if (inflight > 0) this.d.logger.warn({ inflight, cursor: this.acked }, "mqtt uplink: stopping with unacknowledged messages; they are sent again after the restart");
    // a commit started before the last acks would store an older offset: wait for it, then store ours
    await this.committing;
    await this.commitCursor();
  }

  /** Stores the acknowledged offset as the cursor (batched: every commitEveryMs, and at stop). */
  commitCursor(): Promise<void> {
    if (this.committing) return this.committing;
    const offset = this.acked;
    if (offset <= this.committed) return Promise.resolve();
    this.committing = this.d.log
      .commitCursor(this.d.config.cursor, offset)
      .then(() => {
        this.committed = Math.max(this.committed, offset);
      })
      .catch((err) => this.d.logger.warn({ err }, "mqtt uplink: storing the cursor failed (will retry)"))
      .finally(() => {
        this.committing = null;
      });
    return this.committing;
  }
}
