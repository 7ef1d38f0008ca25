// The acknowledged window of a store-and-forward publisher (the MQTT uplink, the NATS bridge): a durable
// log consumer (consumer.ts) with manual progress, and the messages handed to the peer and not yet
// acknowledged, each covering the offsets first..last. The consumer's position moves only over the
// contiguous prefix of acknowledged messages (acks may come out of order; a failed message stops the
// prefix until it is retried or read again), and the consumer stores that position as the cursor. At
// most a window of messages waits for acks: while the peer is away the publisher waits for room and
// nothing more is read from the log (the log is the buffer, memory stays flat).
// A crash (SIGKILL) re-sends every frame published past the stored cursor; that is bounded by a window
// and a quarter by construction, whatever the disk's latency: see resendBound.
// What a message is, how it is published and what a failure does (a rewind, a retry with the same id)
// stay with the publisher; this file keeps the bookkeeping they share and the status they report.
import type { ConsumerContext, ConsumerLogger, ConsumerStatus, PageHandler } from "./consumer.ts";
import { LogConsumer } from "./consumer.ts";
import type { EventLog } from "./log.ts";
import { deadline, type BackoffSettings } from "./time.ts";

/** A message in the window: the offsets it covers, and whether (and how) the peer answered. */
export interface WindowEntry {
  first: number;
  last: number;
  settled: boolean;
  error: Error | null;
}

export interface AckWindowOptions<M extends WindowEntry> {
  /** the consumer's (and its durable cursor's) name */
  name: string;
  /** frames per page read from the log */
  pageSize: number;
  commitEveryMs: number;
  /** messages in flight at the most, and frames per message (together: how often the cursor is stored) */
  maxInflight: number;
  maxFrames: number;
  retry: BackoffSettings;
  /** cuts the page into messages (push, skip); ctx is also the window's from now on */
  handler: PageHandler;
  /** a batch due while the log is idle */
  idle: { afterMs(): number | null; run(ctx: ConsumerContext): Promise<void> | void };
  /** before every read pass: settle the window (settled()), retry or drop it (clear()), start after the acked prefix */
  beforePass: (from: number, ctx: ConsumerContext) => Promise<void> | void;
  /** the peer acknowledged `m` (metrics) */
  succeeded(m: M): void;
  /** the peer refused `m` or its publish failed (log, count, rewind); `first`: the first failure since takeFailure() */
  failed(m: M, err: Error, first: boolean): void;
  logger?: ConsumerLogger;
}

/** How long a publish waits for a cursor store before it looks again (at a stop, a failure, the room). */
const STORE_CHECK_MS = 1000;

export class AckWindow<M extends WindowEntry> {
  readonly consumer: LogConsumer;
  private entries: M[] = [];
  private wakeUp: (() => void) | null = null;
  /** the first message that failed since takeFailure() */
  private failure: M | null = null;
  /** set by drain(): no room for anything more, the messages in flight settle */
  private draining = false;
  /**
   * Frames published past the stored cursor at the most (what a SIGKILL re-sends): the in-flight window
   * and a quarter. The cursor is stored every eighth of a window, so a store has another eighth to
   * finish before a publish waits for it (measured with mosquitto on loopback: stores took 15-230 ms
   * while the uplink drained 70-110k frames/s, so the unstored part grew with the store's latency and a
   * crash re-sent up to 39,500 frames with a 32,000-frame window; it was bounded only in the typical case).
   */
  private readonly resendBound: number;
  /**
   * The context of the consumer's latest pass: ctx.handled() reports acknowledged offsets. Acks of a
   * pass that ended arrive during the next one; handled() moves the consumer's position whichever
   * pass's context it comes from.
   */
  private ctx: ConsumerContext | null = null;

