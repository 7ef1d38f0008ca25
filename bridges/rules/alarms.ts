// The alarm engine: a log consumer that turns tag readings and request events into ISA-18.2 alarm
// states (active/cleared x unacked/acked, priority, shelving) and appends one transition event per
// change, committed together with its cursor. Operators' acks and shelves come through the API and are
// appended the same way. Contract and restart rules: bridges/rules/README.md, "Alarms".
//
// Time: delays and shelving run on the log's clock: a frame's `loggedAt` while reading, the wall clock
// while caught up (idle). A replay therefore takes the same decisions as the first reading did.
// Restart: the state is rebuilt from the last transition per id; the cursor is kept before the oldest
// frame that started a pending delay, so that the delay is re-derived after a restart, and a transition
// already in the log (at or before its `cause` offset) is never emitted again.
import { Gauge, type Registry } from "prom-client";
import { AlarmRequest, AlarmTransition, GATEWAY_SOURCE, GatewayEvent, type AlarmPriority, type AlarmState, type Catalog, type EventFrame, type Logged } from "../../schemas/index.ts";
import { consume, type BackoffSettings, type ConsumerContext, type ConsumerLogger, type EventLog, type LogConsumer } from "../../storage/index.ts";
import type { ComponentStatus } from "../../schemas/health.ts";
import { conditionFor, conditionOfState, indexConditions, requestCondition, type Condition, type ConditionIndex } from "./alarm-conditions.ts";
import { TransitionCommits } from "./alarm-commits.ts";
import { AlarmTable, isShelved, PRIORITIES, type AlarmFilter } from "./alarm-table.ts";

export interface AlarmEngineOptions {
  log: EventLog;
  catalog: Catalog;
  /** consumer and cursor name (default "alarms") */
  name?: string;
  registry?: Registry;
  logger?: ConsumerLogger;
  pageSize?: number;
  /** the cursor is stored at least this often while it moves without transitions (default 1000 ms) */
  storeEveryMs?: number;
  /** retry delays after a read or commit error (the consumer's default otherwise) */
  retry?: BackoffSettings;
  /** the log's Parquet archive (retention): states are rebuilt from it too */
  archiveDir?: string;
}

/** An operator action on an alarm id the engine does not know. */
export class AlarmNotFound extends Error {
  override name = "AlarmNotFound";
  constructor(readonly id: string) {
    super(`no alarm '${id}'`);
  }
}

const now = () => Date.now() * 1000;
const PRIORITY_SET = new Set<string>(PRIORITIES);
const priorityOf = (p: unknown, fallback: AlarmPriority): AlarmPriority => (typeof p === "string" && PRIORITY_SET.has(p) ? (p as AlarmPriority) : fallback);
/** Transition data is JSON: a 64-bit reading travels as its decimal text. */
const jsonable = (v: unknown) => (typeof v === "bigint" ? String(v) : v);

export class AlarmEngine {
  readonly name: string;
  private readonly table = new AlarmTable();
  private index: ConditionIndex = { byTag: new Map(), byId: new Map() };
  private catalogChanged = false;
  /** conditions with a delay running */
  private readonly pending = new Set<Condition>();
  /** shelved alarm id -> shelvedUntil (micros) */
  private readonly shelves = new Map<string, number>();
  /** earliest delay or shelf expiry (log clock, micros) */
  private nextDue = Infinity;
  private readonly commits: TransitionCommits;
  private consumer: LogConsumer | null = null;
  /** last offset evaluated (its transitions may still wait for their group commit) */
  private evaluatedUpTo = 0;
  /** a pass failed after changing state in memory: rebuild from the log before the next one */
  private dirty = false;
  /** from `gateway.stopping` or `gateway.starting` to `gateway.started`: a tag going Bad starts no quality delay */
  private gatewayDown = false;
  /** loggedAt of the frame evaluated last: where a crash (a `gateway.started` with no `gateway.stopping`) stopped the clock */
  private lastLoggedAt = 0;
  private readonly gauges: string[] = [];
  private readonly onCatalog = () => {
    this.catalogChanged = true;
  };

  constructor(private readonly opts: AlarmEngineOptions) {
    this.name = opts.name ?? "alarms";
    this.commits = new TransitionCommits(opts.log, this.name, opts.storeEveryMs ?? 1000, opts.logger);
  }

