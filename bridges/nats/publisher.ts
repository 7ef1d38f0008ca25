// Store and forward into JetStream: a durable log consumer (storage/consumer.ts) with manual progress,
// modelled on bridges/mqtt-north/publisher.ts. Frames are cut into messages (a batch of one tenant's
// frames, at most batch.maxFrames / maxBytes, or sooner when the log is idle for batch.maxDelayMs); each
// message covers the offsets first..last and carries Nats-Msg-Id = gateway:first-last. At most
// maxInflight messages await JetStream's ack; the consumer's position moves only over the contiguous
// acknowledged prefix, and is stored as the cursor. While NATS is away nothing more is read (the log is
// the buffer, memory stays flat). The window and the batching loop are storage/ack-window.ts and
// storage/window-publisher.ts, shared with MQTT.
//
// Exactly once, the two halves:
// - in this process, a failed publish (timeout, "no responders" / "jetstream is not enabled" during a
//   leader election, a dropped connection) is retried with the SAME message (same offsets, same id) until
//   JetStream acks it; if the first attempt was stored after all, the stream's duplicate window drops the
//   retry. Boundaries never change for a message that may have been stored.
// - after a restart (the cursor is stored every commitEveryMs, so it may be behind what JetStream holds,
//   and the old process's cuts are unknown), the bridge reads the headers of this gateway's messages
//   past the cursor back from the stream (recorded.ts) and cuts those offsets again exactly as they were
//   (same ids: JetStream answers duplicate); only offsets no stored message covers are cut anew.
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { Catalog } from "../../schemas/catalog.ts";
import type { DataFrame, Logged } from "../../schemas/frames.ts";
import { Rewind, type ConsumerContext } from "../../storage/consumer.ts";
import { WindowPublisher, type OpenBatch } from "../../storage/window-publisher.ts";
import type { EventLog } from "../../storage/log.ts";
import { backoffDelay, delay } from "../../storage/time.ts";
import { PayloadEncoder } from "../../schemas/wire.ts";
import type { NatsConfig } from "./config.ts";
import type { NatsMetrics } from "./metrics.ts";
import { recordedAfter, type OffsetRange } from "./recorded.ts";
import { batchSubject, frameSubject, messageId } from "./subjects.ts";

/** A message handed to JetStream and not yet acknowledged (or a run of offsets with nothing to publish). */
interface Inflight {
  first: number;
  last: number;
  frames: number;
  subject: string;
  payload: Uint8Array | null;
  settled: boolean;
  error: Error | null;
}

export interface NatsPublisherDeps {
  log: EventLog;
  catalog: Catalog;
  logger: Logger;
  metrics: NatsMetrics;
  gatewayId: string;
  config: NatsConfig;
}

/** The JetStream side the publisher needs (a connection may be replaced; the getter gives the current one). */
export interface JetStreamLink {
  nc(): NatsConnection | null;
  js(): JetStreamClient | null;
}

export class NatsPublisher extends WindowPublisher<Inflight> {
  /** messages of a previous process past the cursor, still to be cut again exactly as they were */
  private recorded: OffsetRange[] = [];
  private link: JetStreamLink | null = null;
  private readonly encoder: PayloadEncoder;

  constructor(private readonly d: NatsPublisherDeps) {
    const cfg = d.config;
    super(d.log, { config: cfg, retry: { initialMs: cfg.retryMinMs, maxMs: cfg.retryMaxMs }, logger: d.logger });
    this.encoder = new PayloadEncoder(cfg.payload);
  }

  start(link: JetStreamLink): void {
    this.link = link;
    this.window.start();
  }

  /** Publishes nothing more, waits (at most timeoutMs) for the acks in flight, stores the cursor. */
  stop(timeoutMs: number): Promise<void> {
    return this.drainAndStop(timeoutMs, () => true, "nats bridge: stopping with unacknowledged messages; they are published again after the restart");
  }

  /** A recorded message is never cut short (its frames are all in the log: the next page has the rest). */
  protected override holdsBatch(): boolean {
    return this.recorded.length > 0;
  }

