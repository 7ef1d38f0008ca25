// The read-side mapping table of tags (pure, no I/O): the mapping expression (`expr`), clamping to
// [min, max], and report by exception (deadband, deadbandPercent, heartbeat). The driver manager runs
// every driver's frames through one (drivers/manager.ts), the derived-tag consumer its outputs
// (bridges/rules/derived.ts). Scale/offset stay in the drivers (they need the inverse for writes).
import { compileExprCached, type CompiledExpr, type Scalar } from "./expr.ts";
import type { Variable } from "./config.ts";
import type { DataFrame, Value } from "./frames.ts";
import { isBad, isGood, Quality } from "./quality.ts";
import { MAPPING_NAMES } from "./tag-checks.ts";

/** OPC UA limit bits (Part 4, 7.39) on Uncertain_EngineeringUnitsExceeded: the value was held at max or min. */
export const LIMIT_HIGH = 0x200;
export const LIMIT_LOW = 0x100;
/** Heartbeat of an unchanged reading when the tag does not say (variables.yml default too). */
export const DEFAULT_MAX_INTERVAL_MS = 60_000;

/** What the table tells its owner about a tag's expression (event frames mapping.error / mapping.recovered). */
export interface MappingHooks {
  failed(tag: string, error: string): void;
  recovered(tag: string): void;
}

/** One tag's compiled mapping and its report-by-exception memory. */
interface TagState {
  expr: CompiledExpr | undefined;
  isBool: boolean;
  lo: number | undefined;
  hi: number | undefined;
  /** filter repeats at all (report by exception or a deadband) */
  filters: boolean;
  deadband: number;
  /** fraction (0..1) of the range, or of the last logged value when range is 0 */
  deadbandFraction: number;
  range: number;
  maxIntervalMs: number;
  failing: boolean;
  /** the expression's values array (raw, value), reused: no allocation per reading */
  scratch: Scalar[];
  /** the last frame logged: undefined before the first */
  lastValue: Value | undefined;
  lastQuality: number;
  lastAtMs: number;
  /** the update() that last listed the tag: a state not listed by the latest one is removed */
  edit: number;
}

const needsState = (t: Variable): boolean =>
  t.expr !== undefined || !!t.clamp || !!t.reportByException || t.deadband > 0 || (t.deadbandPercent ?? 0) > 0;

/**
 * A tag's state for `t`. A live edit updates the previous state in place: it keeps what was logged (so
 * that it does not log every tag again at once) and the error state, and allocates nothing per tag
 * (a 10,000-tag reload made 10,000 states and scratch arrays).
 */
function stateOf(t: Variable, previous: TagState | undefined): TagState {
  const clamp = !!t.clamp;
  const s: TagState = previous ?? { expr: undefined, isBool: false, lo: undefined, hi: undefined, filters: false, deadband: 0, deadbandFraction: 0, range: 0, maxIntervalMs: 0, failing: false, scratch: [0, 0], lastValue: undefined, lastQuality: 0, lastAtMs: 0, edit: 0 };
  s.expr = t.expr === undefined ? undefined : compileExprCached(t.expr, MAPPING_NAMES);
  s.isBool = t.type === "bool";
  s.lo = clamp ? t.min : undefined;
  s.hi = clamp ? t.max : undefined;
  s.filters = !!t.reportByException || t.deadband > 0 || (t.deadbandPercent ?? 0) > 0;
  s.deadband = t.deadband;
  s.deadbandFraction = (t.deadbandPercent ?? 0) / 100;
  s.range = t.min !== undefined && t.max !== undefined ? t.max - t.min : 0;
  s.maxIntervalMs = t.maxIntervalMs ?? DEFAULT_MAX_INTERVAL_MS;
  return s;
}

/**
 * The read-side mapping of one driver's tags. `apply` takes the frames the driver sent and returns those
 * to log: mapped (expression, clamp) and filtered (report by exception). Tags without any of it cost one
 * Map lookup. Expressions are compiled by the constructor (the config check compiled them already).
 */
export class MappingTable {
  private readonly states = new Map<string, TagState>();
  private edits = 0;

  constructor(
    tags: readonly Variable[],
    private readonly hooks: MappingHooks,
  ) {
    this.update(tags);
  }