  constructor(
    log: EventLog,
    private readonly o: AckWindowOptions<M>,
  ) {
    const storeEvery = Math.max(o.maxFrames, Math.floor((o.maxInflight * o.maxFrames) / 8));
    this.resendBound = o.maxInflight * o.maxFrames + 2 * storeEvery;
    this.consumer = new LogConsumer(log, {
      name: o.name,
      from: "cursor",
      progress: "manual",
      pageSize: o.pageSize,
      commitEveryMs: o.commitEveryMs,
      commitEveryFrames: storeEvery,
      retry: o.retry,
      handler: (page, ctx) => {
        this.ctx = ctx;
        return o.handler(page, ctx);
      },
      idle: {
        afterMs: () => o.idle.afterMs(),
        run: (ctx) => {
          this.ctx = ctx;
          return o.idle.run(ctx);
        },
      },
      beforePass: (from, ctx) => {
        this.ctx = ctx;
        return o.beforePass(from, ctx);
      },
      ...(o.logger ? { logger: o.logger } : {}),
    });
  }

  /** Every offset up to here is acknowledged (contiguously). */
  get acked(): number {
    return this.consumer.handledUpTo;
  }

  /** Messages published and not yet answered. */
  get inflight(): number {
    let n = 0;
    for (const m of this.entries) if (!m.settled) n++;
    return n;
  }

  /** Messages in the window, answered or not (a failed one holds its place until the next pass). */
  get size(): number {
    return this.entries.length;
  }

  /** The window's messages, oldest first. */
  get messages(): readonly M[] {
    return this.entries;
  }

  /** The oldest message not answered yet. */
  oldestInflight(): M | undefined {
    return this.entries.find((m) => !m.settled);
  }

  status(): ConsumerStatus {
    return this.consumer.status();
  }

  start(): void {
    this.consumer.start();
  }

