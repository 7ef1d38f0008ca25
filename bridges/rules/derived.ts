// Derived tags and windows: a durable log consumer (storage/consumer.ts) that reads every data frame,
// and for each tag of the catalog declared with `derived: {expr}` or `window: {fn, tag, seconds}`
// computes a DataFrame (source "derived") when an input changes. Its outputs, and the mapping.error /
// mapping.recovered events of an expression that fails, are appended with the consumer's cursor in one
// transaction (ctx.commit): after a crash it resumes after the last page whose outputs committed, so no
// output is lost or repeated. Quality follows the inputs: a Bad input gives a Bad output (its code, no
// value), an Uncertain one an Uncertain output. Outputs pass the tag's report by exception like a
// driver's readings (schemas/mapping.ts). See bridges/rules/README.md.
import { AlarmRequest, compileExprCached, isBad, isDerived, isGood, MappingTable, Quality, tagSource, type Catalog, type CompiledExpr, type DataFrame, type EventFrame, type Frame, type Logged, type Scalar, type Variable } from "../../schemas/index.ts";
import type { ComponentStatus } from "../../schemas/health.ts";
import { consume, type ConsumerContext, type ConsumerLogger, type EventLog, type LogConsumer } from "../../storage/index.ts";
import { windowFn, type WindowFn } from "./windows.ts";

export interface DerivedDeps {
  log: EventLog;
  catalog: Catalog;
  logger?: ConsumerLogger;
  /** the consumer's (and its cursor's) name; default "derived" */
  name?: string;
  pageSize?: number;
}

/** The last reading of an input tag. */
interface Input {
  value: Scalar | null;
  quality: number;
  ts: number;
}

interface Derived {
  tag: Variable;
  /** derived: the compiled expression, its inputs in slot order and the values array it reads */
  expr?: CompiledExpr;
  slots: Scalar[];
  /** window: the aggregate and its spec (a reload keeps the aggregate when the spec is unchanged) */
  window?: WindowFn;
  windowKey?: string;
  failing: boolean;
}

/** The computation over one page of frames: pure apart from the clock of the report-by-exception heartbeat. */
export class DerivedEngine {
  private byInput = new Map<string, Derived[]>();
  private byTag = new Map<string, Derived>();
  private readonly inputs = new Map<string, Input>();
  private table = new MappingTable([], { failed: () => {}, recovered: () => {} });
  private pending: Frame[] = [];
  /** expressions with an input read at the current source timestamp, not computed yet (handle()) */
  private readonly due = new Set<Derived>();

  /**
   * Sets the derived tags of `tags`. Inputs never seen are seeded from `latest` when its frame is at or
   * before `upTo` (the position reading resumes after): a later one is replayed in order anyway, and
   * seeding with it would compute an output from a value that did not exist yet; `before` has the value
   * at `upTo` of such inputs (EventLog.latestAt). Totals are restored
   * from the output's latest frame (committed with the cursor, so consistent with it).
   */
  configure(tags: readonly Variable[], latest: ReadonlyMap<string, Logged<DataFrame>>, upTo: number, before: ReadonlyMap<string, Logged<DataFrame>> = new Map()): void {
    const byInput = new Map<string, Derived[]>();
    const byTag = new Map<string, Derived>();
    const derivedTags = tags.filter(isDerived);
    for (const t of derivedTags) {
      const d = this.derivedOf(t, latest);
      byTag.set(t.tag, d);
      const names = d.expr ? d.expr.names : [t.window!.tag]; // a derived tag has an expr or a window
      for (const n of names) {
        byInput.set(n, [...(byInput.get(n) ?? []), d]);
        const last = latest.get(n);
        const seen = last && last.offset <= upTo ? last : before.get(n);
        if (!this.inputs.has(n) && seen) this.inputs.set(n, { value: typeof seen.value === "bigint" ? Number(seen.value) : (seen.value as Scalar | null), quality: seen.quality, ts: seen.ts });
      }
    }
    this.byInput = byInput;
    this.byTag = byTag;
    this.table = new MappingTable(derivedTags, { failed: () => {}, recovered: () => {} });
  }

  /** Inputs of the derived tags of `tags` that have no value yet. */
  unseenInputs(tags: readonly Variable[]): string[] {
    const names = new Set<string>();
    for (const t of tags) if (t.derived) for (const n of compileExprCached(t.derived.expr).names) names.add(n);
    for (const t of tags) if (t.window) names.add(t.window.tag);
    return [...names].filter((n) => !this.inputs.has(n));
  }

  get size(): number {
    return this.byTag.size;
  }

  private derivedOf(t: Variable, latest: ReadonlyMap<string, Logged<DataFrame>>): Derived {
    const old = this.byTag.get(t.tag);
    if (t.derived) {
      const expr = compileExprCached(t.derived.expr);
      return { tag: t, expr, slots: new Array<Scalar>(expr.names.length).fill(0), failing: old?.failing ?? false };
    }
    const key = JSON.stringify(t.window);
    if (old?.window && old.windowKey === key) return { ...old, tag: t };
    const last = latest.get(t.tag)?.value;
    return { tag: t, slots: [], window: windowFn(t.window!, typeof last === "number" ? last : 0), windowKey: key, failing: false }; // isDerived: window set when derived is not
  }

