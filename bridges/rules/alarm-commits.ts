// How the alarm engine's transitions reach the log: appended with the engine's cursor in one
// transaction, several pages' transitions sharing a commit while the engine catches up, progress
// reported in commit order while reading goes on, and the cursor stored now and then when nothing
// changes. A failed commit is kept as `failure`: the engine's next step throws it, the consumer reads
// again from the last committed progress and the engine rebuilds its state from the log.
import type { EventFrame, Frame } from "../../schemas/index.ts";
import type { ConsumerLogger, EventLog } from "../../storage/index.ts";

/** commits of transitions in flight while reading goes on */
const MAX_INFLIGHT = 8;
/** transitions of several pages share a commit: at most this many, waiting at most this long */
const GROUP_MAX = 5000;
const GROUP_MS = 250;
/** without transitions, the cursor is stored once it moved this far (or after storeEveryMs) */
const STORE_EVERY_FRAMES = 10_000;

export class TransitionCommits {
  /** transitions produced and not yet appended, in order */
  waiting: EventFrame[] = [];
  /** the cursor as last stored */
  stored: number;
  private storedAt = 0;
  private storing: Promise<void> | null = null;
  /** progress of the pages whose transitions are committing, in order (never rejects: see `failure`) */
  private inflight: Promise<void> | null = null;
  private inflightCount = 0;
  private failure: unknown = null;
  /** when transitions were last handed to the log */
  private committedAt = 0;

  constructor(
    private readonly log: EventLog,
    private readonly name: string,
    private readonly storeEveryMs: number,
    private readonly logger?: ConsumerLogger,
  ) {
    this.stored = log.cursor(name);
  }

  /** Something to commit or to see through (its failure must fail a pass even if no frame comes). */
  get busy(): boolean {
    return this.waiting.length > 0 || this.inflight !== null || this.failure !== null;
  }

  /** Waits for the commits in flight; throws the failure of one. */
  async settle(): Promise<void> {
    await this.inflight;
    if (this.failure) throw this.failure;
  }

  /** After a rebuild from the log: nothing waits, nothing failed. */
  async reset(): Promise<void> {
    await this.inflight;
    this.failure = null;
    this.waiting = [];
  }

  /**
   * Every frame up to `upTo` is evaluated: its transitions are appended with the cursor at `cursor`
   * (now, or with the next pages' within GROUP_MS), and `handled(upTo)` is called once they committed.
   * `now`: the engine is caught up, nothing waits for company.
   */
  async flush(upTo: number, cursor: number, handled: (offset: number) => void, now = false): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.inflightCount >= MAX_INFLIGHT) await this.inflight;
    if (this.failure) throw this.failure;
    if (!now && this.waiting.length && this.waiting.length < GROUP_MAX && performance.now() - this.committedAt < GROUP_MS) return;
    if (!this.waiting.length && !this.inflight) {
      handled(upTo);
      this.maybeStore(cursor);
      return;
    }
    const frames: Frame[] = this.waiting;
    this.waiting = [];
    const commit = frames.length ? this.log.append(frames, { cursor: { name: this.name, offset: cursor } }) : null;
    if (commit) this.committedAt = performance.now();
    this.inflightCount++;
    const done = Promise.all([this.inflight, commit]).then(
      () => {
        this.inflightCount--;
        if (this.failure) return;
        if (commit) {
          this.stored = Math.max(this.stored, cursor);
          this.storedAt = performance.now();
        }
        handled(upTo);
      },
      (e: unknown) => {
        this.inflightCount--;
        this.failure ??= e;
      },
    );
    this.inflight = done;
    void done.finally(() => {
      if (this.inflight === done) this.inflight = null;
    });
  }

  /**
   * Appends one more transition (an operator's) after the waiting ones, at once: the log keeps every
   * alarm's order. If it fails, the waiting transitions are lost with it: the engine must rebuild.
   */
  async appendNow(ev: EventFrame): Promise<void> {
    const frames = [...this.waiting, ev];
    const lost = this.waiting.length > 0;
    this.waiting = [];
    try {
      await this.log.append(frames, { urgent: true });
    } catch (e) {
      if (lost) this.failure ??= e;
      throw e;
    }
  }

  /** Whether the cursor should be stored while idle, and after how long. */
  storeAfterMs(position: number): number | null {
    return position > this.stored ? this.storeEveryMs : null;
  }

  /** At stop: what waits, with the cursor, in one append (a failure leaves it to be read again). */
  async close(cursor: number): Promise<void> {
    await this.inflight;
    await this.storing;
    if (this.failure || this.log.isClosed) return;
    const frames = this.waiting;
    this.waiting = [];
    await this.log
      .append(frames, { cursor: { name: this.name, offset: cursor } })
      .catch((err) => this.logger?.warn({ err }, "alarm engine: storing its transitions and cursor at stop failed (read again at the next start)"));
  }

  private maybeStore(cursor: number): void {
    if (cursor <= this.stored || this.storing) return;
    if (cursor - this.stored < STORE_EVERY_FRAMES && performance.now() - this.storedAt < this.storeEveryMs) return;
    this.storedAt = performance.now();
    this.storing = this.log
      .commitCursor(this.name, cursor)
      .then(() => {
        this.stored = Math.max(this.stored, cursor);
      })
      .catch((err) => this.logger?.warn({ err }, "alarm engine: storing its cursor failed (retried)"))
      .finally(() => {
        this.storing = null;
      });
  }
}