  /** Wakes whoever waits (a message settled, the connection came back, a stop). */
  notify(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  /** Resolves at the next notify() or when `signal` aborts. */
  wait(signal: AbortSignal): Promise<void> {
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

  /** Waits for a notify(), or `ms` at the most (for what the publisher is not told of, e.g. a reconnection). */
  private async waitAtMost(signal: AbortSignal, ms: number): Promise<void> {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const t = setTimeout(() => ctl.abort(), ms);
    await this.wait(ctl.signal);
    clearTimeout(t);
    signal.removeEventListener("abort", onAbort);
  }

  /**
   * Waits until the window has room for one more message, ending at offset `last` (`room()`: how many it
   * may hold now, 0 while the peer is away), and until the cursor is stored close enough behind `last`
   * (resendBound). False when a message failed meanwhile or `signal` aborted: the message is read again.
   */
  async waitForRoom(signal: AbortSignal, last: number, room: () => number, pollMs?: number): Promise<boolean> {
    while (!signal.aborted && !this.failure) {
      if (this.draining || this.entries.length >= room()) {
        if (pollMs === undefined) await this.wait(signal);
        else await this.waitAtMost(signal, pollMs);
      } else if (this.pastResendBound(last)) await this.waitForStore(signal);
      else break;
    }
    return !this.failure && !signal.aborted;
  }

  /**
   * True when publishing up to `last` would put more than resendBound frames past the stored cursor.
   * Never while nothing waits to be stored (nothing in flight, the acknowledged offset stored): a message
   * wider than the bound by itself (a few data frames among many events) still goes out.
   */
  private pastResendBound(last: number): boolean {
    const stored = this.consumer.storedUpTo;
    return last - stored > this.resendBound && (this.inflight > 0 || stored < this.acked);
  }

  /**
   * Stores the acknowledged offset now. When that moved nothing (all of it was stored, or the store
   * failed), waits for an ack, or commitEveryMs before the store is tried again.
   */
  private async waitForStore(signal: AbortSignal): Promise<void> {
    const before = this.consumer.storedUpTo;
    // a stop does not wait for a store stuck on the disk; a store still under way is waited for again
    if ((await deadline(this.consumer.storeNow(), STORE_CHECK_MS, signal)) !== undefined) return;
    if (this.consumer.storedUpTo === before) await this.waitAtMost(signal, this.o.commitEveryMs);
  }

  /** Adds a published message, not answered yet. */
  push(m: M): void {
    this.entries.push(m);
  }

  /** Adds a run of offsets with nothing to publish: handled as soon as what precedes it is acknowledged. */
  skip(m: M): void {
    m.settled = true;
    this.entries.push(m);
    this.advance();
  }

  /** The peer's answer to `m` (null: acknowledged); a second answer is ignored. */
  settle(m: M, err: Error | null): void {
    if (m.settled) return;
    m.settled = true;
    if (err) {
      m.error = err;
      const first = this.failure === null;
      this.failure ??= m;
      this.o.failed(m, err, first);
    } else this.o.succeeded(m);
    this.advance();
    this.notify();
  }

  /** A failed message published again and acknowledged (the publisher retried it with the same id). */
  retried(m: M): void {
    m.error = null;
    this.o.succeeded(m);
  }

  /** Waits until every message in the window is answered; false when `signal` aborted first. */
  async settled(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted && this.entries.some((m) => !m.settled)) await this.wait(signal);
    return !signal.aborted;
  }

  /** Reports the acknowledged prefix as handled and empties the window (what failed is read again). */
  clear(): void {
    this.advance();
    this.entries = [];
  }

  /** The first message that failed since the last call, and forgets it. */
  takeFailure(): M | null {
    const f = this.failure;
    this.failure = null;
    return f;
  }

  /**
   * At stop: no room for anything more; waits (at most `timeoutMs`, and while `canSettle()`) for the
   * messages in flight to be answered. Returns how many are still in flight (sent again after a restart).
   */
  async drain(timeoutMs: number, canSettle: () => boolean = () => true): Promise<number> {
    this.draining = true;
    this.notify();
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    while (this.inflight > 0 && canSettle() && !ctl.signal.aborted) await this.wait(ctl.signal);
    clearTimeout(timer);
    return this.inflight;
  }

  /** Stops the consumer, which stores the acknowledged offset as the cursor. */
  stop(): Promise<void> {
    return this.consumer.stop();
  }

  /** Reports the settled, successful head of the window as handled (the cursor never passes a failure). */
  private advance(): void {
    const w = this.entries;
    let i = 0;
    while (i < w.length && w[i]!.settled && !w[i]!.error) i++;
    if (i === 0) return;
    this.ctx?.handled(w[i - 1]!.last);
    w.splice(0, i);
  }
}

/**
 * What a publisher's readiness document shows of its window (server/context.ts ComponentStatus details;
 * a type, not an interface, so that it fits ComponentStatus's index signature).
 */
export type WindowStatus = {
  state: "ok" | "degraded" | "down";
  reasons: string[];
  connected: boolean;
  /** ISO time the connection came or went */
  since: string;
  lagFrames: number;
  lagSeconds: number;
  inflight: number;
  cursor: number;
  consumer: ConsumerStatus["state"];
  errors: number;
  lastError: string | null;
};

export interface WindowFacts {
  connected: boolean;
  /** ms since the epoch */
  connectionSince: number;
  consumer: ConsumerStatus;
  inflight: number;
  /** whom the frames wait for, e.g. `broker mqtt://host:1883` */
  peer: string;
  /** the publisher's own reasons, told after the frames waiting */
  reasons: (string | null | undefined | false)[];
  /** what failed while the consumer retries, e.g. `reading the log` */
  retrying: string;
}

/** Degraded while frames wait for an absent peer, for the publisher's own reasons, or while the reader retries. */
export function windowStatus(f: WindowFacts): WindowStatus {
  const c = f.consumer;
  const since = new Date(f.connectionSince).toISOString();
  const reasons: string[] = [];
  if (!f.connected && c.lagFrames > 0) reasons.push(`${f.peer} not connected since ${since}: ${c.lagFrames} frames wait in the log (oldest ${c.lagSeconds.toFixed(1)} s)`);
  for (const r of f.reasons) if (r) reasons.push(r);
  if (c.state === "retrying") reasons.push(`${f.retrying} failed, retrying: ${c.lastError ?? "unknown error"}`);
  return {
    state: reasons.length ? "degraded" : "ok",
    reasons,
    connected: f.connected,
    since,
    lagFrames: c.lagFrames,
    lagSeconds: c.lagSeconds,
    inflight: f.inflight,
    cursor: c.position,
    consumer: c.state,
    errors: c.errors,
    lastError: c.lastError,
  };
}
