// The skeleton shared by the store-and-forward publishers (the MQTT uplink, the NATS bridge) over their
// acknowledged window (ack-window.ts): frames read from the log are cut into batches, each published as
// one message; a batch is closed when the subclass's add() says so (full, another tenant, an alarm) or
// when no frame came for maxDelayMs. The subclass says how a frame joins a batch (add), how a batch is
// published (send), what a pass does first once the open batch is dropped (recover), and what an
// answer does (succeeded, failed). This file keeps the batching loop and the window's public face.
import type { DataFrame, Logged } from "../schemas/frames.ts";
import { AckWindow, type WindowEntry, type WindowStatus } from "./ack-window.ts";
import type { ConsumerContext, ConsumerLogger, ConsumerStatus, LogConsumer } from "./consumer.ts";
import type { EventLog } from "./log.ts";
import type { BackoffSettings } from "./time.ts";

/** The batch being filled: frames of one tenant, and the offsets (of any kind) it covers. */
export interface OpenBatch {
  frames: Logged<DataFrame>[];
  first: number;
  last: number;
  tenant: string;
  bytes: number;
  /** performance.now() when it was opened */
  since: number;
}

/** The part of a publisher's config the window and the batching loop use. */
export interface WindowConfig {
  /** the consumer's (and its durable cursor's) name */
  cursor: string;
  commitEveryMs: number;
  /** messages in flight at the most */
  maxInflight: number;
  batch: {
    /** frames per message at the most */
    maxFrames: number;
    /** how long a batch stays open waiting for more frames (0: published at the end of every page) */
    maxDelayMs: number;
  };
}

export interface WindowPublisherOptions {
  config: WindowConfig;
  /** backoff of the consumer's retries after a read error */
  retry: BackoffSettings;
  logger: ConsumerLogger;
}

/** A bridge that publishes the log through a WindowPublisher, as the composition root sees it. */
export interface PublishingBridge<P, S extends WindowStatus> {
  name: string;
  start(): Promise<void>;
  /** drains the window (a bounded wait) and stores the acknowledged offset as the cursor */
  stop(): Promise<void>;
  /** for the readiness document: degraded while frames wait for an absent peer or the reader retries */
  status(): S;
  readonly publisher: P;
}

/** Frames per page read from the log: large enough for DuckDB reads to be efficient, small next to the window. */
const PAGE_FRAMES = 5000;

export abstract class WindowPublisher<M extends WindowEntry, B extends OpenBatch = OpenBatch> {
  protected readonly window: AckWindow<M>;
  protected batch: B | null = null;
  /** the frame that closed the open batch: it starts the next one once that is published */
  protected pendingFrame: Logged | null = null;

  constructor(
    log: EventLog,
    private readonly wo: WindowPublisherOptions,
  ) {
    const cfg = wo.config;
    this.window = new AckWindow<M>(log, {
      name: cfg.cursor,
      pageSize: PAGE_FRAMES,
      commitEveryMs: cfg.commitEveryMs,
      maxInflight: cfg.maxInflight,
      maxFrames: cfg.batch.maxFrames,
      retry: wo.retry,
      logger: wo.logger,
      handler: (page, ctx) => this.handle(page, ctx),
      idle: { afterMs: () => this.batchDueInMs(), run: (ctx) => this.flush(ctx) },
      beforePass: (_from, ctx) => {
        // the open batch is read again
        this.batch = null;
        this.pendingFrame = null;
        return this.recover(ctx);
      },
      succeeded: (m) => this.succeeded(m),
      failed: (m, err, first) => this.failed(m, err, first),
    });
  }

  /** Adds a frame to the open batch (or sets it aside as pendingFrame); true when the batch is published now. */
  protected abstract add(f: Logged): boolean;
  /** Publishes the batch (waiting for room in the window); throws Rewind when it is to be read again. */
  protected abstract send(b: B, signal: AbortSignal): Promise<void>;
  /** Before every read pass, after the open batch was dropped: settle the window, retry or drop it. */
  protected abstract recover(ctx: ConsumerContext): Promise<void>;
  protected abstract succeeded(m: M): void;
  protected abstract failed(m: M, err: Error, first: boolean): void;

  /** True while the open batch must not be published early (it is not complete yet). */
  protected holdsBatch(): boolean {
    return false;
  }

  get consumer(): LogConsumer {
    return this.window.consumer;
  }

  /** Every offset up to here is acknowledged by the peer (contiguously). */
  get acked(): number {
    return this.window.acked;
  }

  /** Messages published and not yet acknowledged (bounded by maxInflight). */
  get inflight(): number {
    return this.window.inflight;
  }

  status(): ConsumerStatus {
    return this.window.status();
  }

  /** Lag in frames and seconds, for the gauges: counted from the first unacknowledged frame. */
  lag(): { frames: number; seconds: number } {
    const s = this.window.status();
    return { frames: s.lagFrames, seconds: s.lagSeconds };
  }

  /** Wakes the handler (the connection came back). */
  notify(): void {
    this.window.notify();
  }

  /**
   * At stop: publishes nothing more, waits (at most `timeoutMs`, while `canSettle()`) for the messages in
   * flight to be acknowledged, then stops the consumer, which stores the acknowledged offset as the
   * cursor; a clean restart does not send them again. What is not acknowledged by then is sent again
   * after the restart (at-least-once after the cursor); `warning` says so in the log.
   */
  protected async drainAndStop(timeoutMs: number, canSettle: () => boolean, warning: string): Promise<void> {
    const inflight = await this.window.drain(timeoutMs, canSettle);
    if (inflight > 0) this.wo.logger.warn({ inflight, cursor: this.acked }, warning);
    await this.window.stop();
  }

  private async handle(page: Logged[], ctx: ConsumerContext): Promise<void> {
    for (let i = 0; i < page.length; i++) {
      if (this.add(page[i]!)) await this.flush(ctx);
    }
    if (this.wo.config.batch.maxDelayMs === 0 && this.batch && !this.holdsBatch()) await this.flush(ctx);
  }

  /** ms until the open batch is due (the consumer flushes it when no frame came by then), null: none open. */
  private batchDueInMs(): number | null {
    const b = this.batch;
    if (!b || this.holdsBatch()) return null;
    return Math.max(0, b.since + this.wo.config.batch.maxDelayMs - performance.now());
  }

  /** Publishes the open batch, then starts the next one with the frame set aside. */
  private async flush(ctx: ConsumerContext): Promise<void> {
    const b = this.batch;
    this.batch = null;
    if (b) await this.send(b, ctx.signal);
    const p = this.pendingFrame;
    if (p) {
      this.pendingFrame = null;
      if (this.add(p)) await this.flush(ctx);
    }
  }
}
