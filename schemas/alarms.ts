// The alarm contract of the log: every alarm transition is an EventFrame, and other parts of the gateway
// (the mapping layer in drivers/, user rules) ask for an alarm by appending a request event, never by
// calling the alarm engine. The engine (bridges/rules) is a log consumer: it turns requests and tag
// readings into ISA-18.2 states and appends one transition event per change, committed with its cursor.
import { Type, type Static } from "@sinclair/typebox";

/** Event types the alarm engine appends (EventFrame.type), one per state transition. */
export const AlarmTransition = {
  /** condition became active (unacknowledged) */
  Active: "alarm.active",
  /** condition returned to normal (stays unacknowledged until acknowledged) */
  Cleared: "alarm.cleared",
  /** an operator acknowledged it (data.actor) */
  Acked: "alarm.acked",
  /** an operator shelved it until data.until (micros) */
  Shelved: "alarm.shelved",
  /** shelving ended (expiry or operator) */
  Unshelved: "alarm.unshelved",
} as const;
export type AlarmTransition = (typeof AlarmTransition)[keyof typeof AlarmTransition];

/**
 * Event types other parts append to ask for an alarm that is not a limit on a tag:
 * - `mapping.error` / `mapping.recovered`: the mapping layer could not compute a tag (EventFrame.tag set,
 *   data.error the reason); the engine raises/clears alarm id `mapping:<tag>`.
 * - `alarm.raise` / `alarm.clear`: a rule (source `rule:<name>`) raises or clears alarm id
 *   `rule:<name>:<data.name>`, with data.priority and data.message.
 */
export const AlarmRequest = {
  MappingError: "mapping.error",
  MappingRecovered: "mapping.recovered",
  Raise: "alarm.raise",
  Clear: "alarm.clear",
} as const;

/**
 * Events the gateway appends about itself (EventFrame.source `gateway`): a planned stop is not a device
 * fault. `gateway.starting` is the first commit of a start (before the previous run's values are marked
 * Uncertain and before any driver or bridge starts); `gateway.stopping` (data.reason: the signal or
 * caller) is committed after the bridges stopped and before the drivers stop (their tags' Bad frames come
 * after it); `gateway.started` once everything has started. The alarm engine starts no quality-alarm delay
 * from `gateway.stopping` (or, after a crash, from `gateway.starting`) to `gateway.started`: the time the
 * gateway was stopped, down or starting does not count.
 */
export const GatewayEvent = {
  Starting: "gateway.starting",
  Stopping: "gateway.stopping",
  Started: "gateway.started",
} as const;
export const GATEWAY_SOURCE = "gateway";

export const AlarmPriority = Type.Union(
  [Type.Literal("critical"), Type.Literal("high"), Type.Literal("medium"), Type.Literal("low")],
  { default: "medium" },
);
export type AlarmPriority = Static<typeof AlarmPriority>;

/** EventFrame.data of every transition event (and one row of GET /api/alarms). */
export const AlarmState = Type.Object(
  {
    id: Type.String({ description: "stable id: <tag>:<kind> for limit alarms (e.g. Boiler.T:HH), mapping:<tag>, rule:<rule>:<name>" }),
    tag: Type.Optional(Type.String()),
    kind: Type.String({ description: "HH | H | L | LL | bool | quality | mapping | rule" }),
    priority: AlarmPriority,
    active: Type.Boolean(),
    acked: Type.Boolean(),
    shelvedUntil: Type.Optional(Type.Number({ description: "micros; shelved while now < shelvedUntil" })),
    message: Type.String(),
    value: Type.Optional(Type.Unknown()),
    since: Type.Number({ description: "micros of the last transition (any: an acknowledgement or a shelving moves it; see activeSince)" }),
    activeSince: Type.Optional(
      Type.Number({
        description: "micros when the alarm last became active; kept by acknowledgement, shelving and clearing (absent for an alarm never raised; the engine fills it from the log for transitions logged before it existed)",
      }),
    ),
    actor: Type.Optional(Type.String({ description: "who acknowledged or shelved" })),
    reason: Type.Optional(Type.String({ description: "why it was shelved (operator's words), or 'expired' on an unshelve at expiry" })),
    cause: Type.Optional(
      Type.Integer({
        description: "offset of the log frame up to which the engine had read when the condition last changed (active/cleared): a replay after a restart emits nothing at or before it",
      }),
    ),
  },
  { $id: "AlarmState" },
);
export type AlarmState = Static<typeof AlarmState>;