  /** Last offset whose evaluation is complete (its transitions committed). */
  get position(): number {
    return this.consumer?.handledUpTo ?? 0;
  }

  async start(): Promise<void> {
    const { log } = this.opts;
    const from = log.cursor(this.name) + 1;
    await this.rebuild();
    this.opts.catalog.on("change", this.onCatalog);
    this.registerMetrics();
    this.consumer = consume(log, {
      name: this.name,
      from,
      pageSize: this.opts.pageSize ?? 5000,
      // progress follows the commits of the transitions (one in flight): a failed one is read again
      progress: "manual",
      handler: (page, ctx) => this.handle(page, ctx),
      beforePass: () => (this.dirty ? this.rebuild() : undefined),
      idle: { afterMs: () => this.idleAfterMs(), run: (ctx) => this.onIdle(ctx) },
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
      ...(this.opts.retry ? { retry: this.opts.retry } : {}),
    });
  }

  async stop(): Promise<void> {
    this.opts.catalog.off("change", this.onCatalog);
    await this.consumer?.stop();
    if (!this.dirty && this.consumer) await this.commits.close(this.holdback(Math.max(this.evaluatedUpTo, this.consumer.handledUpTo)));
    for (const g of this.gauges) this.opts.registry?.removeSingleMetric(g);
    this.gauges.length = 0;
  }

  /** The state from the log and the conditions from the catalog; pending delays start again. */
  private async rebuild(): Promise<void> {
    await this.commits.reset();
    await this.table.rebuild(this.opts.log, this.opts.log.head, this.opts.archiveDir);
    this.index = indexConditions(this.opts.catalog.all(), null);
    this.catalogChanged = false;
    this.pending.clear();
    this.shelves.clear();
    this.evaluatedUpTo = 0;
    for (const s of this.table.all()) {
      const c = this.index.byId.get(s.id);
      if (c) c.on = s.active;
      else if (s.kind === "mapping" || s.kind === "rule") this.index.byId.set(s.id, conditionOfState(s));
      if (s.shelvedUntil !== undefined) this.shelves.set(s.id, s.shelvedUntil);
    }
    this.recomputeDue();
    this.dirty = false;
  }

  // ---- reading the log ------------------------------------------------------------------------

  private async handle(page: Logged[], ctx: ConsumerContext): Promise<void> {
    try {
      this.evaluate(page);
      const upTo = page[page.length - 1]!.offset;
      this.evaluatedUpTo = upTo;
      await this.commits.flush(upTo, this.holdback(upTo), ctx.handled);
    } catch (e) {
      this.dirty = true;
      throw e;
    }
  }

  /**
   * Evaluates a page of the log in order; its transitions wait for the next flush. The hot path: a
   * reading that changes no condition costs a map lookup and a comparison per condition, no allocation.
   * Public for the benchmark (test/bench/rules/alarms.ts), which measures it apart from reading the log.
   */
  evaluate(page: readonly Logged[]): void {
    if (this.catalogChanged) {
      this.index = indexConditions(this.opts.catalog.all(), this.index);
      this.catalogChanged = false;
      this.repointPending();
    }
    const byTag = this.index.byTag;
    for (let i = 0; i < page.length; i++) {
      const f = page[i]!;
      // before the delays due: the time the gateway was down must not fire a quality alarm
      if (f.kind === "event" && f.source === GATEWAY_SOURCE) this.lifecycle(f);
      if (f.loggedAt >= this.nextDue) this.fireDue(f.loggedAt, f.offset - 1);
      this.lastLoggedAt = f.loggedAt;
      if (f.kind === "data") {
        const conds = byTag.get(f.tag);
        if (conds === undefined) continue;
        for (let j = 0; j < conds.length; j++) {
          const c = conds[j]!;
          const on = conditionFor(c, f.value, f.quality);
          if (on !== null && on !== c.on) this.change(c, on, f.loggedAt, f.offset, f.value);
        }
      } else if (f.kind === "event") this.request(f);
    }
  }

