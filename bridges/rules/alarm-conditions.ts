// The alarm conditions of the catalog, indexed by tag: one Condition per alarm id, built once per catalog
// version, then fed every reading without allocating. A condition is the raw state of one alarm (value
// past its limit with hysteresis, bool equal to its `when`, quality Bad, a request event) plus the
// delay pending before the alarm follows it; the alarm's published state lives in the AlarmTable.
import { isBad, LIMIT_KINDS, Quality, type AlarmPriority, type AlarmState, type LimitKind, type Variable } from "../../schemas/index.ts";

export type ConditionKind = LimitKind | "bool" | "quality" | "mapping" | "rule";

export interface Condition {
  readonly id: string;
  readonly tag: string | undefined;
  readonly kind: ConditionKind;
  /** request alarms take both from their latest request */
  priority: AlarmPriority;
  message: string;
  /** limit alarms: the limit, above it (high) or below it (low), and the hysteresis */
  readonly limit: number;
  readonly high: boolean;
  readonly deadband: number;
  /** bool alarms: the value that is the alarm */
  readonly when: boolean;
  readonly onDelayUs: number;
  readonly offDelayUs: number;
  /** the raw condition, with hysteresis */
  on: boolean;
  /** log clock (micros) at which the alarm follows `on`; Infinity: nothing pending */
  due: number;
  /** offset of the frame that started the pending delay (the engine's cursor stays before it) */
  pendingFrom: number;
  /**
   * A quality delay a planned stop paused (`due` is Infinity meanwhile): the part of it still to run
   * once the gateway has started (micros); NaN when not paused.
   */
  remainingUs: number;
  /** the value of the last reading that changed `on` (shown in the transition) */
  value: unknown;
}

const DEFAULT_PRIORITY: AlarmPriority = "medium";

function condition(base: Pick<Condition, "id" | "tag" | "kind" | "priority" | "message"> & Partial<Condition>): Condition {
  return { limit: NaN, high: false, deadband: 0, when: true, onDelayUs: 0, offDelayUs: 0, on: false, due: Infinity, pendingFrom: 0, remainingUs: NaN, value: null, ...base };
}

/** The conditions of one tag's `alarms:` block (none without one). */
export function tagConditions(v: Variable): Condition[] {
  const a = v.alarms;
  if (!a) return [];
  const out: Condition[] = [];
  const onDelayUs = a.onDelayMs * 1000;
  const offDelayUs = a.offDelayMs * 1000;
  for (const kind of LIMIT_KINDS) {
    const l = a[kind];
    if (!l) continue;
    const high = kind === "HH" || kind === "H";
    out.push(
      condition({
        id: `${v.tag}:${kind}`,
        tag: v.tag,
        kind,
        priority: l.priority ?? (kind.length === 2 ? "high" : DEFAULT_PRIORITY),
        message: l.message ?? `${v.tag} ${high ? "above" : "below"} ${kind} limit ${l.limit}${v.unit ? ` ${v.unit}` : ""}`,
        limit: l.limit,
        high,
        deadband: a.deadband,
        onDelayUs,
        offDelayUs,
      }),
    );
  }
  if (a.bool) {
    out.push(condition({ id: `${v.tag}:bool`, tag: v.tag, kind: "bool", priority: a.bool.priority ?? DEFAULT_PRIORITY, message: a.bool.message ?? `${v.tag} is ${a.bool.when}`, when: a.bool.when, onDelayUs, offDelayUs }));
  }
  if (a.quality) {
    const q = a.quality;
    out.push(condition({ id: `${v.tag}:quality`, tag: v.tag, kind: "quality", priority: q.priority ?? DEFAULT_PRIORITY, message: q.message ?? `${v.tag} Bad for more than ${q.badForMs} ms`, onDelayUs: q.badForMs * 1000 }));
  }
  return out;
}

/** A condition raised by a request event (mapping error, rule), with no delay. */
export function requestCondition(id: string, kind: "mapping" | "rule", tag: string | undefined, priority: AlarmPriority, message: string): Condition {
  return condition({ id, tag, kind, priority, message });
}

/** The condition of an alarm known only from the log (its configuration gone, or a request alarm after a restart). */
export function conditionOfState(s: AlarmState): Condition {
  return condition({ id: s.id, tag: s.tag, kind: s.kind as ConditionKind, priority: s.priority, message: s.message, on: s.active });
}

/**
 * The raw condition for a reading, or null when the reading says nothing about it (a Bad value for a
 * limit or bool alarm: the quality alarm speaks for it; a value of the wrong type). Hot path: no allocation.
 */
export function conditionFor(c: Condition, value: unknown, quality: number): boolean | null {
  // out of service (an operator paused or removed the driver) is a decision, not a fault: no quality alarm
  // (ISA-18.2's out-of-service suppression); a device failing behind it raised its alarm before the pause
  if (c.kind === "quality") return isBad(quality) && quality !== Quality.Bad_OutOfService;
  if (isBad(quality)) return null;
  if (c.kind === "bool") return typeof value === "boolean" ? value === c.when : null;
  const n = typeof value === "number" ? value : typeof value === "bigint" ? Number(value) : NaN;
  if (n !== n) return null; // NaN: not a number, or no reading
  // hysteresis: once on, a high alarm stays on until the value falls to limit - deadband (low: mirrored)
  if (c.high) return c.on ? n > c.limit - c.deadband : n > c.limit;
  return c.on ? n < c.limit + c.deadband : n < c.limit;
}

/** The catalog's conditions by tag, and every condition by id. */
export interface ConditionIndex {
  byTag: Map<string, Condition[]>;
  byId: Map<string, Condition>;
}

/**
 * Builds the index for a catalog. A condition whose id existed before keeps its raw state and pending
 * delay (a reload does not re-announce or forget anything); request conditions are carried over.
 */
export function indexConditions(tags: readonly Variable[], previous: ConditionIndex | null): ConditionIndex {
  const byTag = new Map<string, Condition[]>();
  const byId = new Map<string, Condition>();
  for (const v of tags) {
    const conds = tagConditions(v);
    if (!conds.length) continue;
    for (const c of conds) {
      const old = previous?.byId.get(c.id);
      if (old) {
        c.on = old.on;
        c.due = old.due;
        c.pendingFrom = old.pendingFrom;
        c.remainingUs = old.remainingUs;
        c.value = old.value;
      }
      byId.set(c.id, c);
    }
    byTag.set(v.tag, conds);
  }
  for (const [id, c] of previous?.byId ?? []) if ((c.kind === "mapping" || c.kind === "rule") && !byId.has(id)) byId.set(id, c);
  return { byTag, byId };
}