  /**
   * A live edit: new mappings, the report-by-exception memory and error state of kept tags carried over.
   * The map is updated in place (no new map of every tag at each reload of a large catalog).
   */
  update(tags: readonly Variable[]): void {
    const edit = ++this.edits;
    for (const t of tags) {
      if (!needsState(t)) continue;
      const previous = this.states.get(t.tag);
      const s = stateOf(t, previous);
      if (!previous) this.states.set(t.tag, s);
      s.edit = edit;
    }
    for (const [tag, s] of this.states) {
      const kept = s.edit === edit;
      if (!kept) this.states.delete(tag); // deleting the current entry does not disturb a Map's iteration
      if (!s.failing || (kept && s.expr)) continue;
      s.failing = false; // its expression is gone
      this.hooks.recovered(tag);
    }
  }

  /** The frames to log, in order; the input array itself when none is mapped or dropped. */
  apply(frames: DataFrame[], nowMs: number): DataFrame[] {
    let out: DataFrame[] | null = null;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      const s = this.states.get(f.tag);
      const g = s === undefined ? f : this.map(s, f, nowMs);
      if (out === null) {
        if (g === f) continue;
        out = frames.slice(0, i);
      }
      if (g !== null) out.push(g);
    }
    return out ?? frames;
  }

  /** A frame logged around the table (the manager's Bad marking): the next reading compares with it. */
  noteLogged(tag: string, value: Value, quality: number, nowMs: number): void {
    const s = this.states.get(tag);
    if (!s) return;
    s.lastValue = value;
    s.lastQuality = quality;
    s.lastAtMs = nowMs;
  }

  /** The frame to log for `f` (itself when unchanged), or null when report by exception drops it. */
  private map(s: TagState, f: DataFrame, nowMs: number): DataFrame | null {
    let value = f.value;
    let quality = f.quality;
    if (s.expr !== undefined && !isBad(quality) && value !== null) {
      try {
        const raw: Scalar = typeof value === "boolean" ? value : Number(value);
        s.scratch[0] = s.scratch[1] = raw;
        const r = s.expr.evaluate(s.scratch);
        value = s.isBool ? !!r : +r;
        if (s.failing) {
          s.failing = false;
          this.hooks.recovered(f.tag);
        }
      } catch (e) {
        value = null;
        quality = Quality.Bad_ConfigurationError;
        if (!s.failing) {
          s.failing = true;
          this.hooks.failed(f.tag, (e as Error).message);
        }
      }
    }
    if (typeof value === "number" && isGood(quality)) {
      if (s.hi !== undefined && value > s.hi) {
        value = s.hi;
        quality = (Quality.Uncertain_EngineeringUnitsExceeded | LIMIT_HIGH) >>> 0;
      } else if (s.lo !== undefined && value < s.lo) {
        value = s.lo;
        quality = (Quality.Uncertain_EngineeringUnitsExceeded | LIMIT_LOW) >>> 0;
      }
    }
    if (s.filters && s.lastValue !== undefined && quality === s.lastQuality && !this.changed(s, value) && !(s.maxIntervalMs > 0 && nowMs - s.lastAtMs >= s.maxIntervalMs)) return null;
    s.lastValue = value;
    s.lastQuality = quality;
    s.lastAtMs = nowMs;
    // a literal of the frame's shape, not a spread: this runs for every mapped reading
    return value === f.value && quality === f.quality ? f : { kind: "data", tag: f.tag, value, ts: f.ts, quality, source: f.source };
  }

  /** Whether `value` differs from the last logged one beyond the deadband (the larger of absolute and percent). */
  private changed(s: TagState, value: Value): boolean {
    const last = s.lastValue;
    if (typeof value !== "number" || typeof last !== "number") return value !== last;
    // NaN (a float register a device fills with it) equals no number, itself included: without this a
    // NaN logged every poll, and with a deadband the steps into and out of NaN were never logged
    if (Number.isNaN(value) || Number.isNaN(last)) return Number.isNaN(value) !== Number.isNaN(last);
    const band = Math.max(s.deadband, s.deadbandFraction * (s.range > 0 ? s.range : Math.abs(last)));
    return band > 0 ? Math.abs(value - last) >= band : value !== last;
  }
}