  /** The raw condition changed at `offset`: follow it now, after its delay, or cancel a pending change. */
  private change(c: Condition, on: boolean, t: number, offset: number, value: unknown): void {
    c.on = on;
    c.value = jsonable(value);
    const active = this.table.get(c.id)?.active ?? false;
    if (on === active) {
      this.cancel(c);
      return;
    }
    if (on && this.gatewayDown && c.kind === "quality") {
      // a planned stop marks every tag Bad: the delay starts at `gateway.started` if the tag is still Bad
      this.cancel(c);
      return;
    }
    const delay = on ? c.onDelayUs : c.offDelayUs;
    if (delay === 0) {
      this.cancel(c);
      this.follow(c, t, offset);
      return;
    }
    c.due = t + delay;
    c.pendingFrom = offset;
    this.pending.add(c);
    if (c.due < this.nextDue) this.nextDue = c.due;
  }

  /**
   * After a catalog reload the pending delays belong to the new conditions (which carried them over):
   * a delay left on a replaced condition would fire with its stale state (a tag Good again raised
   * anyway) and hold the cursor back for good. A condition the reload removed drops its delay.
   */
  private repointPending(): void {
    for (const c of [...this.pending]) {
      const now = this.index.byId.get(c.id);
      if (now === c) continue;
      this.pending.delete(c);
      if (now && (now.due !== Infinity || !Number.isNaN(now.remainingUs))) this.pending.add(now);
    }
    this.recomputeDue();
  }

  private cancel(c: Condition): void {
    if (c.due === Infinity && Number.isNaN(c.remainingUs)) return;
    c.due = Infinity;
    c.remainingUs = NaN;
    this.pending.delete(c);
  }

  /**
   * The gateway's own stop and start (schemas/alarms.ts GatewayEvent). Stopping: pending quality delays
   * pause with the time they have left (they stay pending, so the cursor stays before the frame that
   * started them and a restart derives the same), and none starts until the gateway has started.
   * Starting with no stopping before it (a crash): the same, with the time they had left at the last frame
   * logged before the crash. Started: a paused delay goes on with the time it had left (the Bad time before
   * the stop or crash counts, the downtime does not); every other quality condition whose tag is Bad starts
   * its whole delay now.
   */
  private lifecycle(f: Logged<EventFrame>): void {
    if (f.type === GatewayEvent.Stopping) {
      this.gatewayDown = true;
      this.pauseQualityDelays(f.loggedAt);
    } else if (f.type === GatewayEvent.Starting) {
      if (!this.gatewayDown) this.pauseQualityDelays(this.lastLoggedAt);
      this.gatewayDown = true;
    } else if (f.type === GatewayEvent.Started) {
      // a log written before gateway.starting existed: a crash shows only here
      if (!this.gatewayDown) this.pauseQualityDelays(this.lastLoggedAt);
      this.gatewayDown = false;
      for (const c of this.index.byId.values()) {
        if (c.kind !== "quality" || !c.on || this.table.get(c.id)?.active) continue;
        if (Number.isNaN(c.remainingUs)) {
          c.due = f.loggedAt + c.onDelayUs;
          c.pendingFrom = f.offset;
        } else c.due = f.loggedAt + c.remainingUs; // pendingFrom stays: the frame that started it
        c.remainingUs = NaN;
        this.pending.add(c);
      }
    } else return;
    this.recomputeDue();
  }

  /** Pending quality delays stop at `at` with the time they have left (a second stop finds them paused already). */
  private pauseQualityDelays(at: number): void {
    for (const c of this.pending) {
      if (c.kind !== "quality" || c.due === Infinity) continue;
      c.remainingUs = Math.max(0, c.due - at);
      c.due = Infinity;
    }
  }

  /** The alarm takes the condition's state (unless the log already has this transition: a replay). */
  private follow(c: Condition, t: number, cause: number): void {
    const st = this.table.get(c.id);
    if (st?.cause !== undefined && cause <= st.cause) return;
    if ((st?.active ?? false) === c.on) return;
    const next: AlarmState = c.on
      ? {
          id: c.id,
          ...(c.tag === undefined ? {} : { tag: c.tag }),
          kind: c.kind,
          priority: c.priority,
          active: true,
          acked: false,
          message: c.message,
          value: c.value,
          since: t,
          activeSince: t,
          cause,
          // a shelved alarm stays shelved (and silent) when it comes back
          ...(st && isShelved(st, t) ? { shelvedUntil: st.shelvedUntil!, ...(st.actor === undefined ? {} : { actor: st.actor }), ...(st.reason === undefined ? {} : { reason: st.reason }) } : {}),
        }
      : { ...st!, active: false, value: c.value, since: t, cause };
    this.commits.waiting.push(this.table.transition(c.on ? AlarmTransition.Active : AlarmTransition.Cleared, next, t));
  }