  /**
   * Before every read pass: the open batch is dropped (read again), the window settles, and every message
   * of it that failed is published again, in order, with its own id, until JetStream acks it. Then the
   * pass starts again after the window (Rewind) and nothing of the window is cut differently.
   */
  protected async recover(ctx: ConsumerContext): Promise<void> {
    this.recorded = [];
    const from = this.acked;
    if (!(await this.window.settled(ctx.signal))) return;
    for (const m of this.window.messages) {
      if (m.error) await this.republish(m, ctx.signal);
      if (ctx.signal.aborted) return;
    }
    this.window.takeFailure();
    this.window.clear();
    if (this.acked !== from) throw new Rewind();
    // every pass asks the stream what it holds past the acknowledged offset (one look-up when nothing)
    await this.resumeAfterStream(ctx);
  }

  /** After a restart: the messages a previous process stored past the cursor are cut again as they were. */
  private async resumeAfterStream(ctx: ConsumerContext): Promise<void> {
    const nc = await this.connected(ctx.signal);
    if (!nc) return;
    const from = this.acked;
    const since = await this.loggedAtMs(from + 1);
    // throws while the stream is unreachable: the consumer counts it and retries with backoff
    this.recorded = await recordedAfter(nc, this.d.config, this.d.gatewayId, from, since);
    const n = this.recorded.length;
    if (n) this.d.logger.info({ cursor: from, messages: n, upTo: this.recorded[n - 1]!.last }, "nats bridge: the stream already holds messages past the cursor; they are published again with their own ids");
    if (since !== null || n === 0) return;
    // the log no longer has the frame after the cursor: only the stream's last message is known, skip to it
    const upTo = this.recorded[0]!.last;
    this.recorded = [];
    ctx.handled(upTo);
    throw new Rewind();
  }

  /** Commit time (ms) of the frame at `offset`, null when the log has no such frame (yet, or any more). */
  private async loggedAtMs(offset: number): Promise<number | null> {
    const mem = this.d.log.loggedAtOf(offset);
    if (mem !== undefined) return mem / 1000;
    for await (const f of this.d.log.read({ from: offset, to: offset })) return f.loggedAt / 1000;
    return null;
  }

  private async connected(signal: AbortSignal): Promise<NatsConnection | null> {
    for (let attempt = 0; !signal.aborted; attempt++) {
      const nc = this.link?.nc();
      if (nc) return nc;
      await delay(backoffDelay(attempt, { initialMs: this.d.config.retryMinMs, maxMs: this.d.config.retryMaxMs }), signal);
    }
    return null;
  }

  /** Publishes a failed message again with the same id until it is acknowledged (or the stop). */
  private async republish(m: Inflight, signal: AbortSignal): Promise<void> {
    for (let attempt = 0; !signal.aborted; attempt++) {
      // the first retry goes at once (the window may hold many messages that failed together), then backoff
      if (attempt > 0) await delay(backoffDelay(attempt, { initialMs: this.d.config.retryMinMs, maxMs: this.d.config.retryMaxMs }), signal);
      const js = this.link?.js();
      if (!js || signal.aborted) continue;
      try {
        await js.publish(m.subject, m.payload!, this.publishOptions(m));
        this.window.retried(m);
        return;
      } catch (e) {
        this.countError(e as Error);
      }
    }
  }

  /** Adds a frame to the open batch; true when the batch must be published now. */
  protected add(f: Logged): boolean {
    const cut = this.recorded[0];
    if (cut && f.offset >= cut.first) return this.addRecorded(f, cut);
    let b = this.batch;
    if (f.kind !== "data") {
      // nothing to publish, but the cursor moves over it together with the batch that holds it
      if (!b) b = this.batch = this.open(f.offset, "");
      b.last = f.offset;
      return false;
    }
    const tenant = this.d.catalog.get(f.tag)?.tenant ?? "default";
    if (b && b.frames.length > 0 && b.tenant !== tenant) {
      // a batch never mixes tenants (their subjects, and the server's permissions, differ)
      this.pendingFrame = f;
      return true;
    }
    if (!b) b = this.batch = this.open(f.offset, tenant);
    b.tenant = tenant;
    this.push(b, f as Logged<DataFrame>);
    return b.frames.length >= this.d.config.batch.maxFrames || b.bytes >= this.d.config.batch.maxBytes;
  }

