// The one way to read the log from a position: a supervised consumer. It replays from its start, then
// follows the live tail, page by page, and hands each page to its handler. A read error or a handler
// error is logged, counted and retried with backoff from the last handled offset: a consumer never stops
// silently. It reports its state and lag (status()), and a durable consumer stores its position as a
// cursor. Modelled on nats.js consumers: an object with start/stop, `closed`, and a status.
// Contract: storage/README.md, "Consumers".
import type { Frame, FrameKind, Logged } from "../schemas/frames.ts";
import type { CommitInfo, EventLog } from "./log.ts";
import { backoffDelay, deadline, delay, TIMED_OUT, type BackoffSettings } from "./time.ts";

export type ConsumerState = "starting" | "running" | "retrying" | "stopped";

export interface ConsumerStatus {
  name: string;
  state: ConsumerState;
  /** true when the position is stored as the cursor `name` */
  durable: boolean;
  /** last offset fully handled */
  position: number;
  head: number;
  /** committed frames not handled yet */
  lagFrames: number;
  /** age of the oldest frame not handled yet (0 when caught up) */
  lagSeconds: number;
  /** read or handler errors since start (each one retried) */
  errors: number;
  lastError: string | null;
  /** ISO time of the last error */
  lastErrorAt: string | null;
  /** ms since the epoch of the last state change */
  since: number;
}

/** A minimal logger (pino's shape), so that storage does not depend on a logging library. */
export interface ConsumerLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What a handler gets besides its page. */
export interface ConsumerContext {
  /** aborted when the consumer stops or rewinds: a handler waiting on something should give up */
  readonly signal: AbortSignal;
  /** progress "manual": every frame up to `offset` is handled (e.g. acknowledged by a broker) */
  handled(offset: number): void;
  /**
   * Appends the frames the handling produced with the cursor at `offset` in the same transaction
   * (durable consumers: effects and progress commit together, exactly once), then records progress.
   */
  commit(frames: Frame[], offset: number, opts?: { urgent?: boolean }): Promise<CommitInfo>;
}

export type PageHandler = (page: Logged[], ctx: ConsumerContext) => Promise<void> | void;

export interface ConsumerOptions {
  /** unique per log: the metrics label, and the cursor's name when durable */
  name: string;
  handler: PageHandler;
  kinds?: readonly FrameKind[];
  /**
   * Where reading starts: "cursor" (durable: the stored cursor + 1, and the position is stored as that
   * cursor), "head" (frames committed after start() only), or an offset (the first one wanted).
   */
  from?: "cursor" | "head" | number;
  /** "page" (default): a page is handled when the handler returns; "manual": the handler calls ctx.handled() */
  progress?: "page" | "manual";
  pageSize?: number;
  /** durable: store the position at least this often while it moves (default 1000 ms) ... */
  commitEveryMs?: number;
  /** ... and as soon as it moved this many offsets past the stored one (default 10000) */
  commitEveryFrames?: number;
  /** retry delays after an error (default 200 ms doubling to 10 s) */
  retry?: BackoffSettings;
  /**
   * While the consumer waits for new frames: after `afterMs()` ms (null: no limit) `run` is called,
   * e.g. to flush a batch that waits for its maximum delay.
   */
  idle?: { afterMs(): number | null; run(ctx: ConsumerContext): Promise<void> | void };
  /** before each read pass (the first, and after every error or rewind), with the offset it starts from */
  beforePass?: (from: number, ctx: ConsumerContext) => Promise<void> | void;
  logger?: ConsumerLogger;
}

/** Thrown by a handler (or caused by rewind()) to read again from the last handled offset: not an error. */
export class Rewind extends Error {
  override name = "Rewind";
}

export const DEFAULT_CONSUMER_RETRY: BackoffSettings = { initialMs: 200, maxMs: 10_000 };

export class LogConsumer {
  readonly name: string;
  readonly durable: boolean;
  private position = 0;
  private stored = 0;
  /**
   * the highest offset a ctx.commit is appending with: a periodic store of a lower position queued behind
   * it (same or later transaction) would move the cursor back over effects already committed, and a
   * restart would then repeat them (a rule's command appended twice)
   */
  private committingUpTo = 0;
  private storing: Promise<void> | null = null;
  private lastStoreAt = 0;
  private state: ConsumerState = "starting";
  private since = Date.now();
  private errors = 0;
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;
  private readonly stopper = new AbortController();
  private pass: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private lagCache: { offset: number; loggedAt: number | null; pending: boolean } = { offset: 0, loggedAt: null, pending: false };
  private progressAt = performance.now();