  /** Delays and shelves due at `t` (log clock) take effect; `cause`: the offset read up to. */
  private fireDue(t: number, cause: number): void {
    for (const c of this.pending) {
      if (c.due > t) continue;
      const at = c.due;
      this.cancel(c);
      this.follow(c, at, cause);
    }
    for (const [id, until] of this.shelves) {
      if (until > t) continue;
      this.shelves.delete(id);
      const st = this.table.get(id);
      if (!st || st.shelvedUntil !== until) continue;
      const { shelvedUntil: _, actor: __, ...rest } = st;
      this.commits.waiting.push(this.table.transition(AlarmTransition.Unshelved, { ...rest, since: until, reason: "expired" }, until));
    }
    this.recomputeDue();
  }

  private recomputeDue(): void {
    let next = Infinity;
    for (const c of this.pending) if (c.due < next) next = c.due;
    for (const until of this.shelves.values()) if (until < next) next = until;
    this.nextDue = next;
  }

  /** A request event: mapping.error/recovered (alarm mapping:<tag>), alarm.raise/clear from a rule. */
  private request(f: Logged<EventFrame>): void {
    const data = f.data ?? {};
    let c: Condition | undefined;
    let on: boolean;
    if (f.type === AlarmRequest.MappingError || f.type === AlarmRequest.MappingRecovered) {
      if (!f.tag) return;
      on = f.type === AlarmRequest.MappingError;
      const id = `mapping:${f.tag}`;
      c = this.index.byId.get(id) ?? requestCondition(id, "mapping", f.tag, "high", "");
      if (on) c.message = `mapping of ${f.tag} failed: ${typeof data.error === "string" ? data.error : "error"}`;
      c.priority = priorityOf(data.priority, c.priority);
    } else if (f.type === AlarmRequest.Raise || f.type === AlarmRequest.Clear) {
      const rule = f.source.startsWith("rule:") ? f.source.slice(5) : "";
      if (!rule || typeof data.name !== "string" || !data.name) return;
      on = f.type === AlarmRequest.Raise;
      const id = `rule:${rule}:${data.name}`;
      c = this.index.byId.get(id) ?? requestCondition(id, "rule", f.tag, "medium", data.name);
      if (on) {
        c.priority = priorityOf(data.priority, c.priority);
        c.message = typeof data.message === "string" ? data.message : data.name;
      }
    } else return;
    this.index.byId.set(c.id, c);
    if (on !== c.on) this.change(c, on, f.loggedAt, f.offset, on ? (data.value ?? null) : null);
  }

  /** The cursor for progress up to `upTo`: never past a frame that started a pending delay. */
  private holdback(upTo: number): number {
    let cursor = upTo;
    for (const c of this.pending) if (c.pendingFrom - 1 < cursor) cursor = c.pendingFrom - 1;
    return cursor;
  }

  private idleAfterMs(): number | null {
    if (this.commits.busy) return 0;
    const due = this.nextDue === Infinity ? null : Math.max(0, Math.ceil((this.nextDue - now()) / 1000));
    const store = this.commits.storeAfterMs(this.consumer?.handledUpTo ?? 0);
    return due === null ? store : store === null ? due : Math.min(due, store);
  }

  private async onIdle(ctx: ConsumerContext): Promise<void> {
    try {
      await this.commits.settle();
      const position = Math.max(this.evaluatedUpTo, this.consumer?.handledUpTo ?? 0);
      if (now() >= this.nextDue) this.fireDue(now(), position);
      // caught up: what waits is committed now
      await this.commits.flush(position, this.holdback(position), ctx.handled, true);
    } catch (e) {
      this.dirty = true;
      throw e;
    }
  }

  // ---- operators (API) ------------------------------------------------------------------------