  /**
   * The frames (outputs and events) that `page` produces, in order. An expression computes once per
   * source timestamp: the readings of one poll share it, and computing after each of them would log
   * values mixing this poll's inputs with the last one's (a dT that never existed, an alarm on it).
   */
  handle(page: readonly Logged[], nowMs = Date.now()): Frame[] {
    this.pending = [];
    const outputs: DataFrame[] = [];
    const due = this.due;
    let dueTs = 0;
    for (const f of page) {
      if (f.kind !== "data") continue;
      const ds = this.byInput.get(f.tag);
      if (ds === undefined) continue;
      if (due.size && f.ts !== dueTs) this.computeDue(dueTs, outputs);
      const input = { value: typeof f.value === "bigint" ? Number(f.value) : (f.value as Scalar | null), quality: f.quality, ts: f.ts };
      this.inputs.set(f.tag, input);
      for (const d of ds) {
        if (d.expr) {
          due.add(d);
          dueTs = f.ts;
        } else {
          const out = this.aggregate(d, input);
          if (out) outputs.push(out);
        }
      }
    }
    if (due.size) this.computeDue(dueTs, outputs);
    const logged = this.table.apply(outputs, nowMs);
    return this.pending.length ? [...this.pending, ...logged] : logged;
  }

  /** The expressions whose inputs changed at `ts`, each computed once over the inputs as they are now. */
  private computeDue(ts: number, outputs: DataFrame[]): void {
    for (const d of this.due) {
      const out = this.compute(d, ts);
      if (out) outputs.push(out);
    }
    this.due.clear();
  }

  private frame(d: Derived, value: Scalar | null, quality: number, ts: number): DataFrame {
    return { kind: "data", tag: d.tag.tag, value: typeof value === "boolean" || value === null ? value : d.tag.type === "bool" ? value !== 0 : value, ts, quality, source: tagSource(d.tag) };
  }

  /** An expression over the latest value of each input: null until every input has one. */
  private compute(d: Derived, ts: number): DataFrame | null {
    const expr = d.expr!; // compute() is called for derived tags with an expression only
    let quality: number = Quality.Good;
    for (let i = 0; i < expr.names.length; i++) {
      const input = this.inputs.get(expr.names[i]!);
      if (input === undefined) return null;
      if (isBad(input.quality) || input.value === null) return this.frame(d, null, isBad(input.quality) ? input.quality : Quality.Bad_WaitingForInitialData, ts);
      if (!isGood(input.quality) && isGood(quality)) quality = input.quality;
      d.slots[i] = input.value;
    }
    try {
      const value = expr.evaluate(d.slots);
      if (d.failing) this.transition(d, false, ts);
      return this.frame(d, value, quality, ts);
    } catch (e) {
      if (!d.failing) this.transition(d, true, ts, (e as Error).message);
      return this.frame(d, null, Quality.Bad_ConfigurationError, ts);
    }
  }

  private aggregate(d: Derived, input: Input): DataFrame | null {
    if (isBad(input.quality) || input.value === null) return this.frame(d, null, isBad(input.quality) ? input.quality : Quality.Bad_WaitingForInitialData, input.ts);
    const r = d.window!.push(input.ts, +input.value); // aggregate() is called for windows only
    return r === null ? null : this.frame(d, r, input.quality, input.ts);
  }

  /** mapping.error once when the expression starts failing, mapping.recovered when it computes again. */
  private transition(d: Derived, failing: boolean, ts: number, error?: string): void {
    d.failing = failing;
    const ev: EventFrame = { kind: "event", type: failing ? AlarmRequest.MappingError : AlarmRequest.MappingRecovered, source: tagSource(d.tag), tag: d.tag.tag, ts, ...(error ? { data: { error } } : {}) };
    this.pending.push(ev);
  }
}

export interface DerivedService {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): ComponentStatus;
}

/**
 * The service: its consumer runs only while the catalog has derived tags (a gateway without any reads
 * nothing for them), and follows catalog edits. A first start begins at the head: a new derived tag is
 * computed from now on, not over the whole history.
 */
export function createDerivedService(deps: DerivedDeps): DerivedService {
  const name = deps.name ?? "derived";
  const engine = new DerivedEngine();
  let consumer: LogConsumer | null = null;
  let starting: Promise<void> | null = null;
  let stopped = false;

  const handler = async (page: Logged[], ctx: ConsumerContext): Promise<void> => {
    const out = engine.handle(page);
    if (out.length) await ctx.commit(out, page[page.length - 1]!.offset);
  };
  const follow = async (): Promise<void> => {
    const tags = deps.catalog.all();
    if (!consumer && !stopped && tags.some(isDerived) && deps.log.cursor(name) === 0) await deps.log.commitCursor(name, deps.log.head);
    const upTo = consumer ? consumer.handledUpTo : deps.log.cursor(name);
    const latest = deps.log.latest();
    const later = engine.unseenInputs(tags).filter((t) => (latest.get(t)?.offset ?? 0) > upTo);
    engine.configure(tags, latest, upTo, await deps.log.latestAt(later, upTo));
    if (engine.size === 0 || consumer || stopped) return;
    consumer = consume(deps.log, { name, handler, kinds: ["data"], pageSize: deps.pageSize ?? 5000, ...(deps.logger ? { logger: deps.logger } : {}) });
  };
  const onChange = () => {
    starting = (starting ?? Promise.resolve()).then(follow).catch((err) => deps.logger?.error({ err }, "derived tags: applying the catalog failed"));
  };
  return {
    name,
    async start() {
      deps.catalog.on("change", onChange);
      await follow();
    },
    async stop() {
      stopped = true;
      deps.catalog.off("change", onChange);
      await starting;
      await consumer?.stop();
    },
    status() {
      const tags = engine.size;
      if (!consumer) return { state: "ok", reasons: [], tags };
      const s = consumer.status();
      const reasons = s.state === "retrying" ? [`derived tags: reading the log fails (${s.lastError}); retrying`] : [];
      return { state: reasons.length ? "degraded" : "ok", reasons, tags, position: s.position, lagFrames: s.lagFrames, errors: s.errors };
    },
  };
}