  /** A frame inside a message a previous process stored: the batch is exactly that message's offsets. */
  private addRecorded(f: Logged, cut: OffsetRange): boolean {
    let b = this.batch;
    if (b && b.first < cut.first) {
      // what precedes the recorded message goes out first, as a message of its own
      this.pendingFrame = f;
      return true;
    }
    if (!b) b = this.batch = this.open(f.offset, "");
    if (f.kind === "data") {
      if (b.frames.length === 0) b.tenant = this.d.catalog.get(f.tag)?.tenant ?? "default";
      this.push(b, f as Logged<DataFrame>);
    }
    b.last = f.offset;
    if (f.offset < cut.last) return false;
    this.recorded.shift();
    return true;
  }

  private open(offset: number, tenant: string): OpenBatch {
    return { frames: [], first: offset, last: offset, tenant, bytes: 0, since: performance.now() };
  }

  private push(b: OpenBatch, f: Logged<DataFrame>): void {
    b.frames.push(f);
    b.last = f.offset;
    b.bytes += f.tag.length + (typeof f.value === "string" ? f.value.length : 24) + 48;
  }

  protected async send(b: OpenBatch, signal: AbortSignal): Promise<void> {
    const m: Inflight = { first: b.first, last: b.last, frames: b.frames.length, subject: "", payload: null, settled: false, error: null };
    if (b.frames.length === 0) return this.window.skip(m);
    // polled every 100 ms: the connection coming back is not an event the publisher hears
    if (!(await this.window.waitForRoom(signal, b.last, () => (this.link?.js() ? this.d.config.maxInflight : 0), 100))) throw new Rewind();
    const cfg = this.d.config;
    const single = cfg.batch.maxFrames === 1;
    m.subject = single ? frameSubject(cfg.subjectPrefix, b.tenant, this.d.gatewayId, b.frames[0]!.tag) : batchSubject(cfg.subjectPrefix, b.tenant, this.d.gatewayId);
    m.payload = single ? this.encoder.frame(b.frames[0]!) : this.encoder.batch(this.d.gatewayId, b.frames, b.first, b.last);
    this.window.push(m);
    // js() checked just above, in the same tick
    this.link!.js()!.publish(m.subject, m.payload, this.publishOptions(m)).then(
      () => this.window.settle(m, null),
      (e: Error) => this.window.settle(m, e),
    );
  }

  private publishOptions(m: Inflight) {
    const h = natsHeaders();
    h.set("Edge-Gateway", this.d.gatewayId);
    h.set("Edge-First", String(m.first));
    h.set("Edge-Last", String(m.last));
    h.set("Content-Type", this.encoder.contentType);
    return { msgID: messageId(this.d.gatewayId, m.first, m.last), timeout: this.d.config.ackTimeoutMs, headers: h };
  }

  protected failed(m: Inflight, err: Error, first: boolean): void {
    this.countError(err);
    this.d.logger.warn({ err: err.message, offsets: `${m.first}-${m.last}` }, `nats bridge: publish of offsets ${m.first}-${m.last} failed: ${err.message}; retried with the same id, cursor kept at ${this.acked}`);
    // the handler may be waiting for room or for new frames: rewind now (once; the next pass retries them all)
    if (first) this.consumer.rewind();
  }

  private countError(err: Error): void {
    this.d.metrics.publishErrors.inc({ reason: (err.name || err.message).slice(0, 60) });
  }

  protected succeeded(m: Inflight): void {
    const mt = this.d.metrics;
    mt.messages.inc();
    mt.frames.inc(m.frames);
    mt.bytes.inc(m.payload?.length ?? 0);
  }
}