// ---- variables.yml: the alarms of one tag (Variable.alarms) ---------------------------------------
const LimitAlarm = Type.Object(
  {
    limit: Type.Number({ description: "HH/H: active above it; L/LL: active below it" }),
    priority: Type.Optional(AlarmPriority),
    message: Type.Optional(Type.String({ description: "text shown to operators (default: '<tag> above HH limit <limit>')" })),
  },
  { additionalProperties: false },
);

export const LIMIT_KINDS = ["HH", "H", "L", "LL"] as const;
export type LimitKind = (typeof LIMIT_KINDS)[number];

export const TagAlarms = Type.Object(
  {
    HH: Type.Optional(LimitAlarm),
    H: Type.Optional(LimitAlarm),
    L: Type.Optional(LimitAlarm),
    LL: Type.Optional(LimitAlarm),
    deadband: Type.Number({ minimum: 0, default: 0, description: "hysteresis: a high alarm clears below limit - deadband, a low alarm above limit + deadband" }),
    onDelayMs: Type.Integer({ minimum: 0, default: 0, description: "the condition must hold this long before the alarm becomes active" }),
    offDelayMs: Type.Integer({ minimum: 0, default: 0, description: "the condition must be gone this long before the alarm clears" }),
    bool: Type.Optional(
      Type.Object(
        {
          when: Type.Boolean({ description: "the value that is the alarm condition" }),
          priority: Type.Optional(AlarmPriority),
          message: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
    quality: Type.Optional(
      Type.Object(
        {
          badForMs: Type.Integer({ minimum: 0, description: "active when the tag has been Bad this long" }),
          priority: Type.Optional(AlarmPriority),
          message: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false, description: "alarms of this tag (ISA-18.2 states; engine: bridges/rules/alarms.ts)" },
);
export type TagAlarms = Static<typeof TagAlarms>;

/**
 * What the schema cannot say about one tag's alarms: limits in order (LL < L < H < HH), a deadband that
 * keeps a high alarm's clearing point above the low limit, limits only on numbers and `bool` only on bool
 * tags. Each problem with its path below `alarms`.
 */
export function alarmConfigProblems(alarms: TagAlarms, tagType: string): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  const numeric = tagType !== "bool" && tagType !== "string";
  const present = LIMIT_KINDS.filter((k) => alarms[k] !== undefined);
  if (!numeric) for (const k of present) out.push({ path: `alarms.${k}`, message: `a limit alarm needs a numeric tag; this tag is ${tagType}` });
  if (alarms.bool && tagType !== "bool") out.push({ path: "alarms.bool", message: `a bool alarm needs a bool tag; this tag is ${tagType}` });
  // from the highest to the lowest: each present limit must be above the next present one
  const order: LimitKind[] = ["HH", "H", "L", "LL"];
  for (let i = 0; i < order.length; i++) {
    const hi = alarms[order[i]!];
    if (!hi) continue;
    for (let j = i + 1; j < order.length; j++) {
      const lo = alarms[order[j]!];
      if (lo && !(hi.limit > lo.limit)) out.push({ path: `alarms.${order[i]}.limit`, message: `${order[i]} limit ${hi.limit} must be above ${order[j]} limit ${lo.limit}` });
    }
  }
  const lowestHigh = alarms.H ?? alarms.HH;
  const highestLow = alarms.L ?? alarms.LL;
  if (lowestHigh && highestLow && alarms.deadband > 0 && lowestHigh.limit - alarms.deadband <= highestLow.limit + alarms.deadband && lowestHigh.limit > highestLow.limit) {
    out.push({ path: "alarms.deadband", message: `deadband ${alarms.deadband} overlaps the high and low limits (${lowestHigh.limit} and ${highestLow.limit}): a value could hold a high and a low alarm at once` });
  }
  const conditions = present.length + (alarms.bool ? 1 : 0) + (alarms.quality ? 1 : 0);
  if (conditions === 0) out.push({ path: "alarms", message: "no alarm condition: give HH, H, L, LL, bool or quality" });
  return out;
}