  /** The state of a known alarm: from the log, or a configured one that was never raised (undefined: unknown id). */
  known(id: string): AlarmState | undefined {
    const st = this.table.get(id);
    if (st) return { ...st };
    const c = this.index.byId.get(id);
    return c && { id, ...(c.tag === undefined ? {} : { tag: c.tag }), kind: c.kind, priority: c.priority, active: false, acked: true, message: c.message, since: 0 };
  }

  private stateOf(id: string): AlarmState {
    const st = this.known(id);
    if (!st) throw new AlarmNotFound(id);
    return st;
  }

  /** Appends an operator's transition; the table is put back if the log cannot record it. */
  private async record(type: AlarmTransition, next: AlarmState): Promise<AlarmState> {
    const before = this.table.get(next.id);
    const ev = this.table.transition(type, next, next.since);
    try {
      await this.commits.appendNow(ev);
    } catch (e) {
      if (before) this.table.put(before);
      else this.table.remove(next.id);
      throw e;
    }
    return { ...next };
  }

  /** Acknowledges an alarm (idempotent: an acknowledged one is answered as it is, with no event). */
  async ack(id: string, actor: string): Promise<AlarmState> {
    const st = this.stateOf(id);
    if (st.acked) return { ...st };
    return this.record(AlarmTransition.Acked, { ...st, acked: true, actor, since: now() });
  }

  /** Shelves an alarm until now + durationMs: it does not annunciate; unshelved at expiry with an event. */
  async shelve(id: string, actor: string, durationMs: number, reason: string): Promise<AlarmState> {
    const st = this.stateOf(id);
    const t = now();
    const until = t + durationMs * 1000;
    const next = await this.record(AlarmTransition.Shelved, { ...st, shelvedUntil: until, actor, reason, since: t });
    this.shelves.set(id, until);
    if (until < this.nextDue) this.nextDue = until;
    this.consumer?.rewind(); // wakes the idle wait, whose deadline was set before this expiry existed
    return next;
  }

  /** Ends a shelving early. */
  async unshelve(id: string, actor: string): Promise<AlarmState> {
    const st = this.stateOf(id);
    if (st.shelvedUntil === undefined) return { ...st };
    const { shelvedUntil: _, ...rest } = st;
    this.shelves.delete(id);
    return this.record(AlarmTransition.Unshelved, { ...rest, actor, reason: "unshelved by operator", since: now() });
  }

  /** Annunciated (active, not shelved) and unacknowledged counts by priority. */
  counts(): ReturnType<AlarmTable["counts"]> {
    return this.table.counts(now());
  }

  list(filter: AlarmFilter = {}): AlarmState[] {
    return this.table.list(filter, now());
  }

  get(id: string): AlarmState | undefined {
    const st = this.table.get(id);
    return st && { ...st };
  }

  // ---- health and metrics -----------------------------------------------------------------------

  status(): ComponentStatus {
    const c = this.consumer?.status();
    const counts = this.table.counts(now());
    const details = { active: counts.active, unacked: counts.unacked, shelved: counts.shelved, position: c?.position ?? 0, lagFrames: c?.lagFrames ?? 0 };
    if (!c || c.state === "stopped") return { state: "down", reasons: ["the alarm engine is not running: no alarm is evaluated"], ...details };
    if (c.state === "retrying") return { state: "degraded", reasons: [`the alarm engine retries after an error: ${c.lastError}`], ...details };
    return { state: "ok", reasons: [], ...details };
  }

  private registerMetrics(): void {
    const registry = this.opts.registry;
    if (!registry) return;
    const engine = this;
    const gauge = (name: string, help: string, pick: (c: ReturnType<AlarmTable["counts"]>) => Record<AlarmPriority, number>) => {
      new Gauge({
        name,
        help,
        labelNames: ["priority"],
        registers: [registry],
        collect() {
          const counts = pick(engine.table.counts(now()));
          for (const p of PRIORITIES) this.set({ priority: p }, counts[p]);
        },
      });
      return name;
    };
    this.gauges.push(
      gauge("edge_alarms_active", "Active alarms that annunciate (not shelved), by priority", (c) => c.active),
      gauge("edge_alarms_unacked", "Unacknowledged alarms that annunciate (not shelved), by priority", (c) => c.unacked),
    );
  }
}