  constructor(
    private readonly log: EventLog,
    private readonly opts: ConsumerOptions,
  ) {
    this.name = opts.name;
    this.durable = (opts.from ?? "cursor") === "cursor";
  }

  /** Resolves when the consumer has stopped (after stop(), or when the log closed). Never rejects. */
  get closed(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /** Last offset handled. */
  get handledUpTo(): number {
    return this.position;
  }

  /** Last offset stored as the cursor (a durable consumer; a crash restarts after it). */
  get storedUpTo(): number {
    return this.stored;
  }

  /**
   * Stores the position as the cursor now, without waiting for commitEveryMs or commitEveryFrames (a
   * durable consumer); resolves when that store ended, stored or failed (a store already under way is
   * waited for instead: it may hold an older position).
   */
  storeNow(): Promise<void> {
    return this.durable ? this.store() : Promise.resolve();
  }

  /** Starts reading; the start position is fixed here (head and cursor read in this synchronous step). */
  start(): this {
    if (this.loop) return this;
    const from = this.opts.from ?? "cursor";
    this.position = from === "cursor" ? this.log.cursor(this.name) : from === "head" ? this.log.head : Math.max(0, from - 1);
    this.stored = this.position;
    this.log.registerConsumer(this);
    this.loop = this.run().finally(() => this.log.unregisterConsumer(this));
    return this;
  }

  /** Stops reading (the page being handled is aborted through ctx.signal) and stores the position. */
  async stop(): Promise<void> {
    this.stopper.abort();
    await this.loop;
  }

  /** Reads again from the last handled offset (e.g. a publish failed after its page was handed over). */
  rewind(): void {
    this.pass?.abort(new Rewind());
  }

  status(): ConsumerStatus {
    const head = this.log.head;
    const lagFrames = Math.max(0, head - this.position);
    return {
      name: this.name,
      state: this.state,
      durable: this.durable,
      position: this.position,
      head,
      lagFrames,
      lagSeconds: lagFrames === 0 ? 0 : this.lagSeconds(),
      errors: this.errors,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt === null ? null : new Date(this.lastErrorAt).toISOString(),
      since: this.since,
    };
  }

  /** Age of the oldest unhandled frame: from memory when recent, else read once from the table per position. */
  private lagSeconds(): number {
    const next = this.position + 1;
    let loggedAt = this.log.loggedAtOf(next);
    if (loggedAt === undefined) {
      const c = this.lagCache;
      if (c.offset !== next && !c.pending) {
        this.lagCache = { offset: next, loggedAt: null, pending: true };
        void this.lookUpLoggedAt(next);
      }
      if (this.lagCache.offset === next && this.lagCache.loggedAt !== null) loggedAt = this.lagCache.loggedAt;
    }
    // unknown (archived, or still being looked up): at least as long as no progress was made
    if (loggedAt === undefined) return (performance.now() - this.progressAt) / 1000;
    return Math.max(0, Date.now() / 1000 - loggedAt / 1e6);
  }

  private async lookUpLoggedAt(offset: number): Promise<void> {
    try {
      for await (const page of this.log.pages({ from: offset, to: offset, pageSize: 1 })) {
        if (this.lagCache.offset === offset) this.lagCache.loggedAt = page[0]?.loggedAt ?? null;
      }
    } catch {
      // the fallback (time since progress) stands
    } finally {
      if (this.lagCache.offset === offset) this.lagCache.pending = false;
    }
  }

  private setState(s: ConsumerState): void {
    if (this.state === s) return;
    this.state = s;
    this.since = Date.now();
  }

  private advance(offset: number): void {
    if (offset <= this.position) return;
    this.position = offset;
    this.progressAt = performance.now();
    if (this.durable) this.maybeStore();
  }

  private maybeStore(): void {
    const every = this.opts.commitEveryFrames ?? 10_000;
    const ms = this.opts.commitEveryMs ?? 1000;
    if (this.position - this.stored >= every || performance.now() - this.lastStoreAt >= ms) void this.store();
  }

  /** Stores the position as the cursor (one at a time; a failure is retried at the next progress or stop). */
  private store(): Promise<void> {
    if (this.storing) return this.storing;
    const offset = this.position;
    if (offset <= this.stored || offset < this.committingUpTo || this.log.isClosed) return Promise.resolve();
    this.lastStoreAt = performance.now();
    this.storing = this.log
      .commitCursor(this.name, offset)
      .then(() => {
        this.stored = Math.max(this.stored, offset);
      })
      .catch((err) => this.opts.logger?.warn({ err, consumer: this.name }, `log consumer ${this.name}: storing its cursor failed (retried)`))
      .finally(() => {
        this.storing = null;
      });
    return this.storing;
  }

  private context(signal: AbortSignal): ConsumerContext {
    return {
      signal,
      handled: (offset) => this.advance(offset),
      commit: async (frames, offset, o) => {
        if (this.durable) this.committingUpTo = Math.max(this.committingUpTo, offset);
        const info = await this.log.append(frames, { ...(this.durable ? { cursor: { name: this.name, offset } } : {}), ...(o?.urgent ? { urgent: true } : {}) });
        if (this.durable) this.stored = Math.max(this.stored, offset);
        this.advance(offset);
        return info;
      },
    };
  }

  private async run(): Promise<void> {
    const stop = this.stopper.signal;
    let attempt = 0;
    // a durable consumer stores its position periodically even when no page arrives (manual progress)
    const timer = this.durable ? setInterval(() => void this.store(), this.opts.commitEveryMs ?? 1000) : null;
    try {
      while (!stop.aborted && !this.log.isClosed) {
        const pass = new AbortController();
        const onStop = () => pass.abort();
        stop.addEventListener("abort", onStop, { once: true });
        this.pass = pass;
        try {
          const ok = await this.readPass(pass.signal, () => {
            attempt = 0;
            this.setState("running");
          });
          if (ok) break; // the log closed
        } catch (e) {
          if (stop.aborted) break;
          if (e instanceof Rewind || pass.signal.reason instanceof Rewind) continue;
          attempt++;
          this.errors++;
          this.lastError = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
          this.lastErrorAt = Date.now();
          this.setState("retrying");
          const waitMs = backoffDelay(attempt, this.opts.retry ?? DEFAULT_CONSUMER_RETRY);
          // one line per failure: where the gateway listens to the log's consumerError, it logs it
          if (!this.log.tellConsumerError(this.name, e)) {
            this.opts.logger?.error({ err: e, consumer: this.name, position: this.position, retryInMs: waitMs }, `log consumer ${this.name} failed; retrying from offset ${this.position + 1}`);
          }
          await delay(waitMs, stop);
        } finally {
          stop.removeEventListener("abort", onStop);
          this.pass = null;
        }
      }
    } finally {
      if (timer) clearInterval(timer);
      if (this.durable) {
        await this.storing;
        await this.store();
      }
      this.setState("stopped");
    }
  }

  /** One pass from position + 1; true when the log closed, throws on an error or a rewind. */
  private async readPass(signal: AbortSignal, healthy: () => void): Promise<boolean> {
    const { log, opts } = this;
    const ctx = this.context(signal);
    let next = this.position + 1;
    await opts.beforePass?.(next, ctx);
    healthy();
    const byPage = (opts.progress ?? "page") === "page";
    while (!signal.aborted) {
      if (log.isClosed) return true;
      const to = log.head;
      if (next <= to) {
        for await (const page of log.pages({ from: next, to, pageSize: opts.pageSize ?? 5000, signal, ...(opts.kinds ? { kinds: opts.kinds } : {}) })) {
          await opts.handler(page, ctx);
          if (signal.aborted) break;
          const last = page[page.length - 1]!.offset;
          if (byPage) this.advance(last);
          next = last + 1;
          healthy();
        }
        if (signal.aborted) break;
        // frames of other kinds up to `to` are handled too (there was nothing in them for us)
        if (byPage) this.advance(to);
        next = to + 1;
        continue;
      }
      const idleMs = opts.idle?.afterMs() ?? null;
      if (idleMs === null) {
        await log.waitForOffset(next, signal);
        continue;
      }
      // the waiter is withdrawn when the idle time passes, so that repeated idles leave nothing behind
      const waitCtl = new AbortController();
      const onAbort = () => waitCtl.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        if ((await deadline(log.waitForOffset(next, waitCtl.signal), idleMs)) === TIMED_OUT && !signal.aborted) await opts.idle!.run(ctx);
      } finally {
        waitCtl.abort();
        signal.removeEventListener("abort", onAbort);
      }
    }
    if (signal.reason instanceof Rewind) throw signal.reason;
    return false;
  }
}

/** Creates and starts a consumer. */
export function consume(log: EventLog, opts: ConsumerOptions): LogConsumer {
  return new LogConsumer(log, opts).start();
}
